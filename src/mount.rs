//! One Mount, from the driver's request to the files: attributes → region →
//! identity → fetch → files.
//!
//! The order matters for safety and cost: everything that can be checked
//! offline (attributes, permission, objects) is checked before any network
//! call; every object is fetched before anything is written; a failure at
//! any step leaves the target directory as it was.
//!
//! Fetching hands each store all of its objects at once (per region), so the
//! stores can fetch concurrently and batch. With a failover region both
//! regions are asked in parallel; a client error (4xx) in either fails the
//! mount, service trouble in one is logged and the other's value is used,
//! and the primary's value wins when both answer.
//!
//! Rotation remounts: when the driver tells us the version mounted now, a
//! store may answer "unchanged" and the mounted contents are read back
//! instead of fetched (re-fetched if they cannot be read).
//!
//! This module never logs a value: only names, versions, lengths and counts.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use tracing::{Instrument, info, warn};

use crate::error::Error;
use crate::jmes;
use crate::output::{self, OutputFile};
use crate::proto::{MountRequest, MountResponse, ObjectVersion};
use crate::secret::SecretBytes;
use crate::spc::objects::check_regions;
use crate::spc::{self, Attributes, MountParams, ObjectSpec};
use crate::store::{Backend, FetchItem, Fetched, StoreError, StoreKind, Stores};

/// Largest mounted file read back on a rotation remount. Secrets Manager
/// values are at most 64 KiB and parameters at most 8 KiB.
const MAX_READ_BACK_BYTES: usize = 1024 * 1024;

/// How mounts behave; fixed at start-up.
#[derive(Debug, Clone)]
pub struct MountConfig {
    /// Return files to the driver instead of writing them.
    pub driver_writes_secrets: bool,
    /// `AWS_REGION` of the provider's environment: the region when the
    /// SecretProviderClass names none, before asking the node.
    pub env_region: Option<String>,
    /// Deadline of one mount; kubelet gives up after about two minutes.
    pub timeout: Duration,
}

impl Default for MountConfig {
    fn default() -> Self {
        Self {
            driver_writes_secrets: false,
            env_region: None,
            timeout: Duration::from_secs(100),
        }
    }
}

/// Serves mounts with one backend.
pub struct Mounter {
    backend: Arc<dyn Backend>,
    config: MountConfig,
}

/// Facts about a finished mount, for its log line.
#[derive(Debug, Default)]
struct Summary {
    pod: String,
    namespace: String,
    spc: String,
    objects: usize,
    secrets: usize,
    parameters: usize,
    files: usize,
}

impl Mounter {
    /// A mounter fetching through `backend`.
    pub fn new(backend: Arc<dyn Backend>, config: MountConfig) -> Self {
        Self { backend, config }
    }

    /// The configuration.
    pub fn config(&self) -> &MountConfig {
        &self.config
    }

