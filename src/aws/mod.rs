//! The AWS stores: Secrets Manager and Parameter Store behind
//! [`crate::store::Store`], built per (region, credentials) by a
//! [`StoreFactory`] that lives as long as the process. The factory is the
//! mount's [`crate::store::OpenStores`]; `main` builds it from the serve
//! flags, beside the identity backend, which never sees it.
//!
//! This module owns everything between a list of [`crate::store::FetchItem`]s
//! and the AWS APIs: the SDK clients and their settings, concurrency limits,
//! batching (GetParameters, BatchGetSecretValue), the rotation shortcut
//! (DescribeSecret, per pod when the driver sent the mounted version, shared
//! by the node per secret ARN when the mount's records know it, and
//! GetParameters shared per parameter ARN: [`version_checks`]) and error
//! classification ([`classify`]).
//!
//! It must never:
//! - read the environment or files for configuration: the caller passes a
//!   base [`SdkConfig`] and [`FetchOptions`]. The one exception is
//!   [`load_base_config`], which `main` calls once to read the standard AWS
//!   environment through `aws-config`;
//! - log, format or keep a value: values go straight from the SDK's answer
//!   into [`crate::secret::SecretBytes`]; log lines carry the object's name or
//!   ARN, the region, the version and the length only;
//! - decide failover, apply jmesPath or touch files: the mount does that with
//!   the [`crate::store::Fetched`] and [`crate::store::StoreError`] returned
//!   here.
//!
//! One HTTP client (and so one connection pool) serves every SDK client the
//! process builds. SDK clients are kept per (region, credentials)
//! ([`clients`]): a mount whose pod's credentials are cached builds none; the
//! per-mount part of a store is its gate and principal.

pub(crate) mod classify;
pub(crate) mod clients;
mod limits;
mod parameter_store;
mod paths;
mod secrets_manager;
pub mod throttle;
mod version_checks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use aws_config::identity::IdentityCache;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{AppName, BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use futures::future::BoxFuture;

use crate::store::{
    FetchItem, Fetched, Listed, OpenStores, PathQuery, PodCredentials, Store, StoreError, Stores,
};

use clients::shared_https_client;
use clients::{ByCredentials, StoreClients};
pub use limits::{CallBound, FetchOptions};
use limits::{Gate, Limits};
use parameter_store::ParameterStore;
use secrets_manager::{Batching, SecretsManagerStore};
use version_checks::{ParameterChecks, VersionChecks};

/// How long a call may wait for a TCP (and TLS) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one attempt of a call may take. Secrets are at most 64 KiB and
/// BatchGetSecretValue answers at most 20 of them: seconds are plenty.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call may take with its retries. Well inside the two minutes
/// kubelet gives a mount, so a slow region fails (and fails over) in time.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a role stays marked as lacking `secretsmanager:BatchGetSecretValue`
/// after an AccessDenied: long enough not to fill CloudTrail with denials,
/// short enough that granting the permission takes effect soon.
pub const BATCH_DENIED_FOR: Duration = Duration::from_secs(15 * 60);

/// The base config could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The user-agent app id has characters AWS does not allow.
    #[error("invalid user-agent app id {app_id:?}: {reason}")]
    AppId {
        /// The id given.
        app_id: String,
        /// Why it was refused.
        reason: String,
    },
}

