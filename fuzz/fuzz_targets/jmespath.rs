//! cargo-fuzz target: see `ascp::fuzzing::jmespath`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ascp::fuzzing::jmespath(data));
