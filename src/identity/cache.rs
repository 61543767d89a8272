//! The credential cache (beyond ASCP, which calls STS or the agent on every
//! mount).
//!
//! The driver remounts every pod's volumes every two minutes to rotate
//! secrets; without a cache each remount costs an STS or agent call per
//! region. Entries are keyed by the method, the principal (role ARN, agent
//! address preference, cluster), the region and the SHA-256 of the pod's
//! token: credentials are only ever reused for the very token that obtained
//! them, so two pods, or one pod before and after its token rotates, never
//! share an entry.
//!
//! Built on `moka`'s async cache: `try_get_with` makes concurrent loads of one
//! key share a single call (and does not cache failures), a per-entry expiry
//! drops an entry [`REFRESH_MARGIN`] before its credentials expire, and the
//! size is bounded with least-recently-used eviction.
//!
//! This module never holds a token: only its digest. The cached credentials
//! are `aws_credential_types::Credentials`, whose `Debug` redacts the secret
//! parts.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use moka::Expiry;
use moka::future::Cache;
use moka::policy::EvictionPolicy;
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::secret::Token;
use crate::store::PodCredentials;

/// An entry is dropped this long before its credentials expire, so that a
/// mount (at most about two minutes) never starts with credentials about to
/// lapse.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// No entry lives longer than this, whatever its credentials say: a bound on
/// how long a revoked role keeps working through us after a misreported
/// expiry.
pub const MAX_TTL: Duration = Duration::from_secs(12 * 60 * 60);
/// Default number of entries: one per pod and region on a busy node, with
/// room to spare. Each entry is a few hundred bytes.
pub const DEFAULT_CAPACITY: u64 = 10_000;

/// How credentials were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// STS AssumeRoleWithWebIdentity with the pod's token.
    Irsa,
    /// The EKS Pod Identity Agent.
    Agent,
    /// EKS Auth AssumeRoleForPodIdentity.
    EksAuth,
    /// STS AssumeRole with the pod's credentials (`assumeRoleArn`).
    AssumeRole,
}

impl Method {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Method::Irsa => "irsa",
            Method::Agent => "pod_identity_agent",
            Method::EksAuth => "eks_auth",
            Method::AssumeRole => "assume_role",
        }
    }
}

/// What identifies one set of credentials.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    method: Method,
    principal: String,
    region: String,
    token_sha256: [u8; 32],
}

impl CacheKey {
    /// The key for credentials obtained by `method` for `principal` in
    /// `region` with `token`. Only the token's digest is kept.
    pub fn new(method: Method, principal: &str, region: &str, token: &Token) -> Self {
        let digest = Sha256::digest(token.expose().as_bytes());
        let mut token_sha256 = [0u8; 32];
        token_sha256.copy_from_slice(digest.as_slice());
        Self {
            method,
            principal: principal.to_owned(),
            region: region.to_owned(),
            token_sha256,
        }
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A short digest prefix tells entries apart in traces; a digest of a
        // token is not the token, and four bytes of it cannot be replayed.
        write!(
            f,
            "CacheKey({:?}, {}, {}, sha256:{:02x}{:02x}{:02x}{:02x}…)",
            self.method,
            self.principal,
            self.region,
            self.token_sha256[0],
            self.token_sha256[1],
            self.token_sha256[2],
            self.token_sha256[3]
        )
    }
}

/// Expires each entry [`REFRESH_MARGIN`] before its credentials do.
struct CredentialExpiry;

impl Expiry<CacheKey, PodCredentials> for CredentialExpiry {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &PodCredentials,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(time_to_live(value.credentials.expiry(), SystemTime::now()))
    }
}

/// How long credentials expiring at `expiry` may be served from the cache,
/// seen at `now`. Zero when they expire within the margin (the entry is
/// then used by the mount that loaded it and its concurrent waiters only).
pub fn time_to_live(expiry: Option<SystemTime>, now: SystemTime) -> Duration {
    match expiry {
        Some(at) => at
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
            .saturating_sub(REFRESH_MARGIN)
            .min(MAX_TTL),
        None => MAX_TTL,
    }
}

/// The cache. Cheap to clone; clones share entries.
#[derive(Clone)]
pub struct CredentialCache {
    cache: Cache<CacheKey, PodCredentials>,
}

