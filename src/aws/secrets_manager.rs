//! The Secrets Manager store: GetSecretValue per object (as ASCP), the
//! DescribeSecret shortcut on rotation remounts (as ASCP), and
//! BatchGetSecretValue for unpinned objects of the caller's own account
//! (beyond ASCP, opt-in).
//!
//! Every object of a fetch is read at once, bounded by the fetch's
//! [`Gate`]; results come back in the items' order whatever order the calls
//! finish in.
//!
//! Batched objects always come back as [`Fetched::Value`], also on a rotation
//! remount whose mounted version is still current: the batch answer already
//! holds the value, and returning it spares the mount a read-back of the
//! mounted file.
//!
//! An unpinned object whose item carries the mounted version and the full
//! ARN the pod's own fetch returned (the mount's records, driver v1.6) is
//! first asked of the node's shared version check
//! ([`super::version_checks`]): still current, it comes back
//! [`Fetched::Unchanged`] without a call of this mount; changed, or no
//! answer, it is fetched as any other object, with no DescribeSecret of its
//! own. Answers the node already has within the check window are used first,
//! at no cost. With BatchGetSecretValue on (and not denied), the misses are
//! re-read in the mount's batches instead of checked whenever that takes
//! fewer calls than one DescribeSecret per missed secret (two or more
//! misses, or one with room in a batch made anyway); every batch answer is
//! then recorded as the node's answer for the full ARN it returned, so the
//! other pods of the node find it.
//!
//! A path (`prod/web/*`, `prod/web/**`) is listed with ListSecrets filtered
//! by name on its prefix, 100 a page; only names under the prefix are kept
//! (and for `/*` only those without a further `/`), and only secrets with an
//! AWSCURRENT version (one created without a value has none). Their values
//! are then read as unpinned objects are: in batches when
//! BatchGetSecretValue is on, else one GetSecretValue each, never through
//! the rotation shortcuts.
//!
//! This store never logs or formats a value, and never puts one in an error.

use std::collections::HashMap;
use std::sync::Arc;

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use futures::future::{BoxFuture, join_all};
use tracing::{debug, warn};

use super::BatchDenials;
use super::classify::{sdk_error, service_error};
use super::limits::Gate;
use super::paths::{self, Matches};
use super::throttle::Service;
use super::version_checks::{CURRENT_STAGE, CheckFailure, Stages, VersionChecks};
use crate::secret::SecretBytes;
use crate::store::{FailureKind, FetchItem, Fetched, Listed, PathQuery, Store, StoreError};

/// BatchGetSecretValue takes at most 20 secret ids per call.
const BATCH_SIZE: usize = 20;
/// ListSecrets returns at most 100 secrets per page.
const LIST_PAGE: i32 = 100;
/// Pages followed for one batch call. AWS paginates id lists only when the
/// answer is too large; 20 secrets of 64 KiB fit in a handful of pages.
const MAX_PAGES: usize = 20;

type ItemResult = Result<Fetched, StoreError>;

/// What BatchGetSecretValue needs besides the client.
pub(crate) struct Batching {
    /// Principals whose batch calls were denied lately, shared process-wide.
    pub(crate) denials: Arc<BatchDenials>,
    /// Who the credentials belong to.
    pub(crate) principal: String,
    /// The store's credentials, asked for their account id to tell own ARNs
    /// from other accounts' ARNs.
    pub(crate) credentials: SharedCredentialsProvider,
}

pub(crate) struct SecretsManagerStore {
    client: Client,
    region: String,
    /// The mount's gate, shared with its Parameter Store in this region.
    gate: Arc<Gate>,
    batching: Option<Batching>,
    /// The node's shared version checks, and who this store acts as.
    checks: (Arc<VersionChecks>, String),
}

impl Store for SecretsManagerStore {
    fn fetch(&self, items: Vec<FetchItem>) -> BoxFuture<'_, Vec<ItemResult>> {
        Box::pin(self.fetch_all(items))
    }

    fn list(&self, path: PathQuery) -> BoxFuture<'_, Result<Vec<Listed>, StoreError>> {
        Box::pin(self.list_path(path))
    }
}

/// How one BatchGetSecretValue call ended.
enum BatchOutcome {
    /// Results per secret id asked for; ids missing here were not answered.
    Answered(HashMap<String, ItemResult>),
    /// The caller may not call BatchGetSecretValue at all.
    Denied(StoreError),
    /// The call failed for all its ids.
    Failed(StoreError),
}

