//! `wavelake_engine::fuzzing::statistics` under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wavelake_engine::fuzzing::statistics(data));
