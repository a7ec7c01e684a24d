//! `wavelake_engine::fuzzing::upload_csv` under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wavelake_engine::fuzzing::upload_csv(data));
