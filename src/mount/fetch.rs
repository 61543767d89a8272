//! Asking the regions for the objects, and settling each object's value.
//!
//! Per region, concurrently, as one chain: the pod's credentials in that
//! region ([`crate::store::Identity::region_credentials`]), the region's
//! stores ([`crate::store::OpenStores`]), then one call per store with
//! every object of that store. A region whose identity step failed answers
//! every object with that failure, so the failover rule treats it like a
//! failed fetch.
//!
//! Each object then gets an [`ObjectAnswer`] (what each region said about
//! it), the failover rule picks one ([`Sources::settle`]), and
//! [`values`] turns the picks into contents: a value as fetched, or, on a
//! rotation remount, the mounted file read back when the store said the
//! mounted version is still current.
//!
//! A path object (`prod/web/*`) is listed in each region alongside the
//! other calls ([`crate::store::Store::list`]), every time: neither the
//! driver's versions nor the records apply to it, so matches added or
//! removed since the last mount show at once. Its answer is the whole
//! listing, and the failover rule treats it as one object's.
//!
//! What is mounted comes from the driver (`current_object_version`, up to
//! driver v1.5) or from the mount's records ([`Reuse`], driver v1.6). A
//! record entry is used in a region only while that region acts with the
//! identity recorded. Then a pinned object (a Secrets Manager VersionId, an
//! SSM version number) whose recorded version is the pinned one is
//! answered unchanged without asking the store; an unpinned object (secret
//! or parameter) is asked with its mounted version and the ARN its own
//! fetch returned, for the node's shared version check. Contents read back
//! for a recorded object must match the recorded digest, else they are
//! fetched.

use std::collections::HashMap;

use futures::future::{OptionFuture, join, join_all};
use tracing::warn;

use super::records::{self, ObjectRecord, TargetRecord};
use super::regions::{Choice, Outcome, Regions, Side, choose};
use crate::arn::Arn;
use crate::error::Error;
use crate::output::Target;
use crate::secret::SecretBytes;
use crate::spc::ObjectSpec;
use crate::spc::objects::{MAX_FILES, MAX_PATH_MATCHES};
use crate::store::{
    FailureKind, FetchItem, Fetched, Identity, Listed, MatchBudget, OpenStores, PathQuery,
    PodCredentials, PodRef, StoreError, StoreKind, Stores,
};

/// Largest mounted file read back on a rotation remount. Secrets Manager
/// values are at most 64 KiB and parameters at most 8 KiB.
const MAX_READ_BACK_BYTES: usize = 1024 * 1024;

/// The versions mounted now, by file name, as the driver sent them.
pub type Current<'a> = HashMap<&'a str, &'a str>;

/// What one region said about one object.
pub enum RegionAnswer {
    /// The store's answer.
    Fetched(Fetched),
    /// The store's failure.
    Failed(StoreError),
    /// The region's identity step failed; its [`Region`] holds the error.
    NoCredentials,
}

/// What the regions said about one object.
pub struct ObjectAnswer {
    /// The primary region's answer.
    pub primary: RegionAnswer,
    /// The failover region's, when the mount has one.
    pub failover: Option<RegionAnswer>,
}

/// What the mount's records say is mounted, for [`Sources::fetch`].
pub struct Reuse<'a> {
    /// The target's record.
    pub record: &'a TargetRecord,
    /// Per object, in `objects`' order: its entry, when the descriptor that
    /// produced it is unchanged.
    pub objects: Vec<Option<&'a ObjectRecord>>,
}

/// One region of a mount, with the stores acting as the pod there.
struct Region {
    side: Side,
    name: String,
    /// The stores, or why the pod has no credentials here.
    stores: Result<Stores, Error>,
    /// [`records::identity_key`] of the credentials, when there are some.
    identity: Option<String>,
}

