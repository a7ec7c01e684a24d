//! `wavelake_write::fuzzing::upload_parquet` under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: wavelake_write::fuzzing::expect_contained_panics(),
    |data: &[u8]| wavelake_write::fuzzing::upload_parquet(data)
);
