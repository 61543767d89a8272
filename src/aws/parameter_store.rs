//! The Parameter Store store: GetParameters with decryption, at most 10 names
//! per call, `name:version` / `name:label` selectors, results matched back by
//! name or ARN (as ASCP), with the calls of one fetch made at once (beyond
//! ASCP).
//!
//! Matching: real SSM answers a selector request with the plain `Name` and a
//! separate `Selector` (`":3"`, `":label"`); moto 5.2.5 sends no `Selector`
//! at all. Neither tells reliably which of two requests for the same
//! parameter an answer belongs to, so a call never carries two requests for
//! the same parameter: within a call the parameter alone identifies the
//! request. A mount naming one parameter under several selectors pays an
//! extra call; one naming distinct parameters pays nothing.
//!
//! Rotation remounts (beyond ASCP, which reads every parameter again): an
//! unpinned item that carries its mounted version and the full ARN its pod's
//! own read returned (the mount's records) is first asked of the node's
//! shared checks ([`super::version_checks::ParameterChecks`]): one
//! GetParameters per ten keys (ARN, or `ARN:label`) per check window,
//! without decryption, whose values are dropped at once. Still at the
//! mounted version, the item comes back [`Fetched::Unchanged`] and the
//! mount reuses its own file; changed, or no answer (a failed or denied
//! check), it is read below with the pod's own credentials, as any other.
//! A pinned item recorded at its version never reaches the store.
//!
//! A path (`/app/prod/*`, `/app/prod/**`) is listed with GetParametersByPath
//! on the hierarchy `/app/prod`, with decryption, ten a page (the service's
//! most), recursive for `/**` only; the answers hold the values, so a path
//! costs one call per ten matches.
//!
//! This store never logs or formats a value, and never puts one in an error.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_ssm::Client;
use futures::future::{BoxFuture, join_all};

use super::classify::sdk_error;
use super::limits::Gate;
use super::paths::{self, Matches};
use super::throttle::Service;
use super::version_checks::{ParameterChecks, Versions, check_key};
use crate::arn::{self, Arn};
use crate::secret::SecretBytes;
use crate::store::{FailureKind, FetchItem, Fetched, Listed, PathQuery, Store, StoreError};

/// GetParameters takes at most 10 names per call.
const BATCH_SIZE: usize = 10;
/// GetParametersByPath returns at most 10 parameters per page.
const BY_PATH_PAGE: i32 = 10;
/// Invalid names listed in one error message; the rest are counted.
const MAX_LISTED: usize = 20;

type ItemResult = Result<Fetched, StoreError>;

pub(crate) struct ParameterStore {
    client: Client,
    region: String,
    /// The mount's gate, shared with its Secrets Manager store in this region.
    gate: Arc<Gate>,
    /// The node's shared checks of mounted parameters.
    checks: Arc<ParameterChecks>,
}

impl Store for ParameterStore {
    fn fetch(&self, items: Vec<FetchItem>) -> BoxFuture<'_, Vec<ItemResult>> {
        Box::pin(self.fetch_all(items))
    }

    fn list(&self, path: PathQuery) -> BoxFuture<'_, Result<Vec<Listed>, StoreError>> {
        Box::pin(self.list_path(path))
    }
}

/// One distinct name sent to SSM, and the items that asked for it.
#[derive(Debug)]
struct Request {
    /// As sent: `name`, `name:3`, `name:label`, or an ARN with those.
    text: String,
    /// The parameter it names, however spelled (see [`parameter_key`]).
    key: String,
    /// Indices of the items asking for it.
    items: Vec<usize>,
}

/// What one call said about one request.
#[derive(Debug)]
enum Answer {
    Value(Fetched),
    /// Listed in `InvalidParameters`.
    Invalid,
    Failed(StoreError),
}

