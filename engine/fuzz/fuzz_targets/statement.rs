//! `wavelake_write::fuzzing::statement` under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wavelake_write::fuzzing::statement(data));