impl CredentialCache {
    /// A cache of at most `capacity` entries (0 disables caching).
    pub fn new(capacity: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                .eviction_policy(EvictionPolicy::lru())
                .expire_after(CredentialExpiry)
                .build(),
        }
    }

    /// The cached credentials for `key`, or those `load` obtains. Concurrent
    /// callers with one key share a single `load`; a failed load is not
    /// cached, and every caller waiting on it gets its error.
    pub async fn get_or_load<F>(&self, key: CacheKey, load: F) -> Result<PodCredentials, Error>
    where
        F: Future<Output = Result<PodCredentials, Error>>,
    {
        // Whether this caller ran the load tells a miss from a hit; callers
        // that waited on another's load count as hits.
        let method = key.method.label();
        let loaded = std::sync::atomic::AtomicBool::new(false);
        let result = self
            .cache
            .try_get_with(key, async {
                loaded.store(true, std::sync::atomic::Ordering::Relaxed);
                load.await
            })
            .await
            .map_err(unshare);
        let event = match (&result, loaded.load(std::sync::atomic::Ordering::Relaxed)) {
            (Err(_), _) => "load_error",
            (Ok(_), true) => "miss",
            (Ok(_), false) => "hit",
        };
        crate::metrics::global().cache_event(method, event);
        result
    }

    /// Entries held now (approximate: expired entries leave lazily).
    pub async fn len(&self) -> u64 {
        self.cache.run_pending_tasks().await;
        self.cache.entry_count()
    }

    /// Whether the cache holds no entry.
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }
}

/// An error shared by the callers of one failed load, turned back into an
/// owned [`Error`] for each of them.
fn unshare(shared: Arc<Error>) -> Error {
    match Arc::try_unwrap(shared) {
        Ok(error) => error,
        Err(shared) => match &*shared {
            Error::Token { audience, reason } => Error::Token {
                audience,
                reason: reason.clone(),
            },
            Error::Region { reason } => Error::Region {
                reason: reason.clone(),
            },
            Error::Identity {
                kind, precondition, ..
            } => Error::Identity {
                what: shared.full_message(),
                kind: *kind,
                precondition: *precondition,
                source: None,
            },
            other => Error::Internal(other.full_message()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_credential_types::Credentials;

    use crate::store::FailureKind;

    fn creds(valid_for: Duration) -> PodCredentials {
        PodCredentials {
            credentials: Credentials::new(
                "AKID",
                "SECRET",
                Some("SESSION".into()),
                Some(SystemTime::now() + valid_for),
                "test",
            ),
            principal: "arn:aws:iam::123456789012:role/r".into(),
        }
    }

    fn key(token: &str) -> CacheKey {
        CacheKey::new(
            Method::Irsa,
            "arn:aws:iam::123456789012:role/r",
            "us-east-1",
            &Token::new(token),
        )
    }

    #[test]
    fn ttl_stops_five_minutes_before_expiry() {
        let now = SystemTime::now();
        let ttl = time_to_live(Some(now + Duration::from_secs(3600)), now);
        assert_eq!(ttl, Duration::from_secs(3300));
        assert_eq!(
            time_to_live(Some(now + Duration::from_secs(200)), now),
            Duration::ZERO
        );
        assert_eq!(
            time_to_live(Some(now - Duration::from_secs(5)), now),
            Duration::ZERO
        );
        assert_eq!(time_to_live(None, now), MAX_TTL);
    }

    #[test]
    fn keys_hold_a_digest_not_the_token() {
        let k = key("distinctive-token-value");
        let shown = format!("{k:?}");
        assert!(!shown.contains("distinctive"), "{shown}");
        assert_ne!(k, key("another-token"));
        assert_eq!(k, key("distinctive-token-value"));
    }

    // Paused clock: the sleeps only keep every task in flight at once.
    #[tokio::test(start_paused = true)]
    async fn concurrent_loads_share_one_call_and_tokens_never_share() {
        let cache = CredentialCache::new(100);
        let calls = Arc::new(AtomicUsize::new(0));
        let load = |calls: Arc<AtomicUsize>| async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(creds(Duration::from_secs(3600)))
        };
        let all = futures::future::join_all(
            (0..50).map(|_| cache.get_or_load(key("t1"), load(calls.clone()))),
        )
        .await;
        assert!(all.iter().all(Result::is_ok));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        for _ in 0..10 {
            cache
                .get_or_load(key("t1"), load(calls.clone()))
                .await
                .unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        cache
            .get_or_load(key("t2"), load(calls.clone()))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn failures_and_short_lived_credentials_are_not_kept() {
        let cache = CredentialCache::new(100);
        let calls = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let c = calls.clone();
            let e = cache
                .get_or_load(key("t"), async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    Err(Error::Identity {
                        what: "STS said no".into(),
                        kind: FailureKind::PermissionDenied,
                        precondition: false,
                        source: None,
                    })
                })
                .await
                .unwrap_err();
            assert_eq!(e.code(), tonic::Code::PermissionDenied);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        for _ in 0..3 {
            let c = calls.clone();
            cache
                .get_or_load(key("short"), async move {
                    c.fetch_add(1, Ordering::SeqCst);
                    Ok(creds(Duration::from_secs(120)))
                })
                .await
                .unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 6);
    }

    #[tokio::test]
    async fn size_is_bounded() {
        let cache = CredentialCache::new(10);
        for i in 0..50 {
            cache
                .get_or_load(key(&format!("t{i}")), async {
                    Ok(creds(Duration::from_secs(3600)))
                })
                .await
                .unwrap();
        }
        assert!(cache.len().await <= 10);
    }
}