impl Region {
    /// Every object in this region: one call per store, one answer per
    /// object in `objects`' order. `current` and `reuse` enable the
    /// rotation shortcuts.
    async fn fetch(
        &self,
        objects: &[&ObjectSpec],
        current: Option<&Current<'_>>,
        reuse: Option<&Reuse<'_>>,
    ) -> Vec<RegionAnswer> {
        let Ok(stores) = &self.stores else {
            return objects
                .iter()
                .map(|_| RegionAnswer::NoCredentials)
                .collect();
        };
        // The record entries valid here: recorded with this region's identity.
        let mounted: Vec<Option<&ObjectRecord>> = match (reuse, &self.identity) {
            (Some(reuse), Some(key)) if reuse.record.same_identity(&self.name, key) => {
                reuse.objects.clone()
            }
            _ => vec![None; objects.len()],
        };
        // Pinned and recorded: the mounted file is that version, for good,
        // so the store is not asked.
        let mut early: Vec<Option<RegionAnswer>> = Vec::with_capacity(objects.len());
        let mut asked: [Vec<FetchItem>; 2] = [Vec::new(), Vec::new()];
        for (spec, mounted) in objects.iter().zip(&mounted) {
            // Paths are listed below, every time.
            if spec.path.is_some() {
                early.push(None);
                continue;
            }
            let item = self.item(spec, current, *mounted);
            match mounted.filter(|m| item.version.as_deref() == Some(m.version.as_str())) {
                Some(m) => early.push(Some(RegionAnswer::Fetched(Fetched::Unchanged {
                    version: m.version.clone(),
                }))),
                None => {
                    early.push(None);
                    asked[usize::from(spec.kind == StoreKind::ParameterStore)].push(item);
                }
            }
        }
        let [secret_items, parameter_items] = asked;
        let call = |kind: StoreKind, items: Vec<FetchItem>| {
            let store = stores.get(kind).clone();
            async move {
                if items.is_empty() {
                    Vec::new()
                } else {
                    store.fetch(items).await
                }
            }
        };
        // The paths share what the other objects leave of the file limit,
        // so this region holds at most that many matches.
        let others: usize = objects
            .iter()
            .filter(|s| s.path.is_none())
            .map(|s| 1 + s.jmes.len())
            .sum();
        let budget = MatchBudget::new(MAX_FILES.saturating_sub(others), MAX_FILES);
        let listings = join_all(objects.iter().filter_map(|spec| {
            let path = spec.path.as_ref()?;
            let store = stores.get(spec.kind).clone();
            let query = PathQuery {
                prefix: path.prefix.clone(),
                recursive: path.recursive,
                limit: MAX_PATH_MATCHES,
                budget: budget.clone(),
            };
            Some(async move { store.list(query).await })
        }));
        let ((secrets, parameters), listings) = join(
            join(
                call(StoreKind::SecretsManager, secret_items),
                call(StoreKind::ParameterStore, parameter_items),
            ),
            listings,
        )
        .await;
        let mut secrets = secrets.into_iter();
        let mut parameters = parameters.into_iter();
        let mut listings = listings.into_iter();
        objects
            .iter()
            .zip(early)
            .map(|(spec, early)| {
                if let Some(answer) = early {
                    return answer;
                }
                let next = match spec.kind {
                    _ if spec.path.is_some() => listings.next().map(|l| l.map(Fetched::Listed)),
                    StoreKind::SecretsManager => secrets.next(),
                    StoreKind::ParameterStore => parameters.next(),
                };
                match next {
                    Some(Ok(fetched)) => RegionAnswer::Fetched(fetched),
                    Some(Err(e)) => RegionAnswer::Failed(e),
                    None => RegionAnswer::Failed(StoreError::new(
                        FailureKind::Internal,
                        None,
                        "the store returned fewer results than items",
                    )),
                }
            })
            .collect()
    }

