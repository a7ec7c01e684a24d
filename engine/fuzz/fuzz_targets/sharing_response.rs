//! `wavelake_write::fuzzing::sharing_response` under libFuzzer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wavelake_write::fuzzing::sharing_response(data));