impl SecretsManagerStore {
    pub(crate) fn new(
        client: Client,
        region: String,
        gate: Arc<Gate>,
        batching: Option<Batching>,
        checks: (Arc<VersionChecks>, String),
    ) -> Self {
        SecretsManagerStore {
            client,
            region,
            gate,
            batching,
            checks,
        }
    }

    async fn fetch_all(&self, mut items: Vec<FetchItem>) -> Vec<ItemResult> {
        let gate: &Gate = &self.gate;
        let candidates = self.batch_candidates(&items).await;
        let mut results = self.shared_checks(gate, &mut items, &candidates).await;
        let batched: Vec<usize> = candidates
            .into_iter()
            .filter(|&i| results[i].is_none())
            .collect();
        let singles: Vec<usize> = (0..items.len())
            .filter(|&i| results[i].is_none() && batched.binary_search(&i).is_err())
            .collect();

        // Batches and single reads share the gate and run together.
        let (from_batches, from_singles) = futures::join!(
            self.fetch_batched(gate, &items, &batched),
            join_all(singles.iter().map(|&i| self.fetch_one(gate, &items[i]))),
        );
        for (i, result) in singles.into_iter().zip(from_singles) {
            results[i] = Some(result);
        }
        for (i, result) in from_batches {
            results[i] = Some(result);
        }

        // Objects a batch did not answer (denied, or not matched) are read
        // one by one.
        let fallback: Vec<usize> = (0..items.len()).filter(|&i| results[i].is_none()).collect();
        let from_fallback =
            join_all(fallback.iter().map(|&i| self.fetch_one(gate, &items[i]))).await;
        for (i, result) in fallback.into_iter().zip(from_fallback) {
            results[i] = Some(result);
        }

        super::settle(results)
    }

    /// Asks the node's shared version check about every unpinned item that
    /// carries its mounted version and ARN. Items still current are
    /// answered [`Fetched::Unchanged`]; the others lose their mounted
    /// version, so they are fetched without a DescribeSecret of their own.
    ///
    /// Answers within the window come first, free. With batching, the
    /// misses among `candidates` (ascending indices of the items to batch)
    /// are re-read in batches when that takes fewer calls than one
    /// DescribeSecret per missed secret; the batch answers then fill the
    /// shared checks ([`VersionChecks::record_current`]).
    async fn shared_checks(
        &self,
        gate: &Gate,
        items: &mut [FetchItem],
        candidates: &[usize],
    ) -> Vec<Option<ItemResult>> {
        let (checks, principal) = &self.checks;
        let checked: Vec<Option<(&str, &str, &str)>> = items.iter().map(checked).collect();
        let mut answers: Vec<Option<bool>> = join_all(checked.iter().map(|c| async move {
            let (current, arn, stage) = (*c)?;
            checks.cached(arn, current, stage).await
        }))
        .await;

        let misses: Vec<usize> = (0..items.len())
            .filter(|&i| checked[i].is_some() && answers[i].is_none())
            .collect();
        let rebatched = rebatch(items, candidates, &misses, &answers);
        let checked = &checked;
        let described = join_all(
            misses
                .iter()
                .filter(|i| rebatched.binary_search(i).is_err())
                .map(|&i| async move {
                    let (current, arn, stage) = checked[i]?;
                    checks
                        .is_current(arn, principal, current, stage, self.describe(gate, arn))
                        .await
                        .map(|answer| (i, answer))
                }),
        )
        .await;
        for (i, answer) in described.into_iter().flatten() {
            answers[i] = Some(answer);
        }

        let was_checked: Vec<bool> = checked.iter().map(Option::is_some).collect();
        let mut results = Vec::with_capacity(items.len());
        for ((item, answer), checked) in items.iter_mut().zip(answers).zip(was_checked) {
            results.push(match (checked, answer) {
                (true, Some(true)) => {
                    debug!(object = %item.name, region = %self.region, "unchanged (shared check)");
                    item.mounted_version
                        .clone()
                        .map(|version| Ok(Fetched::Unchanged { version }))
                }
                (true, _) => {
                    item.mounted_version = None;
                    None
                }
                (false, _) => None,
            });
        }
        results
    }

