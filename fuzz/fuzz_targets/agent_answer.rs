//! cargo-fuzz target: see `ascp::fuzzing::agent_answer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ascp::fuzzing::agent_answer(data));
