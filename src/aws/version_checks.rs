//! One version check per secret per node: on rotation remounts, whether a
//! mounted Secrets Manager version is still current is asked once per full
//! secret ARN per check window, for every pod of the node that mounted it.
//!
//! - The key is the full ARN the pod's own read returned (from the mount's
//!   records), never (region, name): names repeat across accounts,
//!   and a name-keyed answer could pin a pod to another account's version.
//! - The check is DescribeSecret, made with the credentials of a mount that
//!   needs it. Its answer (each VersionId's stages) only decides whether a
//!   pod's already-mounted file, which that pod fetched itself, is still
//!   current; a changed version is fetched with the pod's own credentials.
//! - A BatchGetSecretValue answer is the same fact for the AWSCURRENT stage
//!   (which VersionId carries it, under the full ARN the batch returned), so
//!   it is recorded as a partial answer: it answers checks of AWSCURRENT,
//!   and a check of another stage finds no answer while it stands (its pod
//!   then reads the secret itself). A later batch answer replaces it.
//! - Answers known within the window are free: [`VersionChecks::cached`]
//!   looks without calling, for any principal, also one denied
//!   DescribeSecret.
//! - Concurrent checks of one ARN are coalesced into one call. A failed or
//!   denied check is not remembered as an answer: each waiter falls back to
//!   its own GetSecretValue, so it never becomes another pod's error.
//! - A DescribeSecret denial is remembered per principal for a while (many
//!   policies grant only GetSecretValue): that principal's mounts use the
//!   answers the node has and fetch the rest, instead of being denied again
//!   on every remount.
//!
//! The answers hold version ids and stage names only, never a value.
//!
//! [`ParameterChecks`] do the same for Parameter Store: which version a
//! parameter (or `parameter:label`) resolves to now, asked once per full
//! parameter ARN (and label) per window with GetParameters, up to ten per
//! call, with the credentials of a mount that needs it. A check's answer
//! carries the value too (GetParameters has no version-only form): it is
//! asked without decryption, wrapped in a zeroing buffer, and dropped
//! before the call returns; only the version is kept. Concurrent checks of
//! one key share one answer; a failed or denied check is no answer, and
//! each waiter reads its parameter itself (a check needs the same
//! permission as the read, so a denial is not remembered).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use moka::future::Cache;

use super::BatchDenials;
use crate::store::StoreError;

/// The stage a check asks about when the object names none, and the only
/// one a batch answer tells.
pub(crate) const CURRENT_STAGE: &str = "AWSCURRENT";

/// Most secrets whose answer is kept at once.
const MAX_ANSWERS: u64 = 16_384;
/// How long a principal denied DescribeSecret skips the check.
pub const DESCRIBE_DENIED_FOR: Duration = Duration::from_secs(15 * 60);

/// Each VersionId of a secret and its stages.
pub(crate) type Stages = HashMap<String, Vec<String>>;

/// What is known of a secret's versions within the window.
struct Answer {
    stages: Stages,
    /// False for a batch answer: only the AWSCURRENT stage is known.
    complete: bool,
}

impl Answer {
    /// Whether `version` carries `stage`, when this answer tells.
    fn tells(&self, version: &str, stage: &str) -> Option<bool> {
        (self.complete || stage == CURRENT_STAGE).then(|| {
            self.stages
                .get(version)
                .is_some_and(|stages| stages.iter().any(|s| s == stage))
        })
    }
}

/// Why a check gave no answer.
pub(crate) enum CheckFailure {
    /// The principal may not call DescribeSecret.
    Denied(StoreError),
    /// Any other failure.
    Failed(StoreError),
}

/// A bounded map of answers that expire `window` after they were learnt.
fn answers_cache<V: Clone + Send + Sync + 'static>(window: Duration) -> Cache<String, V> {
    Cache::builder()
        .max_capacity(MAX_ANSWERS)
        // moka refuses a zero time-to-live; a zero window bypasses the
        // cache instead.
        .time_to_live(window.max(Duration::from_millis(1)))
        .build()
}

/// The node's shared version checks.
pub(crate) struct VersionChecks {
    window: Duration,
    answers: Cache<String, Arc<Answer>>,
    denials: BatchDenials,
}

impl VersionChecks {
    pub(crate) fn new(window: Duration) -> Self {
        VersionChecks {
            window,
            answers: answers_cache(window),
            denials: BatchDenials::new(DESCRIBE_DENIED_FOR),
        }
    }

