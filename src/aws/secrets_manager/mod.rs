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
//! The store's parts: `get` reads one object (GetSecretValue), `checks`
//! asks whether a mounted version is still current (the node's shared
//! check, DescribeSecret), `batch` reads many (BatchGetSecretValue) and
//! `list` lists a path (ListSecrets). `fetch_all`, here, puts them in
//! order.
//!
//! This store never logs or formats a value, and never puts one in an error.

mod batch;
mod checks;
mod get;
mod list;

use std::sync::Arc;

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use futures::future::{BoxFuture, join_all};

use super::BatchDenials;
use super::limits::Gate;
use super::version_checks::VersionChecks;
use crate::store::{FetchItem, Fetched, Listed, PathQuery, Store, StoreError};

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

        crate::aws::settle(results)
    }
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
