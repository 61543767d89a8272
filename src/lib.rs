//! ascp: the AWS Secrets and Configuration Provider for the Kubernetes
//! Secrets Store CSI driver.
//!
//! The CSI driver calls a provider over gRPC on a unix socket each time a pod
//! mounts a volume that names a SecretProviderClass with `provider: aws`. One
//! `Mount` travels through these modules, in this order:
//!
//! - [`server`]: binds `<provider-volume>/aws.sock`, serves the driver's
//!   `v1alpha1.CSIDriverProvider` API ([`proto`]), isolates each request and
//!   shuts down gracefully.
//! - [`mount`]: orchestrates one mount: attributes → identity → fetch → files.
//!   It owns the all-or-nothing rule: every object is fetched before anything
//!   is written.
//! - [`spc`]: turns the request's attributes and the SecretProviderClass
//!   `objects` YAML into typed, validated descriptors, and decides file names
//!   and modes. All input here is hostile and bounded.
//! - [`store`]: the contract every secret store implements (fetch a list of
//!   objects in one region), and the [`store::Backend`] that hands a mount the
//!   stores acting with the pod's identity.
//! - [`identity`]: the pod's identity: the driver's service-account token
//!   → IRSA (STS AssumeRoleWithWebIdentity) or EKS Pod Identity (agent or
//!   EKS Auth), optional role chaining, a credential cache; the pod's region
//!   from its node. Implements [`store::Backend`].
//! - [`aws`]: the Secrets Manager and Parameter Store stores on the AWS SDK:
//!   concurrent and batched reads, the rotation check, error classification.
//! - [`jmes`]: extracts JSON keys with JMESPath, bounded in size and depth.
//! - [`output`]: writes the files atomically inside the target directory
//!   without ever following a symlink, or hands them to the driver.
//! - [`error`]: the one error type and its mapping to gRPC status codes.
//! - [`secret`]: redacting newtypes for secret values and tokens.
//! - [`metrics`]: the Prometheus registry, low-cardinality labels only, and
//!   the interceptor that counts every AWS call.
//! - [`health`]: `/metrics`, `/healthz` (the socket answers a gRPC health
//!   check) and `/readyz` over HTTP.
//! - [`config`]: the command line, checked before the runtime starts.
//! - [`cli`]: the operator's tools `ascp validate` and `ascp mount`.
//! - [`signals`]: the shutdown future.
//! - [`telemetry`]: logging set-up and the panic hook.
//! - [`text`]: bounding text before it reaches a message.

pub mod aws;
pub mod cli;
pub mod config;
pub mod error;
pub mod health;
pub mod identity;
pub mod jmes;
pub mod metrics;
pub mod mount;
pub mod output;
pub mod secret;
pub mod server;
pub mod signals;
pub mod spc;
pub mod store;
pub mod telemetry;
pub mod text;

/// The generated protobuf and gRPC types of the driver's provider API.
pub mod proto {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("v1alpha1");
}

/// The program name reported to the driver and used in the AWS user agent.
pub const PROGRAM: &str = "secrets-store-csi-driver-provider-aws-rs";

/// This build's semantic version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
