//! cargo-fuzz target: see `ascp::fuzzing::objects`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ascp::fuzzing::objects(data));
