//! The Kubernetes API lookups a mount needs: the pod's ServiceAccount (for
//! its IRSA role annotation), and the pod's node and that node's region
//! label (when no region is configured).
//!
//! This module owns the client-side rate limit (`--qps`, `--burst`, as ASCP's
//! client-go limiter), a deadline per call, and short caches that keep the
//! driver's rotation remounts (every two minutes per volume) off the API
//! server:
//! - ServiceAccounts for [`SERVICE_ACCOUNT_TTL`] (30 s): an annotation added
//!   or changed is seen within that time;
//! - pod → node for [`POD_NODE_TTL`], keyed by the pod's UID as well as its
//!   name (a scheduled pod never changes node);
//! - node → region for [`NODE_REGION_TTL`] (a node's region does not change).
//!
//! Failures are not cached: a failed call (not found, forbidden, timeout) is
//! made again by the next mount. An answer that fails the mount, i.e. a
//! ServiceAccount without the role annotation or with one that is not an IAM
//! role ARN, or a node without the region label, is reused for at most
//! [`NEGATIVE_TTL`] (5 s): enough to absorb a burst of mounts of one
//! Deployment's pods, short enough that the mount after an operator's fix
//! succeeds. Its age is measured on tokio's clock.
//!
//! It must never read the environment: the [`kube::Client`] is built by the
//! binary's `main` and handed in.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use kube::Api;
use moka::future::Cache;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::Error;
use crate::store::FailureKind;

/// The ServiceAccount annotation naming the IRSA role.
pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// The node label naming its region.
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";

/// How long a ServiceAccount's role annotation is reused.
pub const SERVICE_ACCOUNT_TTL: Duration = Duration::from_secs(30);
/// How long a pod's node is reused.
pub const POD_NODE_TTL: Duration = Duration::from_secs(5 * 60);
/// How long a node's region is reused.
pub const NODE_REGION_TTL: Duration = Duration::from_secs(60 * 60);
/// How long an answer that fails the mount (no role annotation, a malformed
/// one, no region label) is reused.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// How long one API call may take, rate-limit wait excluded. A slow API
/// server fails the mount (kubelet retries it later) well inside kubelet's
/// two minutes.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Entries per cache: far more pods and nodes than one node sees.
const CACHE_CAPACITY: u64 = 10_000;
/// Longest API server message kept in an error.
const MAX_MESSAGE: usize = 300;

/// A token bucket: `burst` calls at once, refilled at `qps` per second.
/// Waiters queue in order (the mutex is fair), so a burst of mounts is
/// spread out instead of hammering the API server.
#[derive(Debug)]
pub struct RateLimiter {
    qps: f64,
    burst: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// `qps` calls per second on average, `burst` at once (both at least 1).
    pub fn new(qps: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            qps: f64::from(qps.max(1)),
            burst,
            state: Mutex::new(Bucket {
                tokens: burst,
                last: Instant::now(),
            }),
        }
    }

    /// Waits for a call's turn.
    pub async fn acquire(&self) {
        let mut bucket = self.state.lock().await;
        let now = Instant::now();
        let refill = now.duration_since(bucket.last).as_secs_f64() * self.qps;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.last = now;
        if bucket.tokens < 1.0 {
            // Sleep with the lock held: the next waiter's turn comes after
            // ours, which keeps the order fair and the rate exact.
            let wait = Duration::from_secs_f64((1.0 - bucket.tokens) / self.qps);
            tokio::time::sleep(wait).await;
            bucket.tokens = 1.0;
            bucket.last = Instant::now();
        }
        bucket.tokens -= 1.0;
    }
}

/// The lookups, with their caches. Cheap to clone.
#[derive(Clone)]
pub struct KubeLookups {
    client: kube::Client,
    limiter: Arc<RateLimiter>,
    call_timeout: Duration,
    service_accounts: Cache<(String, String), Answer>,
    pod_nodes: Cache<(String, String, String), String>,
    node_regions: Cache<String, Answer>,
}

/// A cached annotation or label value (`None`: absent), and when it was read.
#[derive(Clone, Debug)]
struct Answer {
    value: Option<String>,
    read_at: Instant,
}