impl ParameterStore {
    pub(crate) fn new(
        client: Client,
        region: String,
        gate: Arc<Gate>,
        checks: Arc<ParameterChecks>,
    ) -> Self {
        ParameterStore {
            client,
            region,
            gate,
            checks,
        }
    }

    /// The node's checks first, then one read of everything they left.
    async fn fetch_all(&self, items: Vec<FetchItem>) -> Vec<ItemResult> {
        let mut results = self.shared_checks(&items).await;
        let unread: Vec<usize> = (0..items.len()).filter(|&i| results[i].is_none()).collect();
        if !unread.is_empty() {
            let read = self
                .read_all(unread.iter().map(|&i| items[i].clone()).collect())
                .await;
            for (i, result) in unread.into_iter().zip(read) {
                results[i] = Some(result);
            }
        }
        super::settle(results)
    }

    /// Asks the node's shared checks about every unpinned item that carries
    /// its mounted version and ARN: `Unchanged` for those still at it,
    /// `None` for every other item (to be read).
    async fn shared_checks(&self, items: &[FetchItem]) -> Vec<Option<ItemResult>> {
        let keys: Vec<Option<String>> = items
            .iter()
            .map(
                |item| match (&item.mounted_version, &item.arn, &item.version) {
                    (Some(_), Some(arn), None) => Some(check_key(arn, item.label.as_deref())),
                    _ => None,
                },
            )
            .collect();
        let mut distinct: Vec<String> = keys.iter().flatten().cloned().collect();
        distinct.sort();
        distinct.dedup();
        if distinct.is_empty() {
            return vec![None; items.len()];
        }
        let versions = self
            .checks
            .versions(&distinct, |keys| self.check(keys))
            .await;
        let by_key: HashMap<&str, Arc<str>> = distinct
            .iter()
            .zip(versions)
            .filter_map(|(key, version)| Some((key.as_str(), version?)))
            .collect();
        items
            .iter()
            .zip(&keys)
            .map(|(item, key)| {
                let version = by_key.get(key.as_deref()?)?;
                let current = item.mounted_version.as_deref()?;
                (**version == *current).then(|| {
                    tracing::debug!(object = %item.name, region = %self.region, version = current, "unchanged (shared check)");
                    Ok(Fetched::Unchanged {
                        version: current.to_owned(),
                    })
                })
            })
            .collect()
    }

    /// The shared check of `keys` (distinct `ARN` or `ARN:label`): their
    /// versions now, ten per GetParameters, without decryption. Each value
    /// returned is dropped (zeroed) here; a key without an answer is
    /// missing from the result.
    async fn check(&self, keys: Vec<String>) -> Versions {
        let requests: Vec<Request> = keys
            .into_iter()
            .enumerate()
            .map(|(i, text)| Request {
                key: parameter_key(strip_selector(&text)),
                text,
                items: vec![i],
            })
            .collect();
        let batches = pack(&requests);
        let gate: &Gate = &self.gate;
        let answers =
            join_all(batches.iter().map(|batch| {
                self.call(gate, batch.iter().map(|&r| &requests[r]).collect(), false)
            }))
            .await;
        let mut versions = Versions::new();
        for (batch, answers) in batches.iter().zip(answers) {
            for (&r, answer) in batch.iter().zip(answers) {
                let text = &requests[r].text;
                match answer {
                    Answer::Value(fetched) => {
                        versions.insert(text.clone(), fetched.version().to_owned());
                    }
                    Answer::Invalid => {
                        tracing::debug!(object = %text, region = %self.region, "parameter check: invalid; reading instead");
                    }
                    Answer::Failed(error) => {
                        tracing::debug!(object = %text, region = %self.region, code = error.code.as_deref().unwrap_or(""), "parameter check failed; reading instead");
                    }
                }
            }
        }
        versions
    }

