//! cargo-fuzz target: see `ascp::fuzzing::file_names`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ascp::fuzzing::file_names(data));
