//! SDK clients built once and reused, and the HTTP client they all share.
//!
//! Building an SDK client sets up its runtime plugins and config layers;
//! building two per mount cost about as many instructions as the mount's five
//! calls (benchmarks/README.md). So:
//! - [`shared_https_client`] is one hyper/rustls client for the process
//!   whose TLS configuration is built once, on the first call, and never
//!   again: the SDK asks every new client to re-validate its HTTP client,
//!   which for the default client means parsing every root certificate. Its
//!   pool keeps as many idle connections per host as calls may be in flight.
//! - [`ByRegion`] keeps one client per region for calls whose credentials
//!   do not change (STS AssumeRoleWithWebIdentity, EKS Auth).
//! - [`ByCredentials`] keeps the stores' clients per (region, credentials):
//!   every mount of a pod, and every pod sharing cached credentials, reuses
//!   them. The SSM client of an entry is built only when a mount has
//!   parameters.
//!
//! Both caches are bounded in entries (regions and credentials come from
//! hostile SecretProviderClasses and tokens) and drop entries unused for
//! [`IDLE_FOR`], so expired credentials do not linger. An entry is found by
//! region and access key id and used only if its credentials are equal to
//! the caller's in full; otherwise a new one replaces it. Nothing here logs
//! or formats credentials.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_config::Region;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_secretsmanager::config::SharedHttpClient;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_types::config_bag::ConfigBag;
use moka::sync::Cache;

/// How long an unused client is kept.
pub(crate) const IDLE_FOR: Duration = Duration::from_secs(15 * 60);
/// Regions kept per cache of [`ByRegion`]: AWS has a few dozen.
const MAX_REGIONS: u64 = 64;
/// (region, credentials) pairs kept: the pods of a node with distinct
/// credentials, times their regions.
const MAX_CREDENTIALS: u64 = 512;

/// The HTTPS client every SDK client shares: hyper 1 with rustls, the SDK's
/// own default stack, so one connection pool serves every call.
///
/// The pool keeps up to `max_idle_per_host` idle connections per host, each
/// for 20 s. The caller passes the process-wide bound on calls in flight:
/// hyper opens a connection for every call that finds none idle, so a pool
/// smaller than that bound closes connections in the middle of a burst of
/// mounts only to open new ones a moment later (with TLS, a handshake each).
/// 20 s after a burst its connections are closed, with their buffers.
pub(crate) fn shared_https_client(max_idle_per_host: usize) -> SharedHttpClient {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    let inner = aws_smithy_http_client::Builder::new()
        .pool_max_idle_per_host(max_idle_per_host)
        .pool_idle_timeout(Duration::from_secs(20))
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .build_https();
    SharedHttpClient::new(ValidatedOnce(inner))
}

/// An HTTP client that skips the SDK's per-client validation. The wrapped
/// client's validation only builds (and drops) a connector so certificates
/// load early; its connectors are built once per timeout setting by
/// [`HttpClient::http_connector`] anyway, on the first call.
#[derive(Debug)]
struct ValidatedOnce(SharedHttpClient);

impl HttpClient for ValidatedOnce {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn validate_base_client_config(
        &self,
        _: &RuntimeComponentsBuilder,
        _: &ConfigBag,
    ) -> Result<(), BoxError> {
        Ok(())
    }

    fn validate_final_config(
        &self,
        components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.validate_final_config(components, cfg)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

/// One SDK client per region, built on first use.
pub(crate) struct ByRegion<C> {
    clients: Cache<String, C>,
}

impl<C: Clone + Send + Sync + 'static> ByRegion<C> {
    pub(crate) fn new() -> Self {
        ByRegion {
            clients: Cache::builder()
                .max_capacity(MAX_REGIONS)
                .time_to_idle(IDLE_FOR)
                .build(),
        }
    }

    /// The client of `region`, built by `build` if there is none.
    pub(crate) fn get(&self, region: &str, build: impl FnOnce(Region) -> C) -> C {
        if let Some(client) = self.clients.get(region) {
            return client;
        }
        let client = build(Region::new(region.to_owned()));
        self.clients.insert(region.to_owned(), client.clone());
        client
    }
}

impl<C> std::fmt::Debug for ByRegion<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByRegion")
            .field("regions", &self.clients.entry_count())
            .finish()
    }
}

