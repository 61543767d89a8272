//! BatchGetSecretValue (beyond ASCP, opt-in): which objects may be read
//! in batches, 20 ids a call, and what a denied or failed batch leaves to
//! the single reads.

use std::collections::HashMap;

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use futures::future::join_all;
use tracing::warn;

use super::get::value;
use super::{ItemResult, SecretsManagerStore, is_access_denied};
use crate::arn::{Arn, is_arn};
use crate::aws::classify::{sdk_error, service_error};
use crate::aws::limits::Gate;
use crate::aws::throttle::Service;
use crate::store::{FetchItem, StoreError};

/// BatchGetSecretValue takes at most 20 secret ids per call.
pub(super) const BATCH_SIZE: usize = 20;
/// Pages followed for one batch call. AWS paginates id lists only when the
/// answer is too large; 20 secrets of 64 KiB fit in a handful of pages.
const MAX_PAGES: usize = 20;

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
    /// Indices (ascending) of the items to read with BatchGetSecretValue:
    /// none unless batching is on and not denied for this principal; else
    /// those without a pinned version or label, named by plain name or by an
    /// ARN of the credentials' own account. Another account's ARN, or any
    /// ARN when the account is unknown, goes through GetSecretValue, whose
    /// permission model (resource policies) cross-account access relies on.
    pub(super) async fn batch_candidates(&self, items: &[FetchItem]) -> Vec<usize> {
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
    pub(super) async fn fetch_batched(
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
                    crate::aws::log_result("secret", &self.region, id, &result);
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
}

/// The account of a name written as a full ARN, unless empty.
fn arn_account(name: &str) -> Option<&str> {
    Arn::parse(name)
        .map(|a| a.account)
        .filter(|a| !a.is_empty())
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
}
