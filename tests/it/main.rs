//! The integration tests: one binary, a module per behaviour, so the AWS
//! SDK and the library are linked once rather than once per file. Run one
//! module with `cargo test --test it MODULE::` (for example
//! `cargo test --test it budgets::`).
//!
//! Tests here share a process and run in parallel, so none of them sets
//! process-wide state (environment variables, the current directory, a
//! global log subscriber, the panic hook) or reads the in-process metrics
//! registry. The tests that must are binaries of their own:
//! - `observability`: installs the global log subscriber and compares the
//!   process-wide metrics registry before and after its mounts;
//! - `panic_payload`: installs the binary's panic hook and a global log
//!   subscriber;
//! - `output_crash`: re-executes itself as the writer it kills with SIGKILL
//!   (its own harness, so the child is not a test).
//!
//! `fuzz_replay` reaches the fuzz targets' entry points, which the `fuzzing`
//! feature builds: Cargo.toml's self dev-dependency turns it on for tests.

#[path = "../support/mod.rs"]
mod support;

mod aws_stores;
mod budgets;
mod cli_validate;
mod deploy;
mod docs_links;
mod doctor;
mod driver_wire;
mod e2e;
mod features;
mod fuzz_replay;
mod hardening;
mod hostile;
mod hostile_jmes;
mod identity_components;
mod mount_order;
mod output_layout;
mod provider_core;
mod rotation;
mod spc_rules;
mod support_selftest;
mod throttle;