    /// DescribeSecret of `arn`: each VersionId's stages.
    async fn describe(&self, gate: &Gate, arn: &str) -> Result<Stages, CheckFailure> {
        let described = gate
            .call(Service::SecretsManager, || {
                self.client.describe_secret().secret_id(arn).send()
            })
            .await;
        match described {
            Ok(out) => Ok(out.version_ids_to_stages.unwrap_or_default()),
            Err(e) if is_access_denied(&e) => {
                Err(CheckFailure::Denied(sdk_error("DescribeSecret", &e)))
            }
            Err(e) => Err(CheckFailure::Failed(sdk_error("DescribeSecret", &e))),
        }
    }

    /// Indices (ascending) of the items to read with BatchGetSecretValue:
    /// none unless batching is on and not denied for this principal; else
    /// those without a pinned version or label, named by plain name or by an
    /// ARN of the credentials' own account. Another account's ARN, or any
    /// ARN when the account is unknown, goes through GetSecretValue, whose
    /// permission model (resource policies) cross-account access relies on.
    async fn batch_candidates(&self, items: &[FetchItem]) -> Vec<usize> {
        let Some(batching) = &self.batching else {
            return Vec::new();
        };
        if batching.denials.is_denied(&batching.principal) {
            return Vec::new();
        }
        let unpinned: Vec<usize> = (0..items.len())
            .filter(|&i| items[i].version.is_none() && items[i].label.is_none())
            .collect();
        let account = if unpinned.iter().any(|&i| is_arn(&items[i].name)) {
            own_account(&batching.credentials).await
        } else {
            None
        };
        unpinned
            .into_iter()
            .filter(|&i| match arn_account(&items[i].name) {
                None => !is_arn(&items[i].name),
                Some(arn_account) => account.as_deref() == Some(arn_account),
            })
            .collect()
    }

    /// Reads `indices` of `items` with BatchGetSecretValue. Returns the
    /// results it has; the items it leaves out are to be read one by one.
    async fn fetch_batched(
        &self,
        gate: &Gate,
        items: &[FetchItem],
        indices: &[usize],
    ) -> Vec<(usize, ItemResult)> {
        let Some(batching) = &self.batching else {
            return Vec::new();
        };
        // One id per distinct name: two objects may name the same secret.
        let mut ids: Vec<&str> = Vec::new();
        let mut items_of: HashMap<&str, Vec<usize>> = HashMap::new();
        for &i in indices {
            let id = items[i].name.as_str();
            let entry = items_of.entry(id).or_default();
            if entry.is_empty() {
                ids.push(id);
            }
            entry.push(i);
        }

        let outcomes = join_all(
            ids.chunks(BATCH_SIZE)
                .map(|chunk| self.batch_call(gate, chunk)),
        )
        .await;

        let mut results = Vec::with_capacity(indices.len());
        let mut denied = false;
        for (chunk, outcome) in ids.chunks(BATCH_SIZE).zip(outcomes) {
            match outcome {
                BatchOutcome::Answered(mut answers) => {
                    for id in chunk {
                        if let Some(result) = answers.remove(*id) {
                            for &i in &items_of[id] {
                                results.push((i, result.clone()));
                            }
                        }
                    }
                }
                BatchOutcome::Denied(error) => {
                    if !denied {
                        denied = true;
                        batching.denials.deny(&batching.principal);
                        warn!(
                            region = %self.region,
                            principal = %batching.principal,
                            code = error.code.as_deref().unwrap_or(""),
                            "BatchGetSecretValue denied; reading secrets one by one and not \
                             batching for this principal for a while"
                        );
                    }
                }
                BatchOutcome::Failed(error) => {
                    for id in chunk {
                        for &i in &items_of[id] {
                            results.push((i, Err(error.clone())));
                        }
                    }
                }
            }
        }
        results
    }