    /// Serves one request and logs one line about it.
    pub async fn handle(&self, request: MountRequest) -> Result<MountResponse, Error> {
        let started = Instant::now();
        let metrics = crate::metrics::global();
        metrics.mounts_in_flight.inc();
        let mut summary = Summary::default();
        let span = tracing::info_span!("mount", id = %mount_id());
        let result = tokio::time::timeout(self.config.timeout, self.mount(request, &mut summary))
            .instrument(span.clone())
            .await
            .unwrap_or(Err(Error::Timeout {
                after: self.config.timeout,
            }));
        let _enter = span.enter();
        metrics.mounts_in_flight.dec();
        let code = result
            .as_ref()
            .map_or_else(Error::code, |_| tonic::Code::Ok);
        metrics.mount_finished(code, started.elapsed().as_secs_f64());
        for (store, count) in [
            ("secretsmanager", summary.secrets),
            ("ssmparameter", summary.parameters),
        ] {
            if result.is_ok() && count > 0 {
                metrics
                    .objects
                    .get_or_create(&crate::metrics::StoreLabels { store })
                    .inc_by(count as u64);
            }
        }
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(_) => info!(
                pod = %summary.pod,
                namespace = %summary.namespace,
                spc = %summary.spc,
                objects = summary.objects,
                files = summary.files,
                outcome = "success",
                code = "OK",
                duration_ms = elapsed_ms,
                "mount finished"
            ),
            Err(e) => warn!(
                pod = %summary.pod,
                namespace = %summary.namespace,
                spc = %summary.spc,
                objects = summary.objects,
                outcome = "failure",
                code = ?e.code(),
                duration_ms = elapsed_ms,
                error = %e.full_message(),
                "mount failed"
            ),
        }
        result
    }

    async fn mount(
        &self,
        request: MountRequest,
        summary: &mut Summary,
    ) -> Result<MountResponse, Error> {
        let target = PathBuf::from(&request.target_path);
        let attrs = Attributes::parse(&request.attributes)?;
        summary.pod = attrs
            .get(spc::keys::POD_NAME)
            .unwrap_or_default()
            .to_owned();
        summary.namespace = attrs
            .get(spc::keys::POD_NAMESPACE)
            .unwrap_or_default()
            .to_owned();
        summary.spc = attrs.get(spc::keys::SPC).unwrap_or_default().to_owned();
        let target = output::Target::open(&target)?;
        let default_mode = spc::parse_permission(&request.permission)?;
        let params = MountParams::from_attributes(&attrs)?;
        summary.objects = params.objects.len();
        summary.secrets = params
            .objects
            .iter()
            .filter(|o| o.kind == StoreKind::SecretsManager)
            .count();
        summary.parameters = summary.objects - summary.secrets;

        let region = match &params.region {
            Some(r) => r.clone(),
            None => match &self.config.env_region {
                Some(r) => r.clone(),
                None => self.backend.default_region(&params.pod).await?,
            },
        };
        let region = spc::check_region(spc::keys::REGION, &region)?;
        if params.failover_region.as_deref() == Some(region.as_str()) {
            return Err(Error::Parameter {
                key: spc::keys::FAILOVER_REGION,
                reason: format!(
                    "{region} is also the primary region; the failover region must differ"
                ),
            });
        }
        check_regions(&params.objects, &region, params.failover_region.as_deref())
            .map_err(Error::Objects)?;

        let mut regions = vec![region];
        regions.extend(params.failover_region.clone());
        let stores: Vec<Stores> = futures::future::try_join_all(
            regions.iter().map(|r| self.backend.stores(&params.pod, r)),
        )
        .await?;

        let current: HashMap<&str, &str> = request
            .current_object_version
            .iter()
            .map(|v| (v.id.as_str(), v.version.as_str()))
            .collect();
        let values = fetch_all(&params.objects, &regions, &stores, &current, &target).await?;

        let mut files = Vec::new();
        let mut versions: BTreeMap<String, String> = request
            .current_object_version
            .iter()
            .map(|v| (v.id.clone(), v.version.clone()))
            .collect();
        for (spec, (contents, version)) in params.objects.iter().zip(values) {
            let mode = spec.mode_or(default_mode);
            let mut extracted = Vec::with_capacity(spec.jmes.len());
            if let Some(first) = spec.jmes.first() {
                let jmes_error = |path: &str, reason| Error::Jmes {
                    object: spec.name.clone(),
                    path: path.to_owned(),
                    reason,
                };
                // Parsed once for all of the object's entries.
                let document =
                    jmes::Document::parse(&contents).map_err(|r| jmes_error(&first.path, r))?;
                for j in &spec.jmes {
                    let value = document
                        .extract(&j.path)
                        .map_err(|r| jmes_error(&j.path, r))?;
                    extracted.push(OutputFile {
                        path: j.file.clone(),
                        mode: j.mode.unwrap_or(mode),
                        contents: value,
                    });
                    versions.insert(j.file.clone(), version.clone());
                }
            }
            tracing::debug!(object = %spec.name, file = %spec.file, version = %version, bytes = contents.len(), "fetched");
            files.push(OutputFile {
                path: spec.file.clone(),
                mode,
                contents,
            });
            files.extend(extracted);
            versions.insert(spec.file.clone(), version);
        }
        summary.files = files.len();

        let object_version = versions
            .into_iter()
            .map(|(id, version)| ObjectVersion { id, version })
            .collect();
        if self.config.driver_writes_secrets {
            Ok(MountResponse {
                object_version,
                error: None,
                files: output::to_driver_files(&files)?,
            })
        } else {
            let t = target.clone();
            tokio::task::spawn_blocking(move || t.write_set(&files, &|| true))
                .await
                .map_err(|e| Error::Internal(format!("file writer stopped: {e}")))??;
            Ok(MountResponse {
                object_version,
                error: None,
                files: Vec::new(),
            })
        }
    }
}

/// One store call's worth of items: all objects of one kind in one region.
struct Batch {
    kind: StoreKind,
    slot: usize,
    objects: Vec<usize>,
    items: Vec<FetchItem>,
}

