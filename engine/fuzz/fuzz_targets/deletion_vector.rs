//! `wavelake_write::fuzzing::deletion_vector` under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wavelake_write::fuzzing::deletion_vector(data));