    /// One BatchGetSecretValue call for `ids` (at most 20), following pages.
    async fn batch_call(&self, gate: &Gate, ids: &[&str]) -> BatchOutcome {
        let mut answers: HashMap<String, ItemResult> = HashMap::new();
        let mut next_token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let sent = gate
                .call(Service::SecretsManager, || {
                    self.client
                        .batch_get_secret_value()
                        .set_secret_id_list(Some(ids.iter().map(|id| (*id).to_owned()).collect()))
                        .set_next_token(next_token.clone())
                        .send()
                })
                .await;
            let out = match sent {
                Ok(out) => out,
                Err(e) => {
                    let error = sdk_error("BatchGetSecretValue", &e);
                    return if is_access_denied(&e) {
                        BatchOutcome::Denied(error)
                    } else {
                        BatchOutcome::Failed(error)
                    };
                }
            };
            for entry in out.secret_values.unwrap_or_default() {
                let matched: Vec<&str> = ids
                    .iter()
                    .copied()
                    .filter(|id| {
                        Some(*id) == entry.name.as_deref() || Some(*id) == entry.arn.as_deref()
                    })
                    .collect();
                if matched.is_empty() {
                    continue;
                }
                if let (Some(arn), Some(version)) = (&entry.arn, &entry.version_id) {
                    self.checks.0.record_current(arn, version).await;
                }
                let result = value(
                    "BatchGetSecretValue",
                    entry.secret_string,
                    entry.secret_binary,
                    entry.version_id,
                    entry.arn,
                );
                for id in matched {
                    super::log_result("secret", &self.region, id, &result);
                    answers.insert(id.to_owned(), result.clone());
                }
            }
            for error in out.errors.unwrap_or_default() {
                let Some(id) = error.secret_id.as_deref() else {
                    continue;
                };
                if ids.contains(&id) {
                    answers.insert(
                        id.to_owned(),
                        Err(service_error(
                            "BatchGetSecretValue",
                            error.error_code.as_deref(),
                            None,
                            error.message.as_deref().unwrap_or("no message"),
                        )),
                    );
                }
            }
            next_token = out.next_token.filter(|t| !t.is_empty());
            if next_token.is_none() || ids.iter().all(|id| answers.contains_key(*id)) {
                break;
            }
        }
        BatchOutcome::Answered(answers)
    }

    /// Reads one object as ASCP does: the rotation check first when the
    /// object is mounted, then GetSecretValue unless still current.
    async fn fetch_one(&self, gate: &Gate, item: &FetchItem) -> ItemResult {
        if let Some(current) = &item.mounted_version
            && self.still_current(gate, item, current).await?
        {
            debug!(object = %item.name, region = %self.region, version = %current, "unchanged");
            return Ok(Fetched::Unchanged {
                version: current.clone(),
            });
        }
        let sent = gate
            .call(Service::SecretsManager, || {
                self.client
                    .get_secret_value()
                    .secret_id(&item.name)
                    .set_version_id(item.version.clone())
                    .set_version_stage(item.label.clone())
                    .send()
            })
            .await;
        let result = match sent {
            Ok(out) => value(
                "GetSecretValue",
                out.secret_string,
                out.secret_binary,
                out.version_id,
                out.arn,
            ),
            Err(e) => Err(sdk_error("GetSecretValue", &e)),
        };
        super::log_result("secret", &self.region, &item.name, &result);
        result
    }

    /// Whether the mounted version `current` is still the one to serve: a
    /// pinned version must equal it (no call); otherwise DescribeSecret must
    /// show it carrying the object's stage (AWSCURRENT by default).
    async fn still_current(
        &self,
        gate: &Gate,
        item: &FetchItem,
        current: &str,
    ) -> Result<bool, StoreError> {
        if let Some(version) = &item.version {
            return Ok(version == current);
        }
        let described = gate
            .call(Service::SecretsManager, || self.client.describe_secret().secret_id(&item.name).send())
            .await
        .map_err(|e| {
            let error = sdk_error("DescribeSecret", &e);
            debug!(object = %item.name, region = %self.region, code = error.code.as_deref().unwrap_or(""), "describe failed");
            error
        })?;
        let stage = item.label.as_deref().unwrap_or(CURRENT_STAGE);
        Ok(described
            .version_ids_to_stages()
            .and_then(|stages| stages.get(current))
            .is_some_and(|stages| stages.iter().any(|s| s == stage)))
    }
}

/// What a shared check of `item` asks: its mounted version, the full ARN
/// its pod's own fetch returned, and the stage; `None` for an item without
/// both, or pinned to a version (which needs no check).
fn checked(item: &FetchItem) -> Option<(&str, &str, &str)> {
    let (Some(current), Some(arn), None) = (&item.mounted_version, &item.arn, &item.version) else {
        return None;
    };
    let stage = item.label.as_deref().unwrap_or(CURRENT_STAGE);
    Some((current, arn, stage))
}

