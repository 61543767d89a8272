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

use std::collections::HashMap;

use futures::future::{OptionFuture, join};
use tracing::warn;

use super::regions::{Choice, Outcome, Regions, Side, choose};
use crate::error::Error;
use crate::output::Target;
use crate::secret::SecretBytes;
use crate::spc::ObjectSpec;
use crate::store::{
    FailureKind, FetchItem, Fetched, Identity, OpenStores, PodCredentials, PodIdentity, StoreError,
    StoreKind, Stores,
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

/// One region of a mount, with the stores acting as the pod there.
struct Region {
    side: Side,
    name: String,
    /// The stores, or why the pod has no credentials here.
    stores: Result<Stores, Error>,
}

impl Region {
    /// Every object in this region: one call per store, one answer per
    /// object in `objects`' order. `current` enables the rotation shortcut.
    async fn fetch(
        &self,
        objects: &[&ObjectSpec],
        current: Option<&Current<'_>>,
    ) -> Vec<RegionAnswer> {
        let Ok(stores) = &self.stores else {
            return objects
                .iter()
                .map(|_| RegionAnswer::NoCredentials)
                .collect();
        };
        let call = |kind: StoreKind| {
            let items: Vec<FetchItem> = objects
                .iter()
                .filter(|spec| spec.kind == kind)
                .map(|spec| self.item(spec, current))
                .collect();
            let store = stores.get(kind).clone();
            async move {
                if items.is_empty() {
                    Vec::new()
                } else {
                    store.fetch(items).await
                }
            }
        };
        let (secrets, parameters) = join(
            call(StoreKind::SecretsManager),
            call(StoreKind::ParameterStore),
        )
        .await;
        let mut secrets = secrets.into_iter();
        let mut parameters = parameters.into_iter();
        objects
            .iter()
            .map(|spec| {
                let next = match spec.kind {
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

    /// What to ask this region's store for `spec`.
    fn item(&self, spec: &ObjectSpec, current: Option<&Current<'_>>) -> FetchItem {
        let (name, version, label) = match self.side {
            Side::Primary => (spec.name.clone(), spec.version.clone(), spec.label.clone()),
            Side::Failover => spec.failover_target(),
        };
        FetchItem {
            name,
            version,
            label,
            current: current
                .and_then(|c| c.get(spec.file.as_str()))
                .map(|v| (*v).to_owned()),
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
    pub async fn fetch(
        identity: &dyn Identity,
        open: &dyn OpenStores,
        pod: &PodIdentity,
        shared: Option<&PodCredentials>,
        regions: &Regions,
        objects: &[&ObjectSpec],
        current: &Current<'_>,
    ) -> (Sources, Vec<ObjectAnswer>) {
        let region = |side: Side, name: &str| {
            let name = name.to_owned();
            async move {
                let stores = identity
                    .region_credentials(pod, &name, shared)
                    .await
                    .map(|credentials| open.open(&name, &credentials));
                let region = Region { side, name, stores };
                let answers = region.fetch(objects, Some(current)).await;
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
            .map(|r| r.fetch(objects, None))
            .into();
        let (primary, failover) = join(self.primary.fetch(objects, None), failover).await;
        zip_answers(primary, failover)
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
    /// The contents, fetched or read back.
    pub contents: SecretBytes,
    /// The version they are.
    pub version: String,
}

/// Settles every object (the failover rule), then serves each "unchanged"
/// answer from the mounted file. This is where a mount decides, per object,
/// to reuse what is mounted instead of fetching it: an object whose file
/// cannot be read back is fetched again, from every region, without the
/// shortcut. Returns one value per object, in `objects`' order.
pub async fn values(
    sources: &mut Sources,
    objects: &[&ObjectSpec],
    answers: Vec<ObjectAnswer>,
    target: &Target,
) -> Result<Vec<Value>, Error> {
    let mut values: Vec<Option<Value>> = Vec::with_capacity(objects.len());
    let mut refetch = Vec::new();
    for (spec, answer) in objects.iter().zip(answers) {
        match sources.settle(spec, answer)? {
            Fetched::Value { contents, version } => values.push(Some(Value { contents, version })),
            Fetched::Unchanged { version } => {
                match target.read_mounted(&spec.file, MAX_READ_BACK_BYTES) {
                    Ok(contents) => values.push(Some(Value { contents, version })),
                    Err(e) => {
                        warn!(object = %spec.name, file = %spec.file, error = %e, "mounted file unreadable; fetching again");
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
                Fetched::Value { contents, version } => Some(Value { contents, version }),
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
