//! A path (`prod/web/*`, `prod/web/**`) listed with ListSecrets, then read
//! as unpinned objects are.

use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use tracing::debug;

use super::SecretsManagerStore;
use crate::aws::classify::sdk_error;
use crate::aws::paths::{self, Matches};
use crate::aws::throttle::Service;
use crate::aws::version_checks::CURRENT_STAGE;
use crate::store::{FailureKind, FetchItem, Fetched, Listed, PathQuery, StoreError};

/// ListSecrets returns at most 100 secrets per page.
const LIST_PAGE: i32 = 100;

impl SecretsManagerStore {
    /// Every secret under `query`'s prefix with an AWSCURRENT version, with
    /// its value; a secret that cannot be read fails the listing, named.
    pub(super) async fn list_path(&self, query: PathQuery) -> Result<Vec<Listed>, StoreError> {
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
