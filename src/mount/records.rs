//! What this provider mounted, per target path: the memory that lets a
//! rotation remount reuse what is mounted when the driver does not say what
//! that is (driver v1.6 never sends `current_object_version`:
//! docs/driver-protocol.md#what-driver-v16-stopped-sending).
//!
//! A [`TargetRecord`] holds, per object file: a digest of the descriptor
//! that produced it, the full ARN the pod's own fetch returned (Secrets
//! Manager), the version, the mode and the SHA-256 of the contents; and for
//! the whole target: the identity each region acted with (method, principal,
//! region; never the token), where `..data` pointed after the write, and
//! the SHA-256 of the whole file set.
//!
//! A mount sees its target's record through one [`Remount`], in two halves:
//! before the fetch ([`Records::remount`]) it says what is mounted, per
//! object (the driver's version, else the record's entry); after the files
//! are built ([`Remount::finish`]) it makes the record to keep and says
//! whether the set is the one recorded, and [`Kept::remember`] stores it
//! once the set is delivered.
//!
//! A record is trusted only as far as it is checked:
//! - an object's entry applies only while its descriptor digest is
//!   unchanged ([`descriptor`]: every field of the object, the request's
//!   permission, the regions), its file holds the value as fetched (no
//!   `objectEncoding` decoding it, not a path), and the region's identity
//!   key equals the one recorded ([`identity_key`]);
//! - the whole record applies only while `..data` still points where it
//!   pointed after our write (provider writes; in driver-writes mode the
//!   driver writes after we answer, so the place is not known);
//! - contents reused from the mounted file are read back and must match the
//!   recorded digest, else the object is fetched again.
//!
//! Records live in memory only, so a restart forgets them and the first
//! remount after it fetches everything. They are a `moka` cache bounded to
//! [`MAX_TARGETS`] targets, least recently used evicted first. Before that,
//! when the cache is full, records whose target directory is gone are
//! dropped: a sweep that stats every recorded directory, run at most once
//! per [`SWEEP_EVERY`] new targets and under no lock, so a burst of new
//! targets on a full node does not wait on it. Records hold names, ARNs,
//! versions and digests, never a value.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use sha2::{Digest, Sha256};

use super::fetch::Value;
use super::regions::Regions;
use crate::output::{OutputFile, Target};
use crate::proto::ObjectVersion;
use crate::spc::{MountParams, ObjectSpec};
use crate::store::PodRef;

/// Most target directories remembered. A node runs at most a few hundred
/// pods; each record holds a few hundred bytes per object.
pub const MAX_TARGETS: usize = 4096;

/// New targets recorded between two sweeps for gone target directories,
/// at most: a sweep stats every recorded directory.
pub const SWEEP_EVERY: usize = MAX_TARGETS / 16;

/// A SHA-256 digest.
pub type Sha = [u8; 32];

/// What was mounted for one object file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    /// [`descriptor`] of the object that produced it.
    pub descriptor: Sha,
    /// The full ARN the pod's own fetch returned, when the store gives one.
    pub arn: Option<String>,
    /// The version mounted.
    pub version: String,
    /// The file's mode.
    pub mode: u32,
    /// SHA-256 of the file's contents.
    pub contents: Sha,
}

/// What was mounted in one target directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRecord {
    /// [`identity_key`] per region that answered with credentials.
    pub identities: BTreeMap<String, String>,
    /// Where `..data` pointed after the write; `None` in driver-writes mode.
    pub data_dir: Option<String>,
    /// [`set_digest`] of every file of the mount.
    pub set: Sha,
    /// Per object file (`ObjectSpec::file`).
    pub objects: HashMap<String, ObjectRecord>,
}

/// The records of every target, bounded.
pub struct Records {
    cache: Cache<PathBuf, TargetRecord>,
    /// Whether the driver writes the files (its `..data` is not ours).
    driver_writes: bool,
    /// New targets recorded since the last sweep.
    since_sweep: AtomicUsize,
}

impl Records {
    /// No records yet, for a provider that writes the files itself
    /// (`driver_writes` false) or returns them to the driver.
    pub fn new(driver_writes: bool) -> Self {
        Records {
            cache: Cache::builder()
                .max_capacity(MAX_TARGETS as u64)
                .eviction_policy(EvictionPolicy::lru())
                .build(),
            driver_writes,
            since_sweep: AtomicUsize::new(SWEEP_EVERY),
        }
    }

