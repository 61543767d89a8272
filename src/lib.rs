//! ascp: the AWS Secrets and Configuration Provider for the Kubernetes
//! Secrets Store CSI driver.
//!
//! The CSI driver calls a provider over gRPC on a unix socket each time a pod
//! mounts a volume that names a SecretProviderClass with `provider: aws`. One
//! `Mount` travels through these modules, in this order:
//!
//! - [`server`]: binds `<provider-volume>/aws.sock` and serves the driver's
//!   `v1alpha1.CSIDriverProvider` API ([`proto`]) with bounded connections,
//!   streams and messages, to any `:authority` the driver sends
//!   ([`server::authority`]); isolates each request, tells a mount when its
//!   caller gave up, and shuts down gracefully.
//! - [`mount`]: one mount, as the numbered steps of its module doc: offline
//!   checks → the target's order (newest wins) → regions → identity and what
//!   a remount may reuse → the byte budget and the fetch per region → the
//!   failover rule per object → files → delivery. It owns the all-or-nothing
//!   rule (every object is fetched before anything is written), the byte
//!   budgets and the rotation records.
//! - [`spc`]: turns the request's attributes and the SecretProviderClass
//!   `objects` YAML into typed, validated descriptors (remembered per class),
//!   and decides file names and modes. All input here is hostile and
//!   bounded.
//! - [`store`]: the contracts a mount calls through: [`store::Identity`]
//!   (the pod's region and credentials), [`store::OpenStores`] (a region's
//!   stores for those credentials) and [`store::Store`] (fetch a list of
//!   objects in one region).
//! - [`identity`]: the pod's identity: the driver's service-account token
//!   → IRSA (STS AssumeRoleWithWebIdentity) or EKS Pod Identity (agent or
//!   EKS Auth), optional role chaining, a credential cache; the pod's region
//!   from its node. Implements [`store::Identity`].
//! - [`aws`]: the Secrets Manager and Parameter Store stores on the AWS SDK:
//!   concurrent and batched reads, the node-shared version checks, error
//!   classification, and the process-wide bound on AWS calls, which the
//!   identity's STS and EKS Auth calls share, as they share the node's
//!   backoff when AWS throttles ([`aws::throttle`]); its store factory
//!   implements [`store::OpenStores`].
//! - [`jmes`]: extracts JSON keys with JMESPath, with its own interpreter
//!   bounded in size, depth, amplification and work.
//! - [`output`]: writes the files atomically inside the target directory
//!   without ever following a symlink, or hands them to the driver.
//! - [`error`]: the one error type and its mapping to gRPC status codes.
//!
//! Around the data path:
//! - [`config`]: the command line, checked before the runtime starts.
//! - [`cli`]: the operator's tools `ascp validate`, `ascp mount` and
//!   `ascp doctor` (which checks a pod's whole chain in the cluster and AWS).
//! - [`health`]: `/metrics`, `/healthz` (the socket answers a gRPC health
//!   check) and `/readyz` over HTTP.
//! - [`signals`]: the shutdown future; [`telemetry`]: logging set-up and the
//!   panic hook.
//! - [`secret`]: redacting newtypes for secret values and tokens.
//!
//! Private to the crate, used by the layers above:
//! - `metrics`: the Prometheus registry, low-cardinality labels only, and
//!   the interceptor that counts every AWS call;
//! - `arn`: the one ARN parser;
//! - `encoding`: `objectEncoding` (base64, hex);
//! - `bounded_text`: bounding and escaping text before it reaches a message
//!   or a log line;
//! - `failure` and `store_kind`: how a call failed and which store an object
//!   lives in (re-exported by [`store`]).
//!
//! A module is public only when the binary, the integration tests or the
//! fuzz targets use it; the fuzz targets' entry points (`fuzzing`) are built
//! only with the `fuzzing` feature, which the tests turn on and the shipped
//! binary does not.
//!
//! Imports run downward: `main` → `config`/`cli`/`health` → `server` →
//! `mount` → `identity` → `aws` → `output` → `spc` → `store` → `error` →
//! `failure`/`store_kind`, with `jmes`, `metrics`, `secret`, `arn`,
//! `encoding` and `bounded_text` usable from anywhere. A module never
//! imports one above it, and no two modules import each other.

// The docs are read with `cargo doc --document-private-items`: a public
// module's doc names the private modules that do its work.
#![allow(rustdoc::private_intra_doc_links)]

mod arn;
pub mod aws;
mod bounded_text;
pub mod cli;
pub mod config;
mod encoding;
pub mod error;
mod failure;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod identity;
pub mod jmes;
mod metrics;
pub mod mount;
pub mod output;
pub mod secret;
pub mod server;
pub mod signals;
pub mod spc;
pub mod store;
mod store_kind;
pub mod telemetry;

/// The generated protobuf and gRPC types of the driver's provider API.
pub mod proto {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("v1alpha1");

    // Hand-written so that no Debug of a request or response can show the
    // tokens in `attributes` or the secret values in file contents.
    impl std::fmt::Debug for MountRequest {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("MountRequest")
                .field(
                    "attributes",
                    &format_args!("<{} bytes>", self.attributes.len()),
                )
                .field("secrets", &format_args!("<{} bytes>", self.secrets.len()))
                .field("target_path", &self.target_path)
                .field("permission", &self.permission)
                .field("current_object_version", &self.current_object_version)
                .finish()
        }
    }

    impl std::fmt::Debug for MountResponse {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("MountResponse")
                .field("object_version", &self.object_version)
                .field("error", &self.error)
                .field("files", &self.files)
                .finish()
        }
    }

    impl std::fmt::Debug for File {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("File")
                .field("path", &self.path)
                .field("mode", &format_args!("{:o}", self.mode))
                .field(
                    "contents",
                    &format_args!("<redacted {} bytes>", self.contents.len()),
                )
                .finish()
        }
    }
}

/// The program name reported to the driver and used in the AWS user agent.
pub const PROGRAM: &str = "secrets-store-csi-driver-provider-aws-rs";

/// This build's semantic version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod tests {
    use super::proto::{File, MountRequest, MountResponse};

    #[test]
    fn wire_types_never_debug_tokens_or_contents() {
        let request = MountRequest {
            attributes: r#"{"csi.storage.k8s.io/serviceAccount.tokens":"tok-SECRET"}"#.into(),
            target_path: "/var/lib/kubelet/pods/x".into(),
            ..Default::default()
        };
        let response = MountResponse {
            files: vec![File {
                path: "db".into(),
                mode: 0o400,
                contents: b"value-SECRET".to_vec(),
            }],
            ..Default::default()
        };
        let shown = format!("{request:?} {response:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(
            shown.contains("/var/lib/kubelet/pods/x") && shown.contains("\"db\""),
            "{shown}"
        );
    }
}