/// Loads the base SDK config from the standard AWS environment: endpoint
/// overrides (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SECRETS_MANAGER`,
/// `AWS_ENDPOINT_URL_SSM`), `AWS_USE_FIPS_ENDPOINT`, `AWS_REGION` and the
/// shared config files, with standard retries, this module's timeouts, and
/// `app_id` (`<program>-<version>`, docs/identity.md#user-agent) in the user
/// agent. Its one HTTP
/// client keeps as many idle connections per host as `options` lets calls be
/// in flight.
///
/// The region comes from `AWS_REGION` (or `AWS_DEFAULT_REGION`) or the
/// shared config file only, never from instance metadata: regions come per
/// mount, and asking IMDS where it is unreachable (a pod without host
/// networking) costs seconds and two warnings at every start. The
/// provider's own credentials (the SDK's default chain, which ends with
/// IMDS) are resolved lazily, on the first call signed with them: only
/// `eks-auth` mode makes one. With [`OwnCredentials::Unused`] the chain is
/// not built at all, so its code stays out of an idle provider's memory and
/// no call can be signed with the node's identity by mistake.
///
/// Called once at start-up; the region and credentials it finds are replaced
/// per store by [`StoreFactory::stores`].
pub async fn load_base_config(
    app_id: &str,
    options: &FetchOptions,
    own: OwnCredentials,
) -> Result<SdkConfig, ConfigError> {
    let app_name = AppName::new(app_id.to_owned()).map_err(|e| ConfigError::AppId {
        app_id: app_id.to_owned(),
        reason: e.to_string(),
    })?;
    let http_client = shared_https_client(options.max_concurrent_global.max(1));
    let loader = aws_config::defaults(BehaviorVersion::latest());
    let loader = match own {
        OwnCredentials::Unused => loader.no_credentials(),
        OwnCredentials::DefaultChain => {
            // The SDK's default credentials chain resolves a region when it
            // is built, through IMDS when none is configured: give it ours.
            let chain =
                aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                    .configure(
                        aws_config::provider_config::ProviderConfig::default()
                            .with_http_client(http_client.clone()),
                    )
                    .region(configured_region())
                    .build()
                    .await;
            loader.credentials_provider(chain)
        }
    };
    Ok(loader
        .region(configured_region())
        .app_name(app_name)
        .http_client(http_client)
        .retry_config(RetryConfig::standard())
        .timeout_config(default_timeouts())
        .load()
        .await)
}

/// Whether any call is signed with the provider's own (the node's)
/// credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnCredentials {
    /// None is: IRSA's AssumeRoleWithWebIdentity is unsigned, the Pod
    /// Identity Agent takes the pod's token, and the stores sign with the
    /// pod's credentials.
    Unused,
    /// EKS Auth's AssumeRoleForPodIdentity is signed with them
    /// (`--pod-identity-mode=eks-auth`).
    DefaultChain,
}

/// The region named by the environment or the shared config file, if any;
/// never asks instance metadata.
fn configured_region() -> aws_config::meta::region::RegionProviderChain {
    aws_config::meta::region::RegionProviderChain::first_try(
        aws_config::environment::EnvironmentVariableRegionProvider::new(),
    )
    .or_else(aws_config::profile::ProfileFileRegionProvider::new())
}

/// The timeouts used when the base config sets none.
fn default_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// Builds the stores for one (region, credentials) pair. Cheap to clone; one
/// per process.
#[derive(Clone)]
pub struct StoreFactory {
    base: SdkConfig,
    limits: Limits,
    batch: bool,
    denials: Arc<BatchDenials>,
    /// The node's shared version checks of mounted secrets.
    checks: Arc<VersionChecks>,
    /// The node's shared version checks of mounted parameters.
    parameter_checks: Arc<ParameterChecks>,
    /// SDK clients per (region, credentials).
    clients: Arc<ByCredentials>,
}

impl StoreFactory {
    /// A factory over `base` (normally from [`load_base_config`]).
    ///
    /// Settings the base lacks are filled in: a shared HTTPS client, so that
    /// every store reuses one connection pool, a shared identity cache, and
    /// this module's connect, operation and attempt timeouts. What the base sets (endpoints, FIPS, retries,
    /// app id, timeouts) is kept.
    pub fn new(base: &SdkConfig, options: FetchOptions) -> Self {
        let mut builder = base.to_builder();
        if base.http_client().is_none() {
            builder =
                builder.http_client(shared_https_client(options.max_concurrent_global.max(1)));
        }
        if base.identity_cache().is_none() {
            // One cache for the process; it is partitioned per credentials
            // provider and bounded, so per-mount providers cannot grow it.
            builder = builder.identity_cache(IdentityCache::lazy().build());
        }
        let mut timeouts = base
            .timeout_config()
            .cloned()
            .unwrap_or_else(TimeoutConfig::disabled);
        timeouts.take_defaults_from(&default_timeouts());
        builder = builder.timeout_config(timeouts);
        StoreFactory {
            base: builder.build(),
            limits: Limits::new(&options),
            batch: options.batch_get_secret_value,
            denials: Arc::new(BatchDenials::new(BATCH_DENIED_FOR)),
            checks: Arc::new(VersionChecks::new(options.rotation_check_window)),
            parameter_checks: Arc::new(ParameterChecks::new(options.rotation_check_window)),
            clients: Arc::new(ByCredentials::new()),
        }
    }

