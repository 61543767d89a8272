//! Test support: a real AWS emulator (moto) and a fault-injecting proxy.
//!
//! The `it` test binary includes this with
//! `#[path = "../support/mod.rs"] mod support;`, the other test binaries
//! with `mod support;`, examples with
//! `#[path = "../tests/support/mod.rs"] mod support;`. Nothing here depends on
//! the test harness, so all work.
//!
//! - [`moto`]: start `moto_server` from the project's `.venv` (installed by
//!   `scripts/install-moto.sh`) and build SDK configs that point at it.
//! - [`seed`]: create secrets and parameters through the AWS SDK.
//! - [`memory`]: in-memory stores and backend for tests of the core.
//! - [`proxy`]: an HTTP proxy in front of moto that counts calls per region
//!   and operation, injects errors, delays and hangs, holds calls until the
//!   test releases them, and emulates
//!   cross-account access, which moto cannot do on its own.
//! - [`kube_api`], [`pod_identity_agent`], [`eks_auth`]: stub Kubernetes
//!   API, EKS Pod Identity Agent and EKS Auth servers on loopback, on the
//!   tiny HTTP server of [`stub_server`].
//! - [`ascp_process`]: runs the real `ascp` binary and talks to it on its socket.
//! - [`loopback`]: moto behind the proxy and the Kubernetes stub, with the
//!   binary's environment to reach them.
//! - [`driver_layout`]: writes driver-writes files as the CSI driver does.
//! - [`log`]: a log captured in memory, for a test's tracing subscriber.
//! - [`layout`]: target directories of the atomic writer and what a pod
//!   sees in them.
//! - [`rotation`]: the rotation scenarios (one pod, many pods under two
//!   roles) through the real binary, counting AWS and Kubernetes calls.
//! - [`venv`]: installs moto and the Python clients into `.venv` on first
//!   use, through the pinned scripts, one process at a time.
//! - [`throttle`]: the throttling scenario (every store call throttled for
//!   a while) over [`rotation`]'s node, with `/metrics` read back.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code, unused_imports)]

pub mod ascp_process;
pub mod driver_layout;
pub mod eks_auth;
pub mod http;
pub mod kube_api;
pub mod layout;
pub mod log;
pub mod loopback;
pub mod memory;
pub mod moto;
pub mod pod_identity_agent;
pub mod proxy;
pub mod rotation;
pub mod seed;
pub mod stub_server;
pub mod throttle;
pub mod venv;

pub use moto::{
    MotoServer, TEST_ACCESS_KEY_ID, TEST_ACCOUNT, TEST_SECRET_ACCESS_KEY, config_loader,
    sdk_config, sdk_config_with_credentials, test_credentials,
};
pub use proxy::{Action, FaultProxy, Recorded, Rule, RuleHandle, UNKNOWN};
pub use seed::{
    CreatedSecret, account_credentials, assume_role, create_secret_binary, create_secret_string,
    label_parameter, put_parameter, put_secret_binary, put_secret_string, update_secret_stage,
};