/// The cached value of `key`, else `fetch`'s. A cached value `usable`
/// rejects is reused only while younger than [`NEGATIVE_TTL`]; errors are
/// never cached (moka's `try_get_with` shares one call among concurrent
/// callers and keeps only successes).
async fn cached_answer<K>(
    cache: &Cache<K, Answer>,
    key: K,
    usable: impl Fn(Option<&str>) -> bool,
    fetch: impl std::future::Future<Output = Result<Option<String>, Error>>,
) -> Result<Option<String>, Error>
where
    K: std::hash::Hash + Eq + Send + Sync + Clone + 'static,
{
    if let Some(found) = cache.get(&key).await {
        if usable(found.value.as_deref()) || found.read_at.elapsed() < NEGATIVE_TTL {
            return Ok(found.value);
        }
        cache.invalidate(&key).await;
    }
    cache
        .try_get_with(key, async {
            fetch.await.map(|value| Answer {
                value,
                read_at: Instant::now(),
            })
        })
        .await
        .map(|found| found.value)
        .map_err(|e| shared_error(&e))
}

/// Whether a role annotation lets a mount proceed.
fn usable_role(annotation: Option<&str>) -> bool {
    annotation.is_some_and(|arn| crate::arn::is_iam_role_arn(arn.trim()))
}

/// Whether a region label lets a mount proceed.
fn usable_region(label: Option<&str>) -> bool {
    label.is_some_and(|r| !r.trim().is_empty())
}

impl KubeLookups {
    /// Lookups through `client`, at most `qps` calls a second with bursts of
    /// `burst`, each bounded by `call_timeout`.
    pub fn new(client: kube::Client, qps: u32, burst: u32, call_timeout: Duration) -> Self {
        Self {
            client,
            limiter: Arc::new(RateLimiter::new(qps, burst)),
            call_timeout,
            service_accounts: Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(SERVICE_ACCOUNT_TTL)
                .build(),
            pod_nodes: Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(POD_NODE_TTL)
                .build(),
            node_regions: Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(NODE_REGION_TTL)
                .build(),
        }
    }

    /// The IRSA role of ServiceAccount `namespace/name`: its
    /// `eks.amazonaws.com/role-arn` annotation, which must be an IAM role ARN.
    pub async fn role_arn(&self, namespace: &str, name: &str) -> Result<String, Error> {
        let key = (namespace.to_owned(), name.to_owned());
        let annotation = cached_answer(
            &self.service_accounts,
            key,
            usable_role,
            self.fetch_role_annotation(namespace, name),
        )
        .await?;
        let precondition = |what: String| Error::Identity {
            what,
            kind: FailureKind::InvalidArgument,
            precondition: true,
            source: None,
        };
        match annotation {
            None => Err(precondition(format!(
                "service account {name} in namespace {namespace} has no {ROLE_ARN_ANNOTATION} annotation: annotate it with the IAM role to use (IRSA), or set usePodIdentity: \"true\" in the SecretProviderClass for EKS Pod Identity"
            ))),
            Some(arn) if !usable_role(Some(&arn)) => Err(precondition(format!(
                "service account {name} in namespace {namespace}: annotation {ROLE_ARN_ANNOTATION} {:?} is not an IAM role ARN (arn:<partition>:iam::<account>:role/<name>)",
                bounded(&arn)
            ))),
            Some(arn) => Ok(arn.trim().to_owned()),
        }
    }