    /// The process-wide bound its stores' calls take permits from: the
    /// identity backend's STS and EKS Auth calls must take theirs from it
    /// too, so that `--max-concurrent-fetches` bounds every AWS call.
    pub fn call_bound(&self) -> CallBound {
        self.limits.bound()
    }

    /// The same factory, remembering batch denials for `ttl` instead of
    /// [`BATCH_DENIED_FOR`] (forgets what was remembered).
    pub fn with_batch_denied_for(mut self, ttl: Duration) -> Self {
        self.denials = Arc::new(BatchDenials::new(ttl));
        self
    }

    /// The Secrets Manager and Parameter Store stores acting in `region` with
    /// `credentials`. `principal` names the identity behind the credentials
    /// (the role ARN, say): a BatchGetSecretValue denial is remembered for it.
    ///
    /// The SDK clients come from the factory's cache per (region,
    /// credentials); the SSM client is built only when the Parameter Store
    /// is first asked for something. The gate is the mount's own.
    pub fn stores(&self, region: &str, credentials: &Credentials, principal: &str) -> Stores {
        let clients = self.clients.get(region, credentials, |provider| {
            // `set_credentials_provider` keeps the provider's identity-cache
            // partition (`credentials_provider` would wrap it in a new one),
            // so both clients share one cached identity through the base's
            // cache.
            let mut config = aws_sdk_secretsmanager::config::Builder::from(&self.base);
            config.set_credentials_provider(Some(provider.clone()));
            aws_sdk_secretsmanager::Client::from_conf(
                config
                    .region(Region::new(region.to_owned()))
                    .interceptor(crate::metrics::AwsCallMetrics)
                    .retry_classifier(throttle::NoSdkThrottleRetry)
                    .build(),
            )
        });
        // One gate for both stores: the per-mount limit counts every call
        // of this mount in this region, whichever store makes it.
        let gate = Arc::new(self.limits.for_mount(region));
        let batching = self.batch.then(|| Batching {
            denials: self.denials.clone(),
            principal: principal.to_owned(),
            credentials: clients.provider.clone(),
        });
        Stores {
            secrets_manager: Arc::new(SecretsManagerStore::new(
                clients.secrets_manager.clone(),
                region.to_owned(),
                gate.clone(),
                batching,
                (self.checks.clone(), principal.to_owned()),
            )),
            parameter_store: Arc::new(OnDemandParameterStore {
                base: self.base.clone(),
                clients,
                region: region.to_owned(),
                gate,
                checks: self.parameter_checks.clone(),
            }),
        }
    }

    /// Whether BatchGetSecretValue is currently skipped for `principal`
    /// because it was denied recently.
    pub fn batch_denied(&self, principal: &str) -> bool {
        self.denials.is_denied(principal)
    }
}

impl OpenStores for StoreFactory {
    fn open(&self, region: &str, credentials: &PodCredentials) -> Stores {
        self.stores(region, &credentials.credentials, &credentials.principal)
    }
}

/// The Parameter Store of one mount in one region, whose SSM client is
/// taken (or built) only when the mount has parameters.
struct OnDemandParameterStore {
    base: SdkConfig,
    clients: Arc<StoreClients>,
    region: String,
    gate: Arc<Gate>,
    checks: Arc<ParameterChecks>,
}

impl OnDemandParameterStore {
    /// The store over the mount's SSM client, built on first use.
    fn store(&self) -> ParameterStore {
        let client = self.clients.ssm(|provider| {
            let mut config = aws_sdk_ssm::config::Builder::from(&self.base);
            config.set_credentials_provider(Some(provider.clone()));
            aws_sdk_ssm::Client::from_conf(
                config
                    .region(Region::new(self.region.clone()))
                    .interceptor(crate::metrics::AwsCallMetrics)
                    .retry_classifier(throttle::NoSdkThrottleRetry)
                    .build(),
            )
        });
        ParameterStore::new(
            client,
            self.region.clone(),
            self.gate.clone(),
            self.checks.clone(),
        )
    }
}

