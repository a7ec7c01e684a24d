//! `wavelake_engine::fuzzing::upload_arrow` under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: wavelake_engine::fuzzing::expect_contained_panics(),
    |data: &[u8]| wavelake_engine::fuzzing::upload_arrow(data)
);
