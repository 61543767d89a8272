//! Asking the regions for the objects (step 5 of a mount), and settling
//! each object's value (step 6).
//!
//! A [`FetchPlan`] holds what the fetch needs. Per region, concurrently, as
//! one chain: the pod's credentials in that region
//! ([`crate::store::Identity::region_credentials`]), the region's stores
//! ([`crate::store::OpenStores`]), then one call per store with every
//! object of that store. A region whose identity step failed answers every
//! object [`RegionAnswer::NoCredentials`]; the failover rule treats it like
//! a failed fetch, and the region's [`RegionSource`] keeps the error until
//! the mount fails with it.
//!
//! Each object then gets an [`ObjectAnswer`] (what each region said about
//! it), and [`values`] turns the answers into contents, in three named
//! steps: the failover rule picks one answer per object
//! ([`Sources::pick`]); on a rotation remount, an "unchanged" answer is
//! served by reading the mounted file back ([`read_back`]); a mounted file
//! that cannot be read back, or whose contents are not the recorded ones,
//! is stale, and its object is fetched again from every region without the
//! rotation shortcut ([`Sources::refetch_stale`]).
//!
//! A path object (`prod/web/*`) is listed in each region alongside the
//! other calls ([`crate::store::Store::list`]), every time: neither the
//! driver's versions nor the records apply to it, so matches added or
//! removed since the last mount show at once. Its answer is the whole
//! listing, and the failover rule treats it as one object's.
//!
//! What is mounted comes from the driver (`current_object_version`, up to
//! driver v1.5) or from the mount's records (driver v1.6), both through
//! the mount's [`Remount`]. A record entry is used in a region only while
//! that region acts with the identity recorded. Then a pinned object (a
//! Secrets Manager VersionId, an SSM version number) whose recorded version
//! is the pinned one is answered unchanged without asking the store; an
//! unpinned object (secret or parameter) is asked with its mounted version
//! and the ARN its own fetch returned, for the node's shared version check.
//! Contents read back for a recorded object must match the recorded
//! digest, else they are fetched.

use std::collections::BTreeMap;

use futures::future::{OptionFuture, join, join_all};
use tracing::warn;

use super::records::{self, ObjectRecord, Remount};
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

/// What one region said about one object.
pub enum RegionAnswer {
    /// The store's answer.
    Fetched(Fetched),
    /// The store's failure.
    Failed(StoreError),
    /// The region's identity step failed; its [`RegionSource`] holds the
    /// error.
    NoCredentials,
}

/// What the regions said about one object.
pub struct ObjectAnswer {
    /// The primary region's answer.
    pub primary: RegionAnswer,
    /// The failover region's, when the mount has one.
    pub failover: Option<RegionAnswer>,
}

/// Everything a mount's fetch needs (step 5).
pub struct FetchPlan<'a> {
    /// Turns the pod's identity into credentials per region.
    pub identity: &'a dyn Identity,
    /// Opens a region's stores with those credentials.
    pub stores: &'a dyn OpenStores,
    /// The pod.
    pub pod: &'a PodRef,
    /// The pod's credentials that do not depend on a region, if any.
    pub shared: Option<&'a PodCredentials>,
    /// The regions to ask.
    pub regions: &'a Regions,
    /// Every object of the mount, in order.
    pub objects: &'a [&'a ObjectSpec],
    /// What is mounted, for the rotation shortcuts.
    pub mounted: &'a Remount,
}

impl FetchPlan<'_> {
    /// Asks every region for every object. Per region, in one chain: the
    /// pod's credentials there, its stores, its answers. The regions run
    /// concurrently.
    pub async fn fetch(&self) -> (Sources, Vec<ObjectAnswer>) {
        let region = |side: Side, name: &str| {
            let name = name.to_owned();
            async move {
                let credentials = self
                    .identity
                    .region_credentials(self.pod, &name, self.shared)
                    .await;
                let key = credentials
                    .as_ref()
                    .ok()
                    .map(|c| records::identity_key(self.pod, &c.principal, &name));
                let stores = credentials.map(|credentials| self.stores.open(&name, &credentials));
                let region = RegionSource {
                    side,
                    name,
                    stores,
                    identity: key,
                };
                let answers = region.fetch(self.objects, Some(self.mounted)).await;
                (region, answers)
            }
        };
        let failover: OptionFuture<_> = self
            .regions
            .failover
            .as_deref()
            .map(|name| region(Side::Failover, name))
            .into();
        let ((primary, primary_answers), failover) =
            join(region(Side::Primary, &self.regions.primary), failover).await;
        let (failover, failover_answers) = failover.unzip();
        let answers = zip_answers(primary_answers, failover_answers);
        (Sources { primary, failover }, answers)
    }
}

/// One region of a mount, with the stores acting as the pod there.
struct RegionSource {
    side: Side,
    name: String,
    /// The stores, or why the pod has no credentials here.
    stores: Result<Stores, Error>,
    /// [`records::identity_key`] of the credentials, when there are some.
    identity: Option<String>,
}

