//! Whether a mounted secret is still current, so a remount need not read
//! it: the node's shared version check ([`crate::aws::version_checks`]),
//! whose misses may be re-read in the mount's batches instead; and, for an
//! object without the ARN that check needs, ASCP's own DescribeSecret of
//! the object.

use futures::future::join_all;
use tracing::debug;

use super::batch::BATCH_SIZE;
use super::{ItemResult, SecretsManagerStore, is_access_denied};
use crate::aws::classify::sdk_error;
use crate::aws::limits::Gate;
use crate::aws::throttle::Service;
use crate::aws::version_checks::{CURRENT_STAGE, CheckFailure, Stages};
use crate::store::{FetchItem, Fetched, StoreError};

impl SecretsManagerStore {
    /// Asks the node's shared version check about every unpinned item that
    /// carries its mounted version and ARN. Items still current are
    /// answered [`Fetched::Unchanged`]; the others lose their mounted
    /// version, so they are fetched without a DescribeSecret of their own.
    ///
    /// Answers within the window come first, free. With batching, the
    /// misses among `candidates` (ascending indices of the items to batch)
    /// are re-read in batches when that takes fewer calls than one
    /// DescribeSecret per missed secret; the batch answers then fill the
    /// shared checks ([`crate::aws::version_checks::VersionChecks::record_current`]).
    pub(super) async fn shared_checks(
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

    /// Whether the mounted version `current` is still the one to serve: a
    /// pinned version must equal it (no call); otherwise DescribeSecret must
    /// show it carrying the object's stage (AWSCURRENT by default).
    pub(super) async fn still_current(
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