    async fn fetch_role_annotation(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, Error> {
        let what = format!("service account {name} in namespace {namespace}");
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let sa = self.call("serviceaccounts", &what, api.get(name)).await?;
        tracing::debug!(namespace, service_account = name, "read service account");
        Ok(sa
            .metadata
            .annotations
            .and_then(|mut a| a.remove(ROLE_ARN_ANNOTATION)))
    }

    /// The region of the pod's node: pod → `spec.nodeName` → the node's
    /// `topology.kubernetes.io/region` label.
    pub async fn pod_region(&self, namespace: &str, pod: &str, uid: &str) -> Result<String, Error> {
        let key = (namespace.to_owned(), pod.to_owned(), uid.to_owned());
        let node = self
            .pod_nodes
            .try_get_with(key, self.fetch_node_name(namespace, pod))
            .await
            .map_err(|e| shared_error(&e))?;
        let region = cached_answer(
            &self.node_regions,
            node.clone(),
            usable_region,
            self.fetch_node_region(&node),
        )
        .await?;
        match region {
            Some(r) if usable_region(Some(&r)) => Ok(r.trim().to_owned()),
            _ => Err(Error::Region {
                reason: format!("node {node} of pod {namespace}/{pod} has no {REGION_LABEL} label"),
            }),
        }
    }

    async fn fetch_node_name(&self, namespace: &str, pod: &str) -> Result<String, Error> {
        let what = format!("pod {pod} in namespace {namespace} (to find its node's region)");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let found = self.call("pods", &what, api.get(pod)).await?;
        match found
            .spec
            .and_then(|s| s.node_name)
            .filter(|n| !n.is_empty())
        {
            Some(node) => Ok(node),
            None => Err(Error::Region {
                reason: format!("pod {namespace}/{pod} is not scheduled on a node"),
            }),
        }
    }

    async fn fetch_node_region(&self, node: &str) -> Result<Option<String>, Error> {
        let what = format!("node {node} (to read its region label)");
        let api: Api<Node> = Api::all(self.client.clone());
        let found = self.call("nodes", &what, api.get(node)).await?;
        tracing::debug!(node, "read node");
        Ok(found
            .metadata
            .labels
            .and_then(|mut l| l.remove(REGION_LABEL)))
    }

    /// One rate-limited, bounded API call about `what`.
    async fn call<T>(
        &self,
        resource: &'static str,
        what: &str,
        call: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, Error> {
        self.limiter.acquire().await;
        let answer = tokio::time::timeout(self.call_timeout, call).await;
        let outcome = match &answer {
            Ok(Ok(_)) => "success",
            Ok(Err(kube::Error::Api(status))) if status.code == 404 => "not_found",
            _ => "error",
        };
        crate::metrics::global().kube_call(resource, outcome);
        match answer {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(api_error(what, &e)),
            Err(_) => Err(Error::Identity {
                what: format!(
                    "cannot read {what}: the Kubernetes API did not answer within {:?}",
                    self.call_timeout
                ),
                kind: FailureKind::Unavailable,
                precondition: false,
                source: None,
            }),
        }
    }
}

/// The error for a failed read of `what`.
fn api_error(what: &str, e: &kube::Error) -> Error {
    let (kind, precondition, detail) = match e {
        kube::Error::Api(status) => {
            let detail = format!(
                "HTTP {} {}: {}",
                status.code,
                status.reason,
                bounded(&status.message)
            );
            match status.code {
                404 => (FailureKind::NotFound, true, detail),
                401 | 403 => (
                    FailureKind::PermissionDenied,
                    false,
                    format!(
                        "{detail} (the provider's RBAC must allow get on serviceaccounts, pods and nodes)"
                    ),
                ),
                408 | 429 | 500..=599 => (FailureKind::Unavailable, false, detail),
                _ => (FailureKind::Internal, false, detail),
            }
        }
        other => (
            FailureKind::Unavailable,
            false,
            format!(
                "the Kubernetes API is unreachable: {}",
                bounded(&other.to_string())
            ),
        ),
    };
    let what = if precondition {
        format!("{what} not found ({detail})")
    } else {
        format!("cannot read {what}: {detail}")
    };
    Error::Identity {
        what,
        kind,
        precondition,
        source: None,
    }
}

/// A cached lookup's error, for one of the callers that shared it.
fn shared_error(e: &Arc<Error>) -> Error {
    match &**e {
        Error::Region { reason } => Error::Region {
            reason: reason.clone(),
        },
        Error::Identity {
            what,
            kind,
            precondition,
            ..
        } => Error::Identity {
            what: what.clone(),
            kind: *kind,
            precondition: *precondition,
            source: None,
        },
        other => Error::Internal(other.full_message()),
    }
}

/// `text` cut to [`MAX_MESSAGE`] bytes.
fn bounded(text: &str) -> String {
    crate::bounded_text::truncate(text, MAX_MESSAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    // tokio's paused clock: time moves only when every task waits on a
    // timer, so the durations below are exact whatever the machine's load.
    #[tokio::test(start_paused = true)]
    async fn the_limiter_allows_a_burst_then_qps() {
        let limiter = RateLimiter::new(50, 10);
        let start = Instant::now();
        for _ in 0..10 {
            limiter.acquire().await;
        }
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "the burst waits for nothing"
        );
        for _ in 0..5 {
            limiter.acquire().await;
        }
        // Five more at 50 per second: 20 ms each.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(100) && took < Duration::from_millis(101),
            "{took:?}"
        );
    }
}