/// The stores' clients for one (region, credentials).
pub(crate) struct StoreClients {
    credentials: Credentials,
    /// One provider per entry, so the SDK's identity cache keeps one
    /// partition per credentials instead of one per mount.
    pub(crate) provider: SharedCredentialsProvider,
    pub(crate) secrets_manager: aws_sdk_secretsmanager::Client,
    ssm: OnceLock<aws_sdk_ssm::Client>,
}

impl StoreClients {
    /// The SSM client, built on first use by `build`.
    pub(crate) fn ssm(
        &self,
        build: impl FnOnce(&SharedCredentialsProvider) -> aws_sdk_ssm::Client,
    ) -> aws_sdk_ssm::Client {
        self.ssm.get_or_init(|| build(&self.provider)).clone()
    }
}

/// [`StoreClients`] per (region, access key id).
pub(crate) struct ByCredentials {
    clients: Cache<(String, String), Arc<StoreClients>>,
}

impl ByCredentials {
    pub(crate) fn new() -> Self {
        ByCredentials {
            clients: Cache::builder()
                .max_capacity(MAX_CREDENTIALS)
                .time_to_idle(IDLE_FOR)
                .build(),
        }
    }

    /// The clients of `region` acting with `credentials`; the Secrets
    /// Manager client is built by `build` if there is none.
    pub(crate) fn get(
        &self,
        region: &str,
        credentials: &Credentials,
        build: impl FnOnce(&SharedCredentialsProvider) -> aws_sdk_secretsmanager::Client,
    ) -> Arc<StoreClients> {
        let key = (region.to_owned(), credentials.access_key_id().to_owned());
        if let Some(found) = self.clients.get(&key)
            && found.credentials == *credentials
        {
            return found;
        }
        let provider = SharedCredentialsProvider::new(credentials.clone());
        let clients = Arc::new(StoreClients {
            credentials: credentials.clone(),
            secrets_manager: build(&provider),
            provider,
            ssm: OnceLock::new(),
        });
        self.clients.insert(key, clients.clone());
        clients
    }

    #[cfg(test)]
    fn len(&self) -> u64 {
        self.clients.run_pending_tasks();
        self.clients.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn sm_client(provider: &SharedCredentialsProvider) -> aws_sdk_secretsmanager::Client {
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(provider.clone())
            .build();
        aws_sdk_secretsmanager::Client::from_conf(config)
    }

    #[test]
    fn clients_are_reused_per_region_and_credentials() {
        let built = AtomicUsize::new(0);
        let build = |p: &SharedCredentialsProvider| {
            built.fetch_add(1, Ordering::SeqCst);
            sm_client(p)
        };
        let cache = ByCredentials::new();
        let a = Credentials::new("AKIDA", "secret-a", Some("t".into()), None, "test");
        let first = cache.get("eu-west-1", &a, build);
        let again = cache.get("eu-west-1", &a, build);
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(built.load(Ordering::SeqCst), 1);

        // Another region, or the same key id with other secrets, builds anew.
        cache.get("us-east-1", &a, build);
        let changed = Credentials::new("AKIDA", "secret-b", Some("t".into()), None, "test");
        let replaced = cache.get("eu-west-1", &changed, build);
        assert!(!Arc::ptr_eq(&first, &replaced));
        assert_eq!(built.load(Ordering::SeqCst), 3);
        assert_eq!(cache.len(), 2);

        // The SSM client is built once, on demand.
        let ssm_built = AtomicUsize::new(0);
        for _ in 0..2 {
            replaced.ssm(|p| {
                ssm_built.fetch_add(1, Ordering::SeqCst);
                let config = aws_sdk_ssm::Config::builder()
                    .behavior_version(aws_config::BehaviorVersion::latest())
                    .region(Region::new("eu-west-1"))
                    .credentials_provider(p.clone())
                    .build();
                aws_sdk_ssm::Client::from_conf(config)
            });
        }
        assert_eq!(ssm_built.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn regions_are_reused() {
        let cache = ByRegion::new();
        let built = AtomicUsize::new(0);
        for region in ["eu-west-1", "eu-west-1", "us-east-1"] {
            let got = cache.get(region, |r| {
                built.fetch_add(1, Ordering::SeqCst);
                r.to_string()
            });
            assert_eq!(got, region);
        }
        assert_eq!(built.load(Ordering::SeqCst), 2);
    }
}