    /// What to ask this region's store for `spec`: the mounted version is
    /// the driver's when it sent one, else the record's; the record's ARN
    /// goes with it when it names this region and that version.
    fn item(
        &self,
        spec: &ObjectSpec,
        current: Option<&Current<'_>>,
        mounted: Option<&ObjectRecord>,
    ) -> FetchItem {
        let (name, version, label) = match self.side {
            Side::Primary => (spec.name.clone(), spec.version.clone(), spec.label.clone()),
            Side::Failover => spec.failover_target(),
        };
        let current = current
            .and_then(|c| c.get(spec.file.as_str()))
            .map(|v| (*v).to_owned())
            .or_else(|| mounted.map(|m| m.version.clone()));
        let arn = mounted
            .filter(|m| Some(&m.version) == current.as_ref())
            .and_then(|m| m.arn.clone())
            .filter(|arn| Arn::parse(arn).is_some_and(|a| a.region == self.name));
        FetchItem {
            name,
            version,
            label,
            current,
            arn,
        }
    }

    /// How the failover rule sees `answer`.
    fn outcome(&self, answer: &RegionAnswer) -> Outcome {
        let client_error = match answer {
            RegionAnswer::Fetched(_) => return Outcome::Answered,
            RegionAnswer::Failed(e) => e.kind.is_client_error(),
            RegionAnswer::NoCredentials => match &self.stores {
                Err(e) => is_client_error(e),
                Ok(_) => false,
            },
        };
        if client_error {
            Outcome::ClientError
        } else {
            Outcome::ServiceError
        }
    }

    /// The mount's error for `spec` failing here with `answer`. Takes the
    /// region's identity error, as the mount stops at the first.
    fn error(&mut self, spec: &ObjectSpec, answer: RegionAnswer) -> Error {
        match answer {
            RegionAnswer::Failed(source) => Error::Fetch {
                store: spec.kind.as_str(),
                object: match self.side {
                    Side::Primary => spec.name.clone(),
                    Side::Failover => spec.failover_target().0,
                },
                region: self.name.clone(),
                source,
            },
            RegionAnswer::NoCredentials => {
                let taken = std::mem::replace(
                    &mut self.stores,
                    Err(Error::Internal(format!(
                        "the identity error of {} was already reported",
                        self.name
                    ))),
                );
                match taken {
                    Err(e) => e,
                    Ok(stores) => {
                        self.stores = Ok(stores);
                        Error::Internal(format!("no answer for object {}", spec.name))
                    }
                }
            }
            RegionAnswer::Fetched(_) => {
                Error::Internal(format!("object {} answered yet failed", spec.name))
            }
        }
    }

    /// A short description of `answer`'s failure for a log line.
    fn describe(&self, answer: &RegionAnswer) -> String {
        match (answer, &self.stores) {
            (RegionAnswer::Failed(e), _) => e.to_string(),
            (RegionAnswer::NoCredentials, Err(e)) => e.full_message(),
            _ => String::new(),
        }
    }
}

/// Whether an identity failure is the user's to fix (4xx class, a missing
/// token or annotation): then no other region may hide it.
fn is_client_error(e: &Error) -> bool {
    match e {
        Error::Identity {
            kind, precondition, ..
        } => *precondition || kind.is_client_error(),
        Error::Fetch { source, .. } => source.kind.is_client_error(),
        _ => true,
    }
}

/// The regions of a mount, opened with the pod's identity.
pub struct Sources {
    primary: Region,
    failover: Option<Region>,
}