    /// Reads every item with the pod's credentials, ten per GetParameters.
    async fn read_all(&self, items: Vec<FetchItem>) -> Vec<ItemResult> {
        let requests = requests(&items);
        let batches = pack(&requests);
        let gate: &Gate = &self.gate;
        let answers = join_all(
            batches
                .iter()
                .map(|batch| self.call(gate, batch.iter().map(|&r| &requests[r]).collect(), true)),
        )
        .await;

        let mut by_request: Vec<Option<Answer>> = (0..requests.len()).map(|_| None).collect();
        for (batch, answers) in batches.iter().zip(answers) {
            for (&r, answer) in batch.iter().zip(answers) {
                by_request[r] = Some(answer);
            }
        }

        // docs/fetching.md#parameter-store: InvalidParameters lists each
        // name once; every object
        // affected gets the whole list, so the mount's message shows it.
        let invalid: Vec<&str> = requests
            .iter()
            .zip(&by_request)
            .filter(|(_, a)| matches!(a, Some(Answer::Invalid)))
            .map(|(r, _)| r.text.as_str())
            .collect();
        let invalid_error = (!invalid.is_empty()).then(|| {
            StoreError::new(
                FailureKind::InvalidArgument,
                Some("InvalidParameters"),
                format!(
                    "GetParameters failed: invalid parameters: {}",
                    list(&invalid)
                ),
            )
        });

        let mut results: Vec<Option<ItemResult>> = vec![None; items.len()];
        for (request, answer) in requests.iter().zip(by_request) {
            let result = match answer {
                Some(Answer::Value(fetched)) => Ok(fetched),
                Some(Answer::Failed(error)) => Err(error),
                Some(Answer::Invalid) => Err(invalid_error.clone().unwrap_or_else(|| {
                    StoreError::new(
                        FailureKind::InvalidArgument,
                        Some("InvalidParameters"),
                        "invalid parameter",
                    )
                })),
                None => Err(StoreError::new(
                    FailureKind::Internal,
                    None,
                    "GetParameters: the parameter was not asked for",
                )),
            };
            super::log_result("parameter", &self.region, &request.text, &result);
            for &i in &request.items {
                results[i] = Some(result.clone());
            }
        }
        super::settle(results)
    }

    /// Every parameter under `query`'s prefix, with its value.
    async fn list_path(&self, query: PathQuery) -> Result<Vec<Listed>, StoreError> {
        // The hierarchy is the prefix without its final `/`, but for the root.
        let path = match query.prefix.trim_end_matches('/') {
            "" => "/",
            p => p,
        };
        let mut matches = Matches::new(&query);
        let mut next_token: Option<String> = None;
        for _ in 0..paths::MAX_PAGES {
            let sent = self
                .gate
                .call(Service::Ssm, || {
                    self.client
                        .get_parameters_by_path()
                        .path(path)
                        .recursive(query.recursive)
                        .with_decryption(true)
                        .max_results(BY_PATH_PAGE)
                        .set_next_token(next_token.clone())
                        .send()
                })
                .await;
            let out = sent.map_err(|e| sdk_error("GetParametersByPath", &e))?;
            for parameter in out.parameters.unwrap_or_default() {
                let (Some(name), Some(value)) = (parameter.name, parameter.value) else {
                    return Err(StoreError::new(
                        FailureKind::Internal,
                        None,
                        "GetParametersByPath: an answer has no Name or no Value",
                    ));
                };
                matches.push(
                    name,
                    (SecretBytes::from(value), parameter.version.to_string()),
                )?;
            }
            next_token = out.next_token.filter(|t| !t.is_empty());
            if next_token.is_none() {
                let listed: Vec<Listed> = matches
                    .into_sorted()
                    .into_iter()
                    .map(|(name, (contents, version))| Listed {
                        name,
                        contents,
                        version,
                    })
                    .collect();
                tracing::debug!(path, region = %self.region, matches = listed.len(), "listed parameters");
                return Ok(listed);
            }
        }
        Err(paths::too_many_pages("GetParametersByPath", &query))
    }