/// Fetches every object (from every region when failing over) and returns
/// each object's contents and version, in the objects' order.
async fn fetch_all(
    objects: &[ObjectSpec],
    regions: &[String],
    stores: &[Stores],
    current: &HashMap<&str, &str>,
    target: &output::Target,
) -> Result<Vec<(SecretBytes, String)>, Error> {
    let wanted: Vec<usize> = (0..objects.len()).collect();
    let mut results = run_batches(objects, regions.len(), stores, current, &wanted, true).await;

    // Unchanged versions are served from the mounted files; any that cannot
    // be read back are fetched again, without the version shortcut.
    let mut contents: Vec<Option<SecretBytes>> = vec![None; objects.len()];
    let mut refetch = Vec::new();
    for (i, spec) in objects.iter().enumerate() {
        let unchanged = results[i]
            .iter()
            .any(|r| matches!(r, Some(Ok(Fetched::Unchanged { .. }))));
        if unchanged {
            match target.read_mounted(&spec.file, MAX_READ_BACK_BYTES) {
                Ok(bytes) => contents[i] = Some(bytes),
                Err(e) => {
                    warn!(object = %spec.name, file = %spec.file, error = %e, "mounted file unreadable; fetching again");
                    refetch.push(i);
                }
            }
        }
    }
    if !refetch.is_empty() {
        let again = run_batches(objects, regions.len(), stores, current, &refetch, false).await;
        for i in refetch {
            results[i] = again[i].clone();
        }
    }

    let mut out = Vec::with_capacity(objects.len());
    for (i, spec) in objects.iter().enumerate() {
        let fetched = choose(spec, regions, &results[i])?;
        let value = match fetched {
            Fetched::Value { contents, version } => (contents, version),
            Fetched::Unchanged { version } => {
                let bytes = contents[i].take().ok_or_else(|| {
                    Error::Internal(format!(
                        "no mounted contents for unchanged object {}",
                        spec.name
                    ))
                })?;
                (bytes, version)
            }
        };
        out.push(value);
    }
    Ok(out)
}

type SlotResults = Vec<Option<Result<Fetched, StoreError>>>;

/// Runs one store call per (kind, region) for the objects in `wanted`;
/// returns, per object, one result per region slot.
async fn run_batches(
    objects: &[ObjectSpec],
    slots: usize,
    stores: &[Stores],
    current: &HashMap<&str, &str>,
    wanted: &[usize],
    use_current: bool,
) -> Vec<SlotResults> {
    let mut batches: Vec<Batch> = Vec::new();
    for kind in [StoreKind::SecretsManager, StoreKind::ParameterStore] {
        for slot in 0..slots {
            let mut batch = Batch {
                kind,
                slot,
                objects: Vec::new(),
                items: Vec::new(),
            };
            for &i in wanted {
                let spec = &objects[i];
                if spec.kind != kind {
                    continue;
                }
                let (name, version, label) = if slot == 0 {
                    (spec.name.clone(), spec.version.clone(), spec.label.clone())
                } else {
                    spec.failover_target()
                };
                let current = if use_current {
                    current.get(spec.file.as_str()).map(|v| (*v).to_owned())
                } else {
                    None
                };
                batch.objects.push(i);
                batch.items.push(FetchItem {
                    name,
                    version,
                    label,
                    current,
                });
            }
            if !batch.items.is_empty() {
                batches.push(batch);
            }
        }
    }

    let calls = batches.iter_mut().map(|b| {
        let store = stores[b.slot].get(b.kind).clone();
        let items = std::mem::take(&mut b.items);
        async move { store.fetch(items).await }
    });
    let answers = join_all(calls).await;

    let mut results: Vec<SlotResults> = vec![vec![None; slots]; objects.len()];
    for (batch, answer) in batches.iter().zip(answers) {
        let mut answer = answer.into_iter();
        for &i in &batch.objects {
            results[i][batch.slot] = Some(answer.next().unwrap_or_else(|| {
                Err(StoreError::new(
                    crate::store::FailureKind::Internal,
                    None,
                    "the store returned fewer results than items",
                ))
            }));
        }
    }
    results
}

/// Picks an object's value from its regions' answers (the failover rule).
fn choose(spec: &ObjectSpec, regions: &[String], answers: &SlotResults) -> Result<Fetched, Error> {
    let fail = |slot: usize, e: &StoreError| Error::Fetch {
        store: spec.kind.as_str(),
        object: if slot == 0 {
            spec.name.clone()
        } else {
            spec.failover_target().0
        },
        region: regions[slot].clone(),
        source: e.clone(),
    };
    let missing = || Error::Internal(format!("no answer for object {}", spec.name));
    let primary = answers
        .first()
        .and_then(Option::as_ref)
        .ok_or_else(missing)?;
    if regions.len() == 1 {
        return primary.clone().map_err(|e| fail(0, &e));
    }
    let secondary = answers
        .get(1)
        .and_then(Option::as_ref)
        .ok_or_else(missing)?;
    match (primary, secondary) {
        (Err(e), _) if e.kind.is_client_error() => Err(fail(0, e)),
        (_, Err(e)) if e.kind.is_client_error() => Err(fail(1, e)),
        (Ok(v), _) => Ok(v.clone()),
        (Err(e), Ok(v)) => {
            warn!(object = %spec.name, region = %regions[0], error = %e, failover_region = %regions[1], "primary region failed; using the failover region's value");
            Ok(v.clone())
        }
        (Err(e0), Err(e1)) => {
            warn!(object = %spec.name, region = %regions[1], error = %e1, "failover region failed too");
            Err(fail(0, e0))
        }
    }
}

/// A short random id tying together the log lines of one mount.
fn mount_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{:x}-{n}", std::process::id())
}
