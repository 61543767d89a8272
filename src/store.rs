//! The contracts between a mount and the services it calls, in the order a
//! mount uses them:
//!
//! - an [`Identity`] finds the pod's region when nothing names one, and turns
//!   the pod's identity into [`PodCredentials`]: the part that does not depend
//!   on a region (the Pod Identity Agent, EKS Auth) once per mount, the
//!   regional part (STS) once per region;
//! - [`OpenStores`] builds the [`Stores`] of one region acting with those
//!   credentials (the AWS client factory in `aws` implements it);
//! - a [`Store`] fetches a list of objects in one region. It receives every
//!   object of a mount that it serves at once, so an implementation can fetch
//!   them concurrently and batch them; it returns one result per item, in the
//!   items' order. Secrets Manager and Parameter Store each implement it.
//!   It also lists a path ([`PathQuery`]): every object whose name lies
//!   under a prefix, with its value and version, each listed name checked
//!   to lie under the prefix whatever the service's own filter matched.
//!
//! Also here: how long a mount's AWS calls may wait while the node backs
//! off from throttling ([`Patience`]), and the files a mount's path
//! listings may still add ([`MatchBudget`]).
//!
//! The production implementations live in `identity` and `aws`; tests use
//! in-memory ones. A store never logs or formats a value; its errors carry
//! facts (object, AWS error code, the service's message), never the value.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_credential_types::Credentials;
use futures::future::BoxFuture;

use crate::error::Error;
use crate::secret::{SecretBytes, Token};

pub use crate::failure::{FailureKind, StoreError};
pub use crate::store_kind::StoreKind;

/// One object to fetch from one store in one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchItem {
    /// The name or full ARN to ask the store for.
    pub name: String,
    /// A pinned version id (Secrets Manager VersionId, SSM version number).
    pub version: Option<String>,
    /// A version stage (Secrets Manager) or parameter label (SSM).
    pub label: Option<String>,
    /// The version mounted now, on a rotation remount: the one the driver
    /// sent (`current_object_version`, drivers up to v1.5), else the one
    /// this provider's records hold for the target (driver v1.6). A store
    /// may answer [`Fetched::Unchanged`] when it is still the one to serve.
    pub mounted_version: Option<String>,
    /// The full ARN the pod's own earlier fetch returned for
    /// `mounted_version` (from the mount's records): lets a store check the
    /// version once per secret for every pod mounting it, keyed by this ARN.
    pub arn: Option<String>,
}

/// What a store returns for one item; for a path object, what [`Store::list`]
/// returned, as the mount carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The value and its version.
    Value {
        /// The object's contents, exactly as the store holds them.
        contents: SecretBytes,
        /// The store's version of this value.
        version: String,
        /// The object's full ARN as the store returned it, when it does.
        arn: Option<String>,
    },
    /// The mounted version (`FetchItem::mounted_version`) is still the one
    /// to serve; the caller reuses the mounted contents.
    Unchanged {
        /// The version to serve: the mounted one.
        version: String,
    },
    /// What a path object lists ([`Store::list`]): each match with its own
    /// value and version.
    Listed(Vec<Listed>),
}

impl Fetched {
    /// The version of the fetched or unchanged value; empty for a listing,
    /// whose matches carry their own.
    pub fn version(&self) -> &str {
        match self {
            Fetched::Value { version, .. } | Fetched::Unchanged { version } => version,
            Fetched::Listed(_) => "",
        }
    }
}

/// Files a mount's path listings may still add in one region, shared by
/// all of them: a class of many paths holds at most the per-mount file
/// limit in memory, however many objects each path matches.
#[derive(Debug)]
pub struct MatchBudget {
    left: AtomicUsize,
    /// The limit the budget was cut from, for the error.
    limit: usize,
}

impl MatchBudget {
    /// `left` of a per-mount `limit` (what the mount's other files leave).
    pub fn new(left: usize, limit: usize) -> Arc<MatchBudget> {
        Arc::new(MatchBudget {
            left: AtomicUsize::new(left),
            limit,
        })
    }

