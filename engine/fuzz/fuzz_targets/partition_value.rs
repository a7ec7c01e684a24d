//! `wavelake_write::fuzzing::partition_value` under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wavelake_write::fuzzing::partition_value(data));