impl Store for OnDemandParameterStore {
    fn fetch(&self, items: Vec<FetchItem>) -> BoxFuture<'_, Vec<Result<Fetched, StoreError>>> {
        Box::pin(async move { self.store().fetch(items).await })
    }

    fn list(&self, path: PathQuery) -> BoxFuture<'_, Result<Vec<Listed>, StoreError>> {
        Box::pin(async move { self.store().list(path).await })
    }
}

/// Principals whose BatchGetSecretValue calls were denied, and until when to
/// skip the batch call for them (on tokio's clock, which tests can pause).
pub(crate) struct BatchDenials {
    ttl: Duration,
    until: Mutex<HashMap<String, Instant>>,
}

impl BatchDenials {
    fn new(ttl: Duration) -> Self {
        BatchDenials {
            ttl,
            until: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // The map holds plain data; a panic elsewhere cannot leave it torn.
        self.until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `principal` was denied less than the ttl ago.
    pub(crate) fn is_denied(&self, principal: &str) -> bool {
        let now = Instant::now();
        let mut until = self.lock();
        match until.get(principal) {
            Some(t) if *t > now => true,
            Some(_) => {
                until.remove(principal);
                false
            }
            None => false,
        }
    }

    /// Remembers that `principal` may not call BatchGetSecretValue.
    pub(crate) fn deny(&self, principal: &str) {
        let now = Instant::now();
        let mut until = self.lock();
        // Expired entries go on every insert, so the map holds at most the
        // principals denied within one ttl.
        until.retain(|_, t| *t > now);
        until.insert(principal.to_owned(), now + self.ttl);
    }
}

/// One result per item: an item no path answered (a bug) fails as
/// internal rather than vanishing.
fn settle(results: Vec<Option<Result<Fetched, StoreError>>>) -> Vec<Result<Fetched, StoreError>> {
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(StoreError::new(
                    crate::store::FailureKind::Internal,
                    None,
                    "the object was neither fetched nor failed",
                ))
            })
        })
        .collect()
}

/// Logs the facts of one fetch (object, region, version, length, error
/// code), never the value.
fn log_result(what: &str, region: &str, object: &str, result: &Result<Fetched, StoreError>) {
    match result {
        Ok(fetched) => tracing::debug!(
            object,
            region,
            version = fetched.version(),
            bytes = match fetched {
                Fetched::Value { contents, .. } => contents.len(),
                Fetched::Unchanged { .. } => 0,
                Fetched::Listed(listed) => listed.iter().map(|l| l.contents.len()).sum(),
            },
            "fetched {what}"
        ),
        Err(error) => tracing::debug!(
            object,
            region,
            code = error.code.as_deref().unwrap_or(""),
            kind = ?error.kind,
            "{what} fetch failed"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn denials_expire() {
        let d = BatchDenials::new(Duration::from_secs(30));
        assert!(!d.is_denied("role/a"));
        d.deny("role/a");
        assert!(d.is_denied("role/a"));
        assert!(!d.is_denied("role/b"));
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(d.is_denied("role/a"));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!d.is_denied("role/a"));
        d.deny("role/b");
        assert_eq!(d.lock().len(), 1);
    }

    #[tokio::test]
    async fn the_nodes_credentials_are_there_only_when_a_call_is_signed_with_them() {
        let options = FetchOptions::default();
        let unused = load_base_config("ascp-test", &options, OwnCredentials::Unused)
            .await
            .unwrap();
        assert!(unused.credentials_provider().is_none());
        let chain = load_base_config("ascp-test", &options, OwnCredentials::DefaultChain)
            .await
            .unwrap();
        assert!(chain.credentials_provider().is_some());
    }

    #[tokio::test]
    async fn app_ids_are_checked() {
        let bad = load_base_config(
            "has space",
            &FetchOptions::default(),
            OwnCredentials::Unused,
        )
        .await;
        assert!(matches!(bad, Err(ConfigError::AppId { .. })));
    }
}
