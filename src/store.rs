//! The contract between a mount and the places secrets live.
//!
//! A [`Store`] fetches a list of objects in one region with one set of
//! credentials. It receives every object of a mount that it serves at once, so
//! an implementation can fetch them concurrently and batch them; it returns
//! one result per item, in the items' order. Secrets Manager and Parameter
//! Store each implement it.
//!
//! A [`Backend`] hands a mount the stores that act with the pod's identity in
//! a region, and finds the pod's region when the SecretProviderClass names
//! none. The AWS backend lives in `aws`; tests use in-memory ones.
//!
//! A store never logs or formats a value; its errors carry facts (object,
//! AWS error code, the service's message), never the value.

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::error::Error;
use crate::secret::{SecretBytes, Token};

/// One object to fetch from one store in one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchItem {
    /// The name or full ARN to ask the store for.
    pub name: String,
    /// A pinned version id (Secrets Manager VersionId, SSM version number).
    pub version: Option<String>,
    /// A version stage (Secrets Manager) or parameter label (SSM).
    pub label: Option<String>,
    /// The version mounted now, when the driver told us (rotation remount).
    /// A store may answer [`Fetched::Unchanged`] when this is still current.
    pub current: Option<String>,
}

/// What a store returns for one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The value and its version.
    Value {
        /// The object's contents, exactly as the store holds them.
        contents: SecretBytes,
        /// The store's version of this value.
        version: String,
    },
    /// The mounted version (`FetchItem::current`) is still the one to serve;
    /// the caller reuses the mounted contents.
    Unchanged {
        /// The current version.
        version: String,
    },
}

impl Fetched {
    /// The version of the fetched or unchanged value.
    pub fn version(&self) -> &str {
        match self {
            Fetched::Value { version, .. } | Fetched::Unchanged { version } => version,
        }
    }
}

/// How a failed fetch should be treated: the gRPC code it maps to (see
/// `error::kind_code`; never `UNAVAILABLE`), and whether failover may hide it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The object (or its version) does not exist.
    NotFound,
    /// The caller may not read it, or may not decrypt it.
    PermissionDenied,
    /// The request was wrong (bad name, bad version, bad selector).
    InvalidArgument,
    /// Throttling that outlived the retries.
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

/// Which store an object lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreKind {
    /// AWS Secrets Manager (`objectType: secretsmanager`).
    SecretsManager,
    /// AWS Systems Manager Parameter Store (`objectType: ssmparameter`).
    ParameterStore,
}

impl StoreKind {
    /// The SecretProviderClass spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::SecretsManager => "secretsmanager",
            StoreKind::ParameterStore => "ssmparameter",
        }
    }
}

/// Fetches objects from one store, in one region, with one identity.
pub trait Store: Send + Sync {
    /// Fetches every item; returns exactly one result per item, in order.
    fn fetch(&self, items: Vec<FetchItem>) -> BoxFuture<'_, Vec<Result<Fetched, StoreError>>>;
}

/// The stores of one region, acting with one pod's identity.
#[derive(Clone)]
pub struct Stores {
    /// Secrets Manager.
    pub secrets_manager: Arc<dyn Store>,
    /// Parameter Store.
    pub parameter_store: Arc<dyn Store>,
}

impl Stores {
    /// The store for a kind of object.
    pub fn get(&self, kind: StoreKind) -> &Arc<dyn Store> {
        match kind {
            StoreKind::SecretsManager => &self.secrets_manager,
            StoreKind::ParameterStore => &self.parameter_store,
        }
    }
}

/// Who the pod is, as the driver told us, and how it wants to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIdentity {
    /// Pod name.
    pub pod_name: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod UID.
    pub pod_uid: String,
    /// The pod's service account.
    pub service_account: String,
    /// `serviceAccount.tokens` as the driver sent it (JSON, secret).
    pub tokens: Option<Token>,
    /// `usePodIdentity`: EKS Pod Identity instead of IRSA.
    pub use_pod_identity: bool,
    /// `preferredAddressType` for the Pod Identity Agent.
    pub preferred_address: AddressPreference,
    /// `assumeRoleArn`: a role to chain into after the pod's own.
    pub assume_role_arn: Option<String>,
    /// `assumeRoleExternalId` for that role.
    pub assume_role_external_id: Option<String>,
}

/// Which Pod Identity Agent endpoint to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressPreference {
    /// IPv4 first, then IPv6.
    #[default]
    Auto,
    /// IPv4 only.
    Ipv4,
    /// IPv6 only.
    Ipv6,
}

/// Supplies a mount with its region and its stores.
pub trait Backend: Send + Sync {
    /// The pod's region when the SecretProviderClass names none.
    fn default_region<'a>(&'a self, pod: &'a PodIdentity) -> BoxFuture<'a, Result<String, Error>>;

    /// The stores acting with the pod's identity in `region`.
    fn stores<'a>(
        &'a self,
        pod: &'a PodIdentity,
        region: &'a str,
    ) -> BoxFuture<'a, Result<Stores, Error>>;
}