/// The shared-check misses (ascending) to re-read in the mount's batches
/// instead of checking them one DescribeSecret each: all the batchable ones
/// when adding them to the batches the mount makes anyway costs fewer calls
/// than their checks, else none. Counted in distinct secret ids, as batches
/// ask for them.
fn rebatch(
    items: &[FetchItem],
    candidates: &[usize],
    misses: &[usize],
    answers: &[Option<bool>],
) -> Vec<usize> {
    let (missed, read_anyway): (Vec<usize>, Vec<usize>) = candidates
        .iter()
        .copied()
        .filter(|&i| answers[i] != Some(true))
        .partition(|i| misses.binary_search(i).is_ok());
    let ids = |indices: &[usize]| -> usize {
        indices
            .iter()
            .map(|&i| items[i].name.as_str())
            .collect::<std::collections::HashSet<_>>()
            .len()
    };
    let anyway = ids(&read_anyway);
    let all = ids(&[&read_anyway[..], &missed[..]].concat());
    let added_batches = all.div_ceil(BATCH_SIZE) - anyway.div_ceil(BATCH_SIZE);
    if added_batches < ids(&missed) {
        missed
    } else {
        Vec::new()
    }
}

impl SecretsManagerStore {
    /// Every secret under `query`'s prefix with an AWSCURRENT version, with
    /// its value; a secret that cannot be read fails the listing, named.
    async fn list_path(&self, query: PathQuery) -> Result<Vec<Listed>, StoreError> {
        let filter = Filter::builder()
            .key(FilterNameStringType::Name)
            .values(query.prefix.clone())
            .build();
        let mut matches = Matches::new(&query);
        let mut next_token: Option<String> = None;
        let mut pages = 0;
        loop {
            if pages == paths::MAX_PAGES {
                return Err(paths::too_many_pages("ListSecrets", &query));
            }
            pages += 1;
            let sent = self
                .gate
                .call(Service::SecretsManager, || {
                    self.client
                        .list_secrets()
                        .filters(filter.clone())
                        .max_results(LIST_PAGE)
                        .set_next_token(next_token.clone())
                        .send()
                })
                .await;
            let out = sent.map_err(|e| sdk_error("ListSecrets", &e))?;
            for entry in out.secret_list.unwrap_or_default() {
                let Some(name) = entry.name else { continue };
                let has_current = entry.secret_versions_to_stages.is_some_and(|versions| {
                    versions
                        .values()
                        .any(|stages| stages.iter().any(|s| s == CURRENT_STAGE))
                });
                if has_current {
                    matches.push(name, ())?;
                } else {
                    debug!(object = %name, region = %self.region, "listed without an AWSCURRENT version; left out");
                }
            }
            next_token = out.next_token.filter(|t| !t.is_empty());
            if next_token.is_none() {
                break;
            }
        }
        let names: Vec<String> = matches.into_sorted().into_iter().map(|(n, ())| n).collect();
        debug!(prefix = %query.prefix, region = %self.region, matches = names.len(), "listed secrets");
        let items = names
            .iter()
            .map(|name| FetchItem {
                name: name.clone(),
                version: None,
                label: None,
                mounted_version: None,
                arn: None,
            })
            .collect();
        let results = self.fetch_all(items).await;
        names
            .into_iter()
            .zip(results)
            .map(|(name, result)| match result {
                Ok(Fetched::Value {
                    contents, version, ..
                }) => Ok(Listed {
                    name,
                    contents,
                    version,
                }),
                Ok(_) => Err(StoreError::new(
                    FailureKind::Internal,
                    None,
                    format!("{name}: no value in the answer"),
                )),
                Err(e) => Err(StoreError {
                    message: format!("{name}: {}", e.message),
                    ..e
                }),
            })
            .collect()
    }
}

/// The value of an answer: SecretString's bytes, else SecretBinary's, as
/// they are, with the answer's VersionId and ARN.
fn value(
    operation: &str,
    string: Option<String>,
    binary: Option<Blob>,
    version: Option<String>,
    arn: Option<String>,
) -> ItemResult {
    let contents = match (string, binary) {
        (Some(s), _) => SecretBytes::from(s),
        (None, Some(b)) => SecretBytes::new(b.into_inner()),
        (None, None) => {
            return Err(StoreError::new(
                FailureKind::Internal,
                None,
                format!("{operation}: the answer has neither SecretString nor SecretBinary"),
            ));
        }
    };
    let Some(version) = version else {
        return Err(StoreError::new(
            FailureKind::Internal,
            None,
            format!("{operation}: the answer has no VersionId"),
        ));
    };
    Ok(Fetched::Value {
        contents,
        version,
        arn,
    })
}

