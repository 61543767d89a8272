//! cargo-fuzz target: see `ascp::fuzzing::authority`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ascp::fuzzing::authority(data));
