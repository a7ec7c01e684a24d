//! `wavelake_write::fuzzing::checkpoint` under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: wavelake_write::fuzzing::expect_contained_panics(),
    |data: &[u8]| wavelake_write::fuzzing::checkpoint(data)
);