/// Whether a call was refused for lack of permission for the call itself.
fn is_access_denied<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    match error {
        SdkError::ServiceError(service) => matches!(
            service.err().code(),
            Some("AccessDeniedException" | "AccessDenied")
        ),
        _ => false,
    }
}

fn is_arn(name: &str) -> bool {
    name.starts_with("arn:")
}

/// The account field of `arn:PARTITION:SERVICE:REGION:ACCOUNT:...`.
fn arn_account(name: &str) -> Option<&str> {
    if !is_arn(name) {
        return None;
    }
    name.split(':').nth(4).filter(|a| !a.is_empty())
}

/// The account of the store's credentials, when the provider says.
async fn own_account(credentials: &SharedCredentialsProvider) -> Option<String> {
    match credentials.provide_credentials().await {
        Ok(c) => c.account_id().map(|a| a.as_str().to_owned()),
        // The single reads will report the credentials' failure.
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_accounts() {
        assert_eq!(
            arn_account("arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf"),
            Some("111122223333")
        );
        assert_eq!(arn_account("db/prod"), None);
        assert_eq!(arn_account("arn:aws:secretsmanager:us-east-1"), None);
        assert_eq!(
            arn_account("arn:aws:secretsmanager:us-east-1::secret:x"),
            None
        );
    }

    fn recorded(name: &str) -> FetchItem {
        FetchItem {
            name: name.to_owned(),
            version: None,
            label: None,
            mounted_version: Some("v1".to_owned()),
            arn: Some(format!("arn:aws:secretsmanager:us-east-1:1:secret:{name}")),
        }
    }

    #[test]
    fn misses_are_rebatched_only_when_that_takes_fewer_calls() {
        let items: Vec<FetchItem> = (0..45).map(|i| recorded(&format!("s{i}"))).collect();
        let all: Vec<usize> = (0..45).collect();
        let unknown = vec![None; 45];
        // One miss alone: one batch or one check, a tie: checked.
        assert!(rebatch(&items, &all[..1], &all[..1], &unknown).is_empty());
        // Two or more: ceil(n/20) batches beat n checks.
        assert_eq!(rebatch(&items, &all[..2], &all[..2], &unknown), vec![0, 1]);
        assert_eq!(rebatch(&items, &all, &all, &unknown), all);
        // One miss joining a batch made anyway (its other ids changed) is free.
        let mut changed = vec![Some(false); 45];
        changed[4] = None;
        assert_eq!(rebatch(&items, &all[..5], &[4], &changed), vec![4]);
        // One miss that would open a third batch for 41 ids: checked.
        let mut answers = vec![Some(false); 41];
        answers[40] = None;
        assert!(rebatch(&items, &all[..41], &[40], &answers).is_empty());
        // Hits are neither read nor counted.
        let mut hits = vec![Some(true); 45];
        hits[7] = None;
        hits[9] = None;
        assert_eq!(rebatch(&items, &all, &[7, 9], &hits), vec![7, 9]);
    }

    #[test]
    fn values_prefer_the_string_and_need_a_version() {
        let v = value(
            "Op",
            Some("s".into()),
            Some(Blob::new(vec![1])),
            Some("v1".into()),
            None,
        );
        assert_eq!(
            v.ok(),
            Some(Fetched::Value {
                contents: SecretBytes::from("s".to_owned()),
                version: "v1".into(),
                arn: None
            })
        );
        let b = value(
            "Op",
            None,
            Some(Blob::new(vec![0, 255])),
            Some("v2".into()),
            None,
        );
        assert_eq!(
            b.ok(),
            Some(Fetched::Value {
                contents: SecretBytes::new(vec![0, 255]),
                version: "v2".into(),
                arn: None
            })
        );
        assert!(value("Op", None, None, Some("v".into()), None).is_err());
        assert!(value("Op", Some("s".into()), None, None, None).is_err());
    }
}