    /// One GetParameters call for `batch` (at most 10 requests, no two for
    /// the same parameter), decrypting SecureStrings when `decrypt` (reads;
    /// checks need only the version); one answer per request, in order.
    async fn call(&self, gate: &Gate, batch: Vec<&Request>, decrypt: bool) -> Vec<Answer> {
        let sent = gate
            .call(Service::Ssm, || {
                self.client
                    .get_parameters()
                    .set_names(Some(batch.iter().map(|r| r.text.clone()).collect()))
                    .with_decryption(decrypt)
                    .send()
            })
            .await;
        let out = match sent {
            Ok(out) => out,
            Err(e) => {
                let error = sdk_error("GetParameters", &e);
                return batch
                    .iter()
                    .map(|_| Answer::Failed(error.clone()))
                    .collect();
            }
        };

        let mut answers: Vec<Option<Answer>> = batch.iter().map(|_| None).collect();
        let position = |key: &str| batch.iter().position(|r| r.key == key);

        for parameter in out.parameters.unwrap_or_default() {
            // The ARN spells the parameter the same way whatever the request
            // used; the name is the fallback for answers without one.
            let key = parameter
                .arn
                .as_deref()
                .or(parameter.name.as_deref())
                .map(parameter_key);
            let Some(at) = key.as_deref().and_then(position) else {
                continue;
            };
            answers[at] = Some(match parameter.value {
                Some(value) => Answer::Value(Fetched::Value {
                    contents: SecretBytes::from(value),
                    version: parameter.version.to_string(),
                    arn: parameter.arn,
                }),
                None => Answer::Failed(StoreError::new(
                    FailureKind::Internal,
                    None,
                    "GetParameters: the answer has no Value",
                )),
            });
        }

        for name in out.invalid_parameters.unwrap_or_default() {
            let at = batch
                .iter()
                .position(|r| r.text == name)
                .or_else(|| position(&parameter_key(strip_selector(&name))));
            if let Some(at) = at
                && answers[at].is_none()
            {
                answers[at] = Some(Answer::Invalid);
            }
        }

        answers
            .into_iter()
            .map(|a| {
                a.unwrap_or_else(|| {
                    Answer::Failed(StoreError::new(
                        FailureKind::Internal,
                        None,
                        "GetParameters: the answer neither returned nor rejected the parameter",
                    ))
                })
            })
            .collect()
    }
}

/// The distinct names to send, in the items' order. A pinned version wins
/// over a label (the descriptors never carry both).
fn requests(items: &[FetchItem]) -> Vec<Request> {
    let mut requests: Vec<Request> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let text = match item.version.as_deref().or(item.label.as_deref()) {
            Some(selector) => format!("{}:{selector}", item.name),
            None => item.name.clone(),
        };
        match seen.get(&text) {
            Some(&r) => requests[r].items.push(i),
            None => {
                seen.insert(text.clone(), requests.len());
                requests.push(Request {
                    key: parameter_key(&item.name),
                    text,
                    items: vec![i],
                });
            }
        }
    }
    requests
}

/// Groups requests into calls of at most [`BATCH_SIZE`], never two requests
/// for the same parameter in one call, first fit in order. Distinct
/// parameters fill calls completely: n of them take ⌈n/10⌉ calls.
fn pack(requests: &[Request]) -> Vec<Vec<usize>> {
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for (r, request) in requests.iter().enumerate() {
        let fits = batches.iter().position(|b| {
            b.len() < BATCH_SIZE && b.iter().all(|&o| requests[o].key != request.key)
        });
        match fits {
            Some(b) => batches[b].push(r),
            None => batches.push(vec![r]),
        }
    }
    batches
}