impl Sources {
    /// Asks every region for every object. Per region, in one chain: the
    /// pod's credentials there (from `shared`, the part that does not depend
    /// on a region), its stores, its answers. The regions run concurrently.
    #[allow(clippy::too_many_arguments)]
    pub async fn fetch(
        identity: &dyn Identity,
        open: &dyn OpenStores,
        pod: &PodRef,
        shared: Option<&PodCredentials>,
        regions: &Regions,
        objects: &[&ObjectSpec],
        current: &Current<'_>,
        reuse: Option<&Reuse<'_>>,
    ) -> (Sources, Vec<ObjectAnswer>) {
        let region = |side: Side, name: &str| {
            let name = name.to_owned();
            async move {
                let credentials = identity.region_credentials(pod, &name, shared).await;
                let key = credentials
                    .as_ref()
                    .ok()
                    .map(|c| records::identity_key(pod, &c.principal, &name));
                let stores = credentials.map(|credentials| open.open(&name, &credentials));
                let region = Region {
                    side,
                    name,
                    stores,
                    identity: key,
                };
                let answers = region.fetch(objects, Some(current), reuse).await;
                (region, answers)
            }
        };
        let failover: OptionFuture<_> = regions
            .failover
            .as_deref()
            .map(|name| region(Side::Failover, name))
            .into();
        let ((primary, primary_answers), failover) =
            join(region(Side::Primary, &regions.primary), failover).await;
        let (failover, failover_answers) = failover.unzip();
        let answers = zip_answers(primary_answers, failover_answers);
        (Sources { primary, failover }, answers)
    }

    /// Asks every region whose identity step succeeded again, for `objects`,
    /// without the rotation shortcut.
    async fn refetch(&self, objects: &[&ObjectSpec]) -> Vec<ObjectAnswer> {
        let failover: OptionFuture<_> = self
            .failover
            .as_ref()
            .map(|r| r.fetch(objects, None, None))
            .into();
        let (primary, failover) = join(self.primary.fetch(objects, None, None), failover).await;
        zip_answers(primary, failover)
    }

    /// The identity key of each region that had credentials, for the
    /// mount's record.
    pub fn identities(&self) -> std::collections::BTreeMap<String, String> {
        std::iter::once(&self.primary)
            .chain(self.failover.as_ref())
            .filter_map(|r| Some((r.name.clone(), r.identity.clone()?)))
            .collect()
    }

    /// The failover rule applied to one object: the answer to use, or the
    /// mount's error.
    pub fn settle(&mut self, spec: &ObjectSpec, answer: ObjectAnswer) -> Result<Fetched, Error> {
        let ObjectAnswer { primary, failover } = answer;
        let primary_outcome = self.primary.outcome(&primary);
        let failover_outcome = match (&self.failover, &failover) {
            (Some(region), Some(answer)) => Some(region.outcome(answer)),
            _ => None,
        };
        let missing = || Error::Internal(format!("no failover answer for object {}", spec.name));
        match choose(primary_outcome, failover_outcome) {
            Choice::Use(Side::Primary) => match primary {
                RegionAnswer::Fetched(fetched) => Ok(fetched),
                other => Err(self.primary.error(spec, other)),
            },
            Choice::Use(Side::Failover) => {
                let (Some(region), Some(RegionAnswer::Fetched(fetched))) =
                    (&self.failover, failover)
                else {
                    return Err(missing());
                };
                warn!(
                    object = %spec.name,
                    region = %self.primary.name,
                    error = %self.primary.describe(&primary),
                    failover_region = %region.name,
                    "primary region failed; using the failover region's value"
                );
                Ok(fetched)
            }
            Choice::Fail(Side::Primary) => {
                if primary_outcome == Outcome::ServiceError
                    && let (Some(region), Some(answer)) = (&self.failover, &failover)
                {
                    warn!(
                        object = %spec.name,
                        region = %region.name,
                        error = %region.describe(answer),
                        "failover region failed too"
                    );
                }
                Err(self.primary.error(spec, primary))
            }
            Choice::Fail(Side::Failover) => match (self.failover.as_mut(), failover) {
                (Some(region), Some(answer)) => Err(region.error(spec, answer)),
                _ => Err(missing()),
            },
        }
    }
}

fn zip_answers(
    primary: Vec<RegionAnswer>,
    failover: Option<Vec<RegionAnswer>>,
) -> Vec<ObjectAnswer> {
    let mut failover = failover.map(Vec::into_iter);
    primary
        .into_iter()
        .map(|primary| ObjectAnswer {
            primary,
            failover: failover.as_mut().map(|f| {
                f.next().unwrap_or_else(|| {
                    RegionAnswer::Failed(StoreError::new(
                        FailureKind::Internal,
                        None,
                        "the failover region returned fewer answers than objects",
                    ))
                })
            }),
        })
        .collect()
}