    /// The first half of a mount's view of its target: what is mounted
    /// there, per object of `params`, as the driver's `driver_versions`
    /// and this target's record say, while `..data` still points where it
    /// did after our write.
    pub fn remount(
        &self,
        target: &Target,
        driver_versions: &[ObjectVersion],
        params: &MountParams,
        default_mode: u32,
        regions: &Regions,
    ) -> Remount {
        let descriptors: Vec<Sha> = params
            .objects
            .iter()
            .map(|spec| descriptor(spec, params, default_mode, &regions.primary))
            .collect();
        let record = self.cache.get(target.path()).filter(|r| {
            self.driver_writes
                || r.data_dir.is_some() && target.data_dir().ok().flatten() == r.data_dir
        });
        // Only a file holding the value as fetched can stand for it.
        let entries = match &record {
            Some(record) => params
                .objects
                .iter()
                .zip(&descriptors)
                .map(|(spec, descriptor)| {
                    record
                        .objects
                        .get(&spec.file)
                        .filter(|r| r.descriptor == *descriptor && spec.file_holds_value())
                        .cloned()
                })
                .collect(),
            None => Vec::new(),
        };
        let driver_versions = driver_versions
            .iter()
            .filter(|v| {
                params
                    .objects
                    .iter()
                    .any(|spec| spec.file_holds_value() && spec.file == v.id)
            })
            .map(|v| (v.id.clone(), v.version.clone()))
            .collect();
        Remount {
            driver_writes: self.driver_writes,
            default_mode,
            descriptors,
            record,
            entries,
            driver_versions,
            kept: Vec::new(),
        }
    }

    /// Replaces the record of `target`. When the records are full, and no
    /// sweep ran for [`SWEEP_EVERY`] new targets, those of gone target
    /// directories are dropped first.
    fn put(&self, target: &Path, record: TargetRecord) {
        if !self.cache.contains_key(target) {
            self.cache.run_pending_tasks();
            let new = self.since_sweep.fetch_add(1, Ordering::Relaxed) + 1;
            if self.cache.entry_count() >= MAX_TARGETS as u64
                && new >= SWEEP_EVERY
                && self.since_sweep.swap(0, Ordering::Relaxed) >= SWEEP_EVERY
            {
                self.sweep();
            }
        }
        self.cache.insert(target.to_owned(), record);
    }

    /// Drops the records of target directories that are gone.
    fn sweep(&self) {
        for (path, _) in self.cache.iter() {
            if path.symlink_metadata().is_err() {
                self.cache.invalidate(path.as_path());
            }
        }
        self.cache.run_pending_tasks();
    }

    /// How many targets are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.cache.run_pending_tasks();
        self.cache.entry_count() as usize
    }
}

/// One mount's view of its target's record ([`Records::remount`]).
pub struct Remount {
    driver_writes: bool,
    default_mode: u32,
    /// Per object of the mount, in order: its [`descriptor`].
    descriptors: Vec<Sha>,
    /// The target's record, when it may be trusted.
    record: Option<TargetRecord>,
    /// Per object, in order (empty without a record): its entry in
    /// `record`, when the object's file may stand for its value.
    entries: Vec<Option<ObjectRecord>>,
    /// The versions the driver said are mounted (`current_object_version`),
    /// by file name, of objects whose file holds the value.
    driver_versions: HashMap<String, String>,
    /// Per object file, once its value is known: what to record.
    kept: Vec<(String, ObjectRecord)>,
}

impl Remount {
    /// Whether something is known to be mounted: a rotation remount over
    /// files of its own.
    pub fn is_remount(&self) -> bool {
        self.record.is_some() || !self.driver_versions.is_empty()
    }

    /// The version of `spec`'s file the driver said is mounted.
    pub fn driver_version(&self, spec: &ObjectSpec) -> Option<&str> {
        self.driver_versions.get(&spec.file).map(String::as_str)
    }

    /// The record's entry for the `i`th object, whatever identity it was
    /// recorded with.
    pub fn entry(&self, i: usize) -> Option<&ObjectRecord> {
        self.entries.get(i)?.as_ref()
    }

    /// The record's entry for the `i`th object, as a region acting with
    /// the identity `key` may use it: only when that region acted with the
    /// same identity when it was recorded.
    pub fn entry_in(&self, i: usize, region: &str, key: Option<&str>) -> Option<&ObjectRecord> {
        let record = self.record.as_ref()?;
        let recorded = record.identities.get(region)?;
        (Some(recorded.as_str()) == key)
            .then(|| self.entry(i))
            .flatten()
    }

    /// Notes the value of every object (in the mount's order) for the
    /// record to keep. Paths stay out of it: they are listed every mount.
    pub fn note_values(&mut self, objects: &[&ObjectSpec], values: &[Value]) {
        self.kept = objects
            .iter()
            .zip(values)
            .zip(&self.descriptors)
            .filter(|((spec, _), _)| spec.path.is_none())
            .map(|((spec, value), descriptor)| {
                let entry = ObjectRecord {
                    descriptor: *descriptor,
                    arn: value.arn.clone(),
                    version: value.version.clone(),
                    mode: spec.mode_or(self.default_mode),
                    contents: contents_digest(value.contents.expose()),
                };
                (spec.file.clone(), entry)
            })
            .collect();
    }