/// The parameter a name or ARN (without selector) names, spelled one way:
/// `/a/b`, `a/b` and `arn:aws:ssm:REGION:ACCOUNT:parameter/a/b` all give
/// `a/b`. Only used to tell requests apart within one call, where treating
/// two parameters as one costs an extra call, never a wrong answer.
fn parameter_key(name: &str) -> String {
    Arn::parse(name)
        .and_then(|arn| arn.resource.strip_prefix("parameter"))
        .unwrap_or(name)
        .trim_start_matches('/')
        .to_owned()
}

/// `name:selector` → `name`, also inside an ARN's resource.
fn strip_selector(text: &str) -> &str {
    // Skip arn:PARTITION:SERVICE:REGION:ACCOUNT: (an `arn:` text without
    // a resource has no selector either).
    let start = match Arn::parse(text) {
        Some(arn) => arn.resource_start(),
        None if arn::is_arn(text) => text.len(),
        None => 0,
    };
    match text[start..].find(':') {
        Some(at) => &text[..start + at],
        None => text,
    }
}

/// `a, b, c`, at most [`MAX_LISTED`] names, then how many more.
fn list(names: &[&str]) -> String {
    let mut out = names
        .iter()
        .take(MAX_LISTED)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > MAX_LISTED {
        out.push_str(&format!(" and {} more", names.len() - MAX_LISTED));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, version: Option<&str>, label: Option<&str>) -> FetchItem {
        FetchItem {
            name: name.into(),
            version: version.map(Into::into),
            label: label.map(Into::into),
            mounted_version: None,
            arn: None,
        }
    }

    #[test]
    fn keys_spell_one_parameter_one_way() {
        assert_eq!(parameter_key("/a/b"), "a/b");
        assert_eq!(
            parameter_key("arn:aws:ssm:us-east-1:123456789012:parameter/a/b"),
            "a/b"
        );
        assert_eq!(
            parameter_key("arn:aws:ssm:us-east-1:123456789012:parameter/plain"),
            "plain"
        );
        assert_eq!(parameter_key("plain"), "plain");
    }

    #[test]
    fn selectors_are_stripped() {
        assert_eq!(strip_selector("/a/b:3"), "/a/b");
        assert_eq!(strip_selector("/a/b"), "/a/b");
        assert_eq!(
            strip_selector("arn:aws:ssm:us-east-1:123456789012:parameter/a/b:prod"),
            "arn:aws:ssm:us-east-1:123456789012:parameter/a/b"
        );
        assert_eq!(
            strip_selector("arn:aws:ssm:us-east-1:123456789012:parameter/a/b"),
            "arn:aws:ssm:us-east-1:123456789012:parameter/a/b"
        );
    }

    #[test]
    fn requests_carry_selectors_and_are_distinct() {
        let items = [
            item("/a", None, None),
            item("/a", Some("3"), None),
            item("/a", None, Some("prod")),
            item("/a", None, None),
        ];
        let r = requests(&items);
        let texts: Vec<&str> = r.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, ["/a", "/a:3", "/a:prod"]);
        assert_eq!(r[0].items, [0, 3]);
    }

    #[test]
    fn distinct_parameters_fill_calls_and_repeats_are_split() {
        let items: Vec<FetchItem> = (0..25)
            .map(|i| item(&format!("/p{i}"), None, None))
            .collect();
        let batches = pack(&requests(&items));
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            [10, 10, 5]
        );

        let items = [
            item("/a", None, None),
            item("/a", Some("1"), None),
            item("/b", None, None),
            item(
                "arn:aws:ssm:us-east-1:123456789012:parameter/a",
                None,
                Some("x"),
            ),
        ];
        let batches = pack(&requests(&items));
        assert_eq!(batches, [vec![0, 2], vec![1], vec![3]]);
    }

    #[test]
    fn long_lists_are_bounded() {
        let names: Vec<String> = (0..30).map(|i| format!("/p{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let l = list(&refs);
        assert!(
            l.contains("/p19") && !l.contains("/p20,") && l.ends_with("and 10 more"),
            "{l}"
        );
    }
}
