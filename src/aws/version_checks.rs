//! One version check per secret per node: on rotation remounts, whether a
//! mounted Secrets Manager version is still current is asked once per full
//! secret ARN per check window, for every pod of the node that mounted it.
//!
//! - The key is the full ARN the pod's own GetSecretValue returned (from the
//!   mount's records), never (region, name): names repeat across accounts,
//!   and a name-keyed answer could pin a pod to another account's version.
//! - The check is DescribeSecret, made with the credentials of a mount that
//!   needs it. Its answer (each VersionId's stages) only decides whether a
//!   pod's already-mounted file, which that pod fetched itself, is still
//!   current; a changed version is fetched with the pod's own credentials.
//! - Concurrent checks of one ARN are coalesced into one call. A failed or
//!   denied check is not remembered as an answer: each waiter falls back to
//!   its own GetSecretValue, so it never becomes another pod's error.
//! - A DescribeSecret denial is remembered per principal for a while (many
//!   policies grant only GetSecretValue): that principal's mounts skip the
//!   check and fetch, instead of being denied again on every remount.
//!
//! The answers hold version ids and stage names only, never a value.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use moka::future::Cache;

use super::BatchDenials;
use crate::store::StoreError;

/// Most secrets whose answer is kept at once.
const MAX_ANSWERS: u64 = 16_384;
/// How long a principal denied DescribeSecret skips the check.
pub const DESCRIBE_DENIED_FOR: Duration = Duration::from_secs(15 * 60);

/// Each VersionId of a secret and its stages.
pub(crate) type Stages = HashMap<String, Vec<String>>;

/// Why a check gave no answer.
pub(crate) enum CheckFailure {
    /// The principal may not call DescribeSecret.
    Denied(StoreError),
    /// Any other failure.
    Failed(StoreError),
}

/// The node's shared version checks.
pub(crate) struct VersionChecks {
    window: Duration,
    answers: Cache<String, Arc<Stages>>,
    denials: BatchDenials,
}

impl VersionChecks {
    pub(crate) fn new(window: Duration) -> Self {
        VersionChecks {
            window,
            answers: Cache::builder()
                .max_capacity(MAX_ANSWERS)
                // moka refuses a zero time-to-live; a zero window bypasses
                // the cache instead.
                .time_to_live(window.max(Duration::from_millis(1)))
                .build(),
            denials: BatchDenials::new(DESCRIBE_DENIED_FOR),
        }
    }

    /// Whether `version` of the secret `arn` carries `stage`: `Some` when
    /// known (from an answer within the window, or from `describe`, run at
    /// most once per ARN at a time), `None` when there is no answer (the
    /// caller then fetches the secret itself).
    pub(crate) async fn is_current<F>(
        &self,
        arn: &str,
        principal: &str,
        version: &str,
        stage: &str,
        describe: F,
    ) -> Option<bool>
    where
        F: Future<Output = Result<Stages, CheckFailure>>,
    {
        let metrics = crate::metrics::global();
        if self.denials.is_denied(principal) {
            metrics.version_check("skipped");
            return None;
        }
        let called = AtomicBool::new(false);
        let init = async {
            called.store(true, Ordering::Relaxed);
            describe.await.map(Arc::new)
        };
        let answer = if self.window.is_zero() {
            init.await.map_err(Arc::new)
        } else {
            self.answers.try_get_with(arn.to_owned(), init).await
        };
        match answer {
            Ok(stages) => {
                metrics.version_check(if called.load(Ordering::Relaxed) {
                    "miss"
                } else {
                    "hit"
                });
                Some(
                    stages
                        .get(version)
                        .is_some_and(|stages| stages.iter().any(|s| s == stage)),
                )
            }
            Err(failure) => {
                metrics.version_check("failed");
                if called.load(Ordering::Relaxed) {
                    match failure.as_ref() {
                        CheckFailure::Denied(error) => {
                            self.denials.deny(principal);
                            tracing::warn!(
                                principal,
                                code = error.code.as_deref().unwrap_or(""),
                                "DescribeSecret denied; fetching mounted secrets again instead of \
                                 checking their versions, for this principal for a while"
                            );
                        }
                        CheckFailure::Failed(error) => tracing::debug!(
                            object = arn,
                            code = error.code.as_deref().unwrap_or(""),
                            "version check failed; fetching instead"
                        ),
                    }
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FailureKind;
    use std::sync::atomic::AtomicUsize;

    fn stages(version: &str) -> Stages {
        HashMap::from([(version.to_owned(), vec!["AWSCURRENT".to_owned()])])
    }

    #[tokio::test]
    async fn concurrent_checks_of_one_arn_make_one_call() {
        let checks = VersionChecks::new(Duration::from_secs(60));
        let calls = AtomicUsize::new(0);
        let gate = tokio::sync::Notify::new();
        let describe = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            gate.notified().await;
            Ok(stages("v1"))
        };
        let all = futures::future::join_all(
            (0..8).map(|_| checks.is_current("arn:a", "role", "v1", "AWSCURRENT", describe())),
        );
        let release = async {
            tokio::task::yield_now().await;
            gate.notify_one();
        };
        let (answers, ()) = futures::join!(all, release);
        assert!(answers.iter().all(|a| *a == Some(true)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Within the window, another ARN is another call; the same is none.
        let again = checks
            .is_current("arn:a", "role", "v0", "AWSCURRENT", async {
                panic!("no call within the window")
            })
            .await;
        assert_eq!(again, Some(false));
    }

    #[tokio::test]
    async fn failures_are_not_answers_and_denials_are_remembered_per_principal() {
        let checks = VersionChecks::new(Duration::from_secs(60));
        let error = || {
            StoreError::new(
                FailureKind::PermissionDenied,
                Some("AccessDeniedException"),
                "no",
            )
        };
        let got = checks
            .is_current("arn:a", "role/a", "v1", "AWSCURRENT", async {
                Err(CheckFailure::Denied(error()))
            })
            .await;
        assert_eq!(got, None);
        // role/a skips the check; role/b still checks and gets an answer.
        let skipped = checks
            .is_current("arn:a", "role/a", "v1", "AWSCURRENT", async {
                panic!("a denied principal does not call")
            })
            .await;
        assert_eq!(skipped, None);
        let other = checks
            .is_current("arn:a", "role/b", "v1", "AWSCURRENT", async {
                Ok(stages("v1"))
            })
            .await;
        assert_eq!(other, Some(true));
        let failed = checks
            .is_current("arn:b", "role/b", "v1", "AWSCURRENT", async {
                Err(CheckFailure::Failed(error()))
            })
            .await;
        assert_eq!(failed, None);
        let answered = checks
            .is_current("arn:b", "role/b", "v1", "AWSCURRENT", async {
                Ok(stages("v2"))
            })
            .await;
        assert_eq!(answered, Some(false));
    }
}