impl RegionSource {
    /// Every object in this region: one call per store, one answer per
    /// object in `objects`' order. `mounted` (all of the mount's objects,
    /// in order) enables the rotation shortcuts.
    async fn fetch(&self, objects: &[&ObjectSpec], mounted: Option<&Remount>) -> Vec<RegionAnswer> {
        let Ok(stores) = &self.stores else {
            return objects
                .iter()
                .map(|_| RegionAnswer::NoCredentials)
                .collect();
        };
        // Pinned and recorded: the mounted file is that version, for good,
        // so the store is not asked.
        let mut early: Vec<Option<RegionAnswer>> = Vec::with_capacity(objects.len());
        let mut asked: [Vec<FetchItem>; 2] = [Vec::new(), Vec::new()];
        for (i, spec) in objects.iter().enumerate() {
            // Paths are listed below, every time.
            if spec.path.is_some() {
                early.push(None);
                continue;
            }
            // The record entry valid here: recorded with this region's identity.
            let recorded =
                mounted.and_then(|m| m.entry_in(i, &self.name, self.identity.as_deref()));
            let driver_version = mounted.and_then(|m| m.driver_version(spec));
            let item = self.item(spec, driver_version, recorded);
            match recorded.filter(|r| item.version.as_deref() == Some(r.version.as_str())) {
                Some(r) => early.push(Some(RegionAnswer::Fetched(Fetched::Unchanged {
                    version: r.version.clone(),
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
        driver_version: Option<&str>,
        recorded: Option<&ObjectRecord>,
    ) -> FetchItem {
        let (name, version, label) = match self.side {
            Side::Primary => (spec.name.clone(), spec.version.clone(), spec.label.clone()),
            Side::Failover => spec.failover_target(),
        };
        let mounted_version = driver_version
            .map(str::to_owned)
            .or_else(|| recorded.map(|r| r.version.clone()));
        let arn = recorded
            .filter(|r| Some(&r.version) == mounted_version.as_ref())
            .and_then(|r| r.arn.clone())
            .filter(|arn| Arn::parse(arn).is_some_and(|a| a.region == self.name));
        FetchItem {
            name,
            version,
            label,
            mounted_version,
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

    /// Why `spec` fails here with `answer`.
    fn refusal(&self, spec: &ObjectSpec, answer: RegionAnswer) -> Refusal {
        match answer {
            RegionAnswer::Failed(source) => Refusal::Error(Error::Fetch {
                store: spec.kind.as_str(),
                object: match self.side {
                    Side::Primary => spec.name.clone(),
                    Side::Failover => spec.failover_target().0,
                },
                region: self.name.clone(),
                source,
            }),
            RegionAnswer::NoCredentials => Refusal::NoCredentials(self.side),
            RegionAnswer::Fetched(_) => Refusal::Error(Error::Internal(format!(
                "object {} answered yet failed",
                spec.name
            ))),
        }
    }

    /// The mount's error when it fails for this region's identity: the
    /// error the identity step returned, by value.
    fn into_identity_error(self) -> Error {
        match self.stores {
            Err(e) => e,
            Ok(_) => Error::Internal(format!("no answer from region {}", self.name)),
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

/// Why the failover rule failed an object.
enum Refusal {
    /// The mount's error.
    Error(Error),
    /// That side's identity step failed; its [`RegionSource`] holds the
    /// error, which [`Sources::into_error`] gives out.
    NoCredentials(Side),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Error(e)
    }
}

/// The regions of a mount, opened with the pod's identity.
pub struct Sources {
    primary: RegionSource,
    failover: Option<RegionSource>,
}

impl Sources {
    /// The identity key of each region that had credentials, for the
    /// mount's record.
    pub fn identities(&self) -> BTreeMap<String, String> {
        std::iter::once(&self.primary)
            .chain(self.failover.as_ref())
            .filter_map(|r| Some((r.name.clone(), r.identity.clone()?)))
            .collect()
    }

    /// The failover rule applied to one object: the answer to use, or why
    /// the mount fails.
    fn pick(&self, spec: &ObjectSpec, answer: ObjectAnswer) -> Result<Fetched, Refusal> {
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
                other => Err(self.primary.refusal(spec, other)),
            },
            Choice::Use(Side::Failover) => {
                let (Some(region), Some(RegionAnswer::Fetched(fetched))) =
                    (&self.failover, failover)
                else {
                    return Err(missing().into());
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
                Err(self.primary.refusal(spec, primary))
            }
            Choice::Fail(Side::Failover) => match (&self.failover, failover) {
                (Some(region), Some(answer)) => Err(region.refusal(spec, answer)),
                _ => Err(missing().into()),
            },
        }
    }

    /// The failover rule applied to every object, in order; stops at the
    /// first object that fails the mount.
    fn pick_all(
        &self,
        objects: &[&ObjectSpec],
        answers: Vec<ObjectAnswer>,
    ) -> Result<Vec<Fetched>, Refusal> {
        objects
            .iter()
            .zip(answers)
            .map(|(spec, answer)| self.pick(spec, answer))
            .collect()
    }

    /// Fetches the stale objects (indices into `objects`) again, from every
    /// region whose identity step succeeded, without the rotation
    /// shortcut, and fills their values in.
    async fn refetch_stale(
        &self,
        objects: &[&ObjectSpec],
        mut values: Vec<Option<Value>>,
        stale: Vec<usize>,
    ) -> Result<Vec<Value>, Refusal> {
        if !stale.is_empty() {
            let specs: Vec<&ObjectSpec> = stale.iter().map(|&i| objects[i]).collect();
            let failover: OptionFuture<_> =
                self.failover.as_ref().map(|r| r.fetch(&specs, None)).into();
            let (primary, failover) = join(self.primary.fetch(&specs, None), failover).await;
            let again = zip_answers(primary, failover);
            for ((&i, spec), answer) in stale.iter().zip(&specs).zip(again) {
                values[i] = Value::from_fetched(self.pick(spec, answer)?);
            }
        }
        objects
            .iter()
            .zip(values)
            .map(|(spec, value)| {
                value.ok_or_else(|| {
                    Refusal::Error(Error::Internal(format!(
                        "no mounted contents for unchanged object {}",
                        spec.name
                    )))
                })
            })
            .collect()
    }

    /// The mount's error for `refusal`, an identity failure's taken from
    /// its region.
    fn into_error(self, refusal: Refusal) -> Error {
        match refusal {
            Refusal::Error(e) => e,
            Refusal::NoCredentials(Side::Primary) => self.primary.into_identity_error(),
            Refusal::NoCredentials(Side::Failover) => match self.failover {
                Some(region) => region.into_identity_error(),
                None => Error::Internal("no failover region".to_owned()),
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

    /// The value a store's answer holds; `None` for "unchanged", whose
    /// contents are the mounted file's.
    fn from_fetched(fetched: Fetched) -> Option<Self> {
        match fetched {
            Fetched::Value {
                contents,
                version,
                arn,
            } => Some(Value::fetched(contents, version, arn)),
            Fetched::Listed(listed) => Some(Value {
                listed,
                ..Value::fetched(SecretBytes::new(Vec::new()), String::new(), None)
            }),
            Fetched::Unchanged { .. } => None,
        }
    }
}

/// Step 6: every object's value, in `objects`' order, from the regions'
/// `answers`: the failover rule ([`Sources::pick`]), then each "unchanged"
/// answer served from the mounted file ([`read_back`]), then the stale ones
/// fetched again ([`Sources::refetch_stale`]). Ends the fetch: `sources`
/// is consumed, and a failure for a region's identity returns the error
/// that identity step made.
pub async fn values(
    sources: Sources,
    objects: &[&ObjectSpec],
    answers: Vec<ObjectAnswer>,
    target: &Target,
    mounted: &Remount,
) -> Result<Vec<Value>, Error> {
    let settled = async {
        let picked = sources.pick_all(objects, answers)?;
        let (values, stale) = read_back(objects, picked, target, mounted);
        sources.refetch_stale(objects, values, stale).await
    }
    .await;
    settled.map_err(|refusal| sources.into_error(refusal))
}

/// Serves each "unchanged" answer from the mounted file: the values, with
/// `None` where the file cannot be read back or its contents differ from
/// its record entry (by SHA-256), and the indices of those stale objects.
fn read_back(
    objects: &[&ObjectSpec],
    picked: Vec<Fetched>,
    target: &Target,
    mounted: &Remount,
) -> (Vec<Option<Value>>, Vec<usize>) {
    let mut stale = Vec::new();
    let values = objects
        .iter()
        .zip(picked)
        .enumerate()
        .map(|(i, (spec, fetched))| {
            let Fetched::Unchanged { version } = fetched else {
                return Value::from_fetched(fetched);
            };
            let recorded = mounted.entry(i);
            let read = target
                .read_mounted(&spec.file, MAX_READ_BACK_BYTES)
                .map_err(|e| e.to_string())
                .and_then(|contents| match recorded {
                    Some(r) if r.contents != records::contents_digest(contents.expose()) => {
                        Err("its contents are not the ones recorded".to_owned())
                    }
                    _ => Ok(contents),
                });
            match read {
                Ok(contents) => {
                    let arn = recorded
                        .filter(|r| r.version == version)
                        .and_then(|r| r.arn.clone());
                    Some(Value::fetched(contents, version, arn))
                }
                Err(e) => {
                    warn!(object = %spec.name, file = %spec.file, error = %e, "mounted file unusable; fetching again");
                    stale.push(i);
                    None
                }
            }
        })
        .collect();
    (values, stale)
}