    /// Takes one file; `false` when none is left.
    pub fn take(&self) -> bool {
        self.left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Returns `n` files taken by a listing that failed.
    pub fn give_back(&self, n: usize) {
        self.left.fetch_add(n, Ordering::AcqRel);
    }

    /// The per-mount limit.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// A path to list: every object whose name starts with `prefix`.
#[derive(Debug, Clone)]
pub struct PathQuery {
    /// The names' common beginning, ending in `/`.
    pub prefix: String,
    /// Names at any depth below the prefix (`/**`); else only those with no
    /// further `/` (`/*`).
    pub recursive: bool,
    /// Most matches accepted; more is an error, found before any value is
    /// read where the service lists names apart from values.
    pub limit: usize,
    /// The mount's files left for matches, shared with its other paths.
    pub budget: Arc<MatchBudget>,
}

impl PathQuery {
    /// Whether `name` is one of the path's matches.
    pub fn matches(&self, name: &str) -> bool {
        name.strip_prefix(&self.prefix)
            .is_some_and(|rest| !rest.is_empty() && (self.recursive || !rest.contains('/')))
    }
}

/// One object found under a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its full name, starting with the path's prefix.
    pub name: String,
    /// Its contents, exactly as the store holds them.
    pub contents: SecretBytes,
    /// The store's version of this value.
    pub version: String,
}

/// Fetches objects from one store, in one region, with one identity.
pub trait Store: Send + Sync {
    /// Fetches every item; returns exactly one result per item, in order.
    fn fetch(&self, items: Vec<FetchItem>) -> BoxFuture<'_, Vec<Result<Fetched, StoreError>>>;

    /// Every object under `path`, with its value, in name order; an error
    /// when more than `path.limit` match or when one of them cannot be read
    /// (the error names it).
    fn list(&self, path: PathQuery) -> BoxFuture<'_, Result<Vec<Listed>, StoreError>>;
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
pub struct PodRef {
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

/// Credentials acting as a pod, and who they act as.
#[derive(Debug, Clone)]
pub struct PodCredentials {
    /// The credentials (their `Debug` redacts the secret parts).
    pub credentials: Credentials,
    /// The identity behind them (a role ARN, say), for messages and for
    /// remembering per-principal facts such as a BatchGetSecretValue denial.
    pub principal: String,
}

/// The pod's region and credentials: the identity step of a mount.
pub trait Identity: Send + Sync {
    /// The pod's region when the SecretProviderClass names none.
    fn default_region<'a>(&'a self, pod: &'a PodRef) -> BoxFuture<'a, Result<String, Error>>;

    /// The pod's credentials that do not depend on a region (EKS Pod
    /// Identity), resolved once per mount and shared by its regions; `None`
    /// when every credential is regional (IRSA).
    fn pod_credentials<'a>(
        &'a self,
        pod: &'a PodRef,
    ) -> BoxFuture<'a, Result<Option<PodCredentials>, Error>>;

    /// The credentials acting as `pod` in `region`, starting from what
    /// [`Identity::pod_credentials`] returned (STS for IRSA, role chaining).
    fn region_credentials<'a>(
        &'a self,
        pod: &'a PodRef,
        region: &'a str,
        shared: Option<&'a PodCredentials>,
    ) -> BoxFuture<'a, Result<PodCredentials, Error>>;
}

/// Builds the stores of one region acting with given credentials.
pub trait OpenStores: Send + Sync {
    /// The Secrets Manager and Parameter Store of `region`, acting with
    /// `credentials`.
    fn open(&self, region: &str, credentials: &PodCredentials) -> Stores;
}

/// How long a mount's AWS calls may wait while the node backs off from
/// throttling (`aws::throttle`). The mount sets it for its calls
/// ([`Patience::scope`]); calls outside any mount wait a bounded while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// Until this instant: a first mount, whose deadline it is.
    Until(tokio::time::Instant),
    /// Not at all: a remount over files and records of its own. While the
    /// node backs off, its calls are not sent; it fails naming throttling
    /// and the pod keeps its files.
    None,
}

tokio::task_local! {
    static PATIENCE: Patience;
}

impl Patience {
    /// Runs `work` (a mount's fetch) with this patience for its AWS calls.
    pub async fn scope<F: std::future::Future>(self, work: F) -> F::Output {
        PATIENCE.scope(self, work).await
    }

    /// The patience of the mount being served, if any.
    pub fn current() -> Option<Patience> {
        PATIENCE.try_with(|p| *p).ok()
    }
}