    /// The second half, once the files are built: the record to keep, and
    /// whether the set is the one recorded as mounted (same files, modes
    /// and contents; with provider writes, also as read back from the
    /// target, so that nothing removed or altered a name since).
    pub fn finish(
        self,
        files: &[OutputFile],
        identities: BTreeMap<String, String>,
        target: &Target,
    ) -> Kept {
        let record = TargetRecord {
            identities,
            data_dir: None,
            set: set_digest(files),
            objects: self.kept.into_iter().collect(),
        };
        let unchanged = self.record.is_some_and(|r| r.set == record.set)
            && (self.driver_writes || mounted_as(target, files));
        Kept {
            record,
            unchanged,
            driver_writes: self.driver_writes,
        }
    }
}

/// The record a mount leaves, once its set is delivered.
pub struct Kept {
    record: TargetRecord,
    /// The set is the one recorded as mounted: not written again.
    pub unchanged: bool,
    driver_writes: bool,
}

impl Kept {
    /// Remembers the record for `target`, its set delivered. With provider
    /// writes, only when `..data` can be read back: where it points now.
    pub fn remember(mut self, records: &Records, target: &Target) {
        if !self.driver_writes {
            self.record.data_dir = target.data_dir().ok().flatten();
            if self.record.data_dir.is_none() {
                return;
            }
        }
        records.put(target.path(), self.record);
    }
}

/// Whether every file of `files` reads back from the target with the same
/// contents.
fn mounted_as(target: &Target, files: &[OutputFile]) -> bool {
    files.iter().all(|file| {
        target
            .read_mounted(&file.path, file.contents.len())
            .is_ok_and(|read| read.expose() == file.contents.expose())
    })
}

/// The digest of everything that decides what `spec` mounts, besides the
/// store's answer: the object's every field (name, type, version, label,
/// alias, mode, jmesPath entries, failover object, the file name that
/// pathTranslation produced), the request's permission and the regions.
pub fn descriptor(
    spec: &ObjectSpec,
    params: &MountParams,
    default_mode: u32,
    primary: &str,
) -> Sha {
    let text = format!(
        "{spec:?}\0{:?}\0{default_mode}\0{primary}\0{:?}",
        params.translation, params.failover_region
    );
    Sha256::digest(text.as_bytes()).into()
}

/// Who a region's calls act as: the method, the principal the identity
/// step returned (role ARN), the chained role and the region. Never the
/// token, which rotates while the identity stays.
pub fn identity_key(pod: &PodRef, principal: &str, region: &str) -> String {
    format!(
        "{}|{principal}|{}|{}|{region}",
        if pod.use_pod_identity {
            "pod-identity"
        } else {
            "irsa"
        },
        pod.assume_role_arn.as_deref().unwrap_or(""),
        pod.assume_role_external_id.as_deref().map_or(0, str::len),
    )
}

/// SHA-256 of a file's contents.
pub fn contents_digest(contents: &[u8]) -> Sha {
    Sha256::digest(contents).into()
}

/// SHA-256 over a whole file set: each path, mode and contents digest, in
/// order. Equal digests mean the same files with the same modes.
pub fn set_digest(files: &[OutputFile]) -> Sha {
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update((file.path.len() as u64).to_le_bytes());
        hasher.update(file.path.as_bytes());
        hasher.update(file.mode.to_le_bytes());
        hasher.update(contents_digest(file.contents.expose()));
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u8) -> TargetRecord {
        TargetRecord {
            identities: BTreeMap::new(),
            data_dir: None,
            set: [n; 32],
            objects: HashMap::new(),
        }
    }

    #[test]
    fn records_are_bounded_and_gone_targets_go_first() {
        let records = Records::new(false);
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live");
        std::fs::create_dir(&live).unwrap();
        records.put(&live, record(0));
        for i in 0..MAX_TARGETS + 10 {
            records.put(Path::new(&format!("/nonexistent/ascp/{i}")), record(1));
        }
        assert!(records.len() <= MAX_TARGETS);
        assert_eq!(records.cache.get(&live).map(|r| r.set), Some([0; 32]));
    }

    #[test]
    fn the_set_digest_sees_paths_modes_and_contents() {
        let file = |path: &str, mode, contents: &str| OutputFile {
            path: path.into(),
            mode,
            contents: contents.to_owned().into(),
        };
        let base = set_digest(&[file("a", 0o644, "x")]);
        assert_eq!(base, set_digest(&[file("a", 0o644, "x")]));
        assert_ne!(base, set_digest(&[file("b", 0o644, "x")]));
        assert_ne!(base, set_digest(&[file("a", 0o600, "x")]));
        assert_ne!(base, set_digest(&[file("a", 0o644, "y")]));
    }
}