/// An object's contents and version, ready to become files.
pub struct Value {
    /// The contents, fetched or read back; empty for a path.
    pub contents: SecretBytes,
    /// The version they are; empty for a path.
    pub version: String,
    /// The object's full ARN, when the store returned one.
    pub arn: Option<String>,
    /// A path's matches, each with its value and version.
    pub listed: Vec<Listed>,
}

impl Value {
    fn fetched(contents: SecretBytes, version: String, arn: Option<String>) -> Self {
        Value {
            contents,
            version,
            arn,
            listed: Vec::new(),
        }
    }

    fn listed(listed: Vec<Listed>) -> Self {
        Value {
            listed,
            ..Value::fetched(SecretBytes::new(Vec::new()), String::new(), None)
        }
    }
}

/// Settles every object (the failover rule), then serves each "unchanged"
/// answer from the mounted file. This is where a mount decides, per object,
/// to reuse what is mounted instead of fetching it: an object whose file
/// cannot be read back, or whose contents differ from its record entry in
/// `mounted` (by SHA-256), is fetched again, from every region, without the
/// shortcut. Returns one value per object, in `objects`' order.
pub async fn values(
    sources: &mut Sources,
    objects: &[&ObjectSpec],
    answers: Vec<ObjectAnswer>,
    target: &Target,
    mounted: &[Option<&ObjectRecord>],
) -> Result<Vec<Value>, Error> {
    let mut values: Vec<Option<Value>> = Vec::with_capacity(objects.len());
    let mut refetch = Vec::new();
    for (i, (spec, answer)) in objects.iter().zip(answers).enumerate() {
        match sources.settle(spec, answer)? {
            Fetched::Value {
                contents,
                version,
                arn,
            } => values.push(Some(Value::fetched(contents, version, arn))),
            Fetched::Listed(listed) => values.push(Some(Value::listed(listed))),
            Fetched::Unchanged { version } => {
                let record = mounted.get(i).copied().flatten();
                let read = target
                    .read_mounted(&spec.file, MAX_READ_BACK_BYTES)
                    .map_err(|e| e.to_string())
                    .and_then(|contents| match record {
                        Some(r) if r.contents != records::contents_digest(contents.expose()) => {
                            Err("its contents are not the ones recorded".to_owned())
                        }
                        _ => Ok(contents),
                    });
                match read {
                    Ok(contents) => {
                        let arn = record
                            .filter(|r| r.version == version)
                            .and_then(|r| r.arn.clone());
                        values.push(Some(Value::fetched(contents, version, arn)));
                    }
                    Err(e) => {
                        warn!(object = %spec.name, file = %spec.file, error = %e, "mounted file unusable; fetching again");
                        refetch.push(values.len());
                        values.push(None);
                    }
                }
            }
        }
    }
    if !refetch.is_empty() {
        let specs: Vec<&ObjectSpec> = refetch.iter().map(|&i| objects[i]).collect();
        let again = sources.refetch(&specs).await;
        for ((&i, spec), answer) in refetch.iter().zip(&specs).zip(again) {
            values[i] = match sources.settle(spec, answer)? {
                Fetched::Value {
                    contents,
                    version,
                    arn,
                } => Some(Value::fetched(contents, version, arn)),
                Fetched::Listed(listed) => Some(Value::listed(listed)),
                Fetched::Unchanged { .. } => None,
            };
        }
    }
    objects
        .iter()
        .zip(values)
        .map(|(spec, value)| {
            value.ok_or_else(|| {
                Error::Internal(format!(
                    "no mounted contents for unchanged object {}",
                    spec.name
                ))
            })
        })
        .collect()
}
