//! cargo-fuzz target: see `ascp::fuzzing::attributes`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ascp::fuzzing::attributes(data));