    /// Whether `version` of the secret `arn` carries `stage`, from an
    /// answer within the window only: no call. Counted as a hit when known;
    /// an unknown one is counted by what the caller does next.
    pub(crate) async fn cached(&self, arn: &str, version: &str, stage: &str) -> Option<bool> {
        if self.window.is_zero() {
            return None;
        }
        let known = self.answers.get(arn).await?.tells(version, stage);
        if known.is_some() {
            crate::metrics::global().version_check("hit");
        }
        known
    }

    /// Records what a BatchGetSecretValue read with a pod's own credentials
    /// returned: `version` carries AWSCURRENT in the secret `arn` (the full
    /// ARN the batch returned). Counted as a batched check.
    pub(crate) async fn record_current(&self, arn: &str, version: &str) {
        crate::metrics::global().version_check("batched");
        if self.window.is_zero() {
            return;
        }
        let answer = Answer {
            stages: HashMap::from([(version.to_owned(), vec![CURRENT_STAGE.to_owned()])]),
            complete: false,
        };
        self.answers.insert(arn.to_owned(), Arc::new(answer)).await;
    }

    /// Whether `version` of the secret `arn` carries `stage`: `Some` when
    /// known (from an answer within the window, or from `describe`, run at
    /// most once per ARN at a time), `None` when there is no answer (the
    /// caller then fetches the secret itself): the check failed, the
    /// principal was denied DescribeSecret lately, or the window's answer
    /// came from a batch and tells only AWSCURRENT.
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
            let known = self.cached(arn, version, stage).await;
            if known.is_none() {
                metrics.version_check("skipped");
            }
            return known;
        }
        let called = AtomicBool::new(false);
        let init = async {
            called.store(true, Ordering::Relaxed);
            describe.await.map(|stages| {
                Arc::new(Answer {
                    stages,
                    complete: true,
                })
            })
        };
        let answer = if self.window.is_zero() {
            init.await.map_err(Arc::new)
        } else {
            self.answers.try_get_with(arn.to_owned(), init).await
        };
        match answer {
            Ok(answer) => {
                let known = answer.tells(version, stage);
                metrics.version_check(match (called.load(Ordering::Relaxed), known) {
                    (true, _) => "miss",
                    (false, Some(_)) => "hit",
                    (false, None) => "skipped",
                });
                known
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

/// The version each checked parameter key resolves to, from one call:
/// keys missing from the map got no answer (invalid, or not returned).
pub(crate) type Versions = HashMap<String, String>;

/// The node's shared checks of mounted parameters, keyed by
/// [`check_key`].
pub(crate) struct ParameterChecks {
    window: Duration,
    answers: Cache<String, Arc<str>>,
}

/// No answer for a key (the call failed, or did not return it); the cause
/// is logged where the call was made.
#[derive(Clone, Copy, Debug)]
struct NoAnswer;

/// The key of a check: the full ARN the pod's own read returned, with the
/// label the object selects (`arn:…:parameter/a/b:prod`), as GetParameters
/// takes it. Unpinned objects only: a pinned version needs no check.
pub(crate) fn check_key(arn: &str, label: Option<&str>) -> String {
    match label {
        Some(label) => format!("{arn}:{label}"),
        None => arn.to_owned(),
    }
}

impl ParameterChecks {
    pub(crate) fn new(window: Duration) -> Self {
        ParameterChecks {
            window,
            answers: answers_cache(window),
        }
    }

    /// The version each of `keys` (distinct) resolves to now: from the
    /// window's answers (no call), else from `check`, run at most once with
    /// every key not known (it packs them into calls and returns the
    /// versions it learnt). `None` for a key with no answer: the caller then
    /// reads that parameter itself.
    ///
    /// Keys another mount is checking at the same moment wait for that
    /// mount's answer instead of being asked again.
    pub(crate) async fn versions<F, Fut>(&self, keys: &[String], check: F) -> Vec<Option<Arc<str>>>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Versions>,
    {
        let metrics = crate::metrics::global();
        let mut known: Vec<Option<Arc<str>>> = Vec::with_capacity(keys.len());
        for key in keys {
            let answer = match self.window.is_zero() {
                true => None,
                false => self.answers.get(key).await,
            };
            if answer.is_some() {
                metrics.version_check("hit");
            }
            known.push(answer);
        }
        let unknown: Vec<String> = keys
            .iter()
            .zip(&known)
            .filter(|(_, k)| k.is_none())
            .map(|(key, _)| key.clone())
            .collect();
        if unknown.is_empty() {
            return known;
        }
        // One call for every unknown key, polled by whichever of its keys'
        // lookups runs first; a key cached meanwhile does not poll it.
        let call = futures::FutureExt::shared(Box::pin(check(unknown)));
        let lookups = keys.iter().zip(&known).map(|(key, known)| {
            let call = call.clone();
            async move {
                if known.is_some() {
                    return known.clone();
                }
                let called = AtomicBool::new(false);
                let init = async {
                    called.store(true, Ordering::Relaxed);
                    call.await
                        .get(key)
                        .map(|v| Arc::<str>::from(v.as_str()))
                        .ok_or(NoAnswer)
                };
                let answer = if self.window.is_zero() {
                    init.await.map_err(Arc::new)
                } else {
                    self.answers.try_get_with(key.clone(), init).await
                };
                metrics.version_check(match (&answer, called.load(Ordering::Relaxed)) {
                    (Err(_), _) => "failed",
                    (Ok(_), true) => "miss",
                    (Ok(_), false) => "hit",
                });
                answer.ok()
            }
        });
        futures::future::join_all(lookups).await
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

    fn versions(pairs: &[(&str, &str)]) -> Versions {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|k| (*k).to_owned()).collect()
    }

    #[tokio::test]
    async fn parameter_checks_share_one_call_and_keep_versions_only() {
        let checks = ParameterChecks::new(Duration::from_secs(60));
        let calls = AtomicUsize::new(0);
        let gate = tokio::sync::Notify::new();
        // Two mounts check the same keys at once: one call, both answered.
        let check = |asked: Vec<String>| {
            let (calls, gate) = (&calls, &gate);
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                gate.notified().await;
                assert_eq!(asked, ["arn:p1", "arn:p2:prod", "arn:p3"]);
                versions(&[("arn:p1", "1"), ("arn:p2:prod", "4")])
            }
        };
        let asked = keys(&["arn:p1", "arn:p2:prod", "arn:p3"]);
        let release = async {
            tokio::task::yield_now().await;
            gate.notify_one();
        };
        let (a, b, ()) = futures::join!(
            checks.versions(&asked, check),
            checks.versions(&asked, check),
            release
        );
        let got = |v: &[Option<Arc<str>>]| -> Vec<Option<String>> {
            v.iter().map(|v| v.as_deref().map(str::to_owned)).collect()
        };
        let want = vec![Some("1".to_owned()), Some("4".to_owned()), None];
        assert_eq!(got(&a), want);
        assert_eq!(got(&b), want);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Within the window the answers are free; a key without one (p3:
        // invalid, or a failed call) is asked again, alone.
        let again = checks
            .versions(&asked, |asked| async move {
                assert_eq!(asked, ["arn:p3"]);
                Versions::new()
            })
            .await;
        assert_eq!(got(&again), want);
        // A zero window keeps nothing: every check calls.
        let none = ParameterChecks::new(Duration::ZERO);
        let calls = &calls;
        for _ in 0..2 {
            let fresh = none
                .versions(&keys(&["arn:p1"]), |asked| async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    versions(&[(asked[0].as_str(), "2")])
                })
                .await;
            assert_eq!(got(&fresh), [Some("2".to_owned())]);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(check_key("arn:p", Some("prod")), "arn:p:prod");
        assert_eq!(check_key("arn:p", None), "arn:p");
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
    async fn a_batch_answer_tells_awscurrent_only_and_is_free_for_every_principal() {
        let checks = VersionChecks::new(Duration::from_secs(60));
        assert_eq!(checks.cached("arn:a", "v1", CURRENT_STAGE).await, None);
        checks.record_current("arn:a", "v1").await;
        assert_eq!(
            checks.cached("arn:a", "v1", CURRENT_STAGE).await,
            Some(true)
        );
        assert_eq!(
            checks.cached("arn:a", "v0", CURRENT_STAGE).await,
            Some(false)
        );
        // Another ARN (another account's secret of the same name) is unknown.
        assert_eq!(checks.cached("arn:b", "v1", CURRENT_STAGE).await, None);
        // Another stage is not told by a batch: no answer, no call.
        let previous = checks
            .is_current("arn:a", "role", "v0", "AWSPREVIOUS", async {
                panic!("no call while the window's answer stands")
            })
            .await;
        assert_eq!(previous, None);
        // A principal denied DescribeSecret still finds the window's answer.
        let _ = checks
            .is_current("arn:c", "role/d", "v1", CURRENT_STAGE, async {
                Err(CheckFailure::Denied(StoreError::new(
                    FailureKind::PermissionDenied,
                    Some("AccessDeniedException"),
                    "no",
                )))
            })
            .await;
        let denied = checks
            .is_current("arn:a", "role/d", "v1", CURRENT_STAGE, async {
                panic!("a denied principal does not call")
            })
            .await;
        assert_eq!(denied, Some(true));
        // A zero window keeps nothing.
        let none = VersionChecks::new(Duration::ZERO);
        none.record_current("arn:a", "v1").await;
        assert_eq!(none.cached("arn:a", "v1", CURRENT_STAGE).await, None);
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
