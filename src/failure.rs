//! How a call to a store or an identity service failed, as plain data at the
//! bottom of the module graph.
//!
//! `error` and `store` import these, and `store` re-exports them to the
//! layers that name failures through it (`identity`, `aws`, `mount`). This
//! module imports nothing from the crate, so `error`, which sits below
//! `store`, names a kind of failure without importing it.

/// How a failed fetch should be treated: the gRPC code it maps to, and
/// whether failover may hide it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The object (or its version) does not exist.
    NotFound,
    /// The caller may not read it, or may not decrypt it.
    PermissionDenied,
    /// The request was wrong (bad name, bad version, bad selector).
    InvalidArgument,
    /// Throttling: answered after the one retry, or a call not sent while
    /// the node backs off.
    Throttled,
    /// The service's trouble: a 5xx, a timeout, a broken connection, an
    /// endpoint that does not answer.
    Unavailable,
    /// Anything else.
    Internal,
}

impl FailureKind {
    /// A client error (HTTP 4xx class) fails the mount even when another
    /// region could answer; only service-side trouble may fail over.
    pub fn is_client_error(self) -> bool {
        matches!(
            self,
            FailureKind::NotFound | FailureKind::PermissionDenied | FailureKind::InvalidArgument
        )
    }
}

/// A failed fetch of one item.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
pub struct StoreError {
    /// How to treat the failure.
    pub kind: FailureKind,
    /// The service's error code, e.g. `ResourceNotFoundException`.
    pub code: Option<String>,
    /// A message safe to show: the service's message or a description of the
    /// transport failure. Never a value.
    pub message: String,
}

impl StoreError {
    /// Builds an error.
    pub fn new(kind: FailureKind, code: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            kind,
            code: code.map(str::to_owned),
            message: message.into(),
        }
    }
}
