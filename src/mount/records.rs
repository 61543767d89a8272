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
//! A record is trusted only as far as it is checked:
//! - an object's entry applies only while its descriptor digest is
//!   unchanged ([`descriptor`]: every field of the object, the request's
//!   permission, the regions) and the region's identity key equals the one
//!   recorded ([`identity_key`]);
//! - the whole record applies only while `..data` still points where it
//!   pointed after our write (provider writes; in driver-writes mode the
//!   driver writes after we answer, so the place is not known);
//! - contents reused from the mounted file are read back and must match the
//!   recorded digest, else the object is fetched again.
//!
//! Records live in memory only, so a restart forgets them and the first
//! remount after it fetches everything. The map is bounded: at
//! [`MAX_TARGETS`] records, those whose target directory is gone are
//! dropped, then the least recently used. Records hold names, ARNs,
//! versions and digests, never a value.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::output::OutputFile;
use crate::spc::{MountParams, ObjectSpec};
use crate::store::PodRef;

/// Most target directories remembered. A node runs at most a few hundred
/// pods; each record holds a few hundred bytes per object.
pub const MAX_TARGETS: usize = 4096;

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

impl TargetRecord {
    /// The entry for `spec`, if it was produced by the same descriptor.
    pub fn object(&self, spec: &ObjectSpec, descriptor: &Sha) -> Option<&ObjectRecord> {
        self.objects
            .get(&spec.file)
            .filter(|r| r.descriptor == *descriptor)
    }

    /// Whether `region` acted with the identity `key` when this was recorded.
    pub fn same_identity(&self, region: &str, key: &str) -> bool {
        self.identities.get(region).is_some_and(|k| k == key)
    }
}

/// The records of every target, bounded.
#[derive(Default)]
pub struct Records {
    map: Mutex<HashMap<PathBuf, (u64, TargetRecord)>>,
    /// Use counter, for least-recently-used eviction.
    clock: std::sync::atomic::AtomicU64,
}

impl Records {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, (u64, TargetRecord)>> {
        // Plain data: a panic elsewhere cannot leave it torn.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tick(&self) -> u64 {
        self.clock
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// The record of `target`, if any.
    pub fn get(&self, target: &Path) -> Option<TargetRecord> {
        let now = self.tick();
        let mut map = self.lock();
        let entry = map.get_mut(target)?;
        entry.0 = now;
        Some(entry.1.clone())
    }

    /// Replaces the record of `target`.
    pub fn put(&self, target: &Path, record: TargetRecord) {
        let now = self.tick();
        let mut map = self.lock();
        if map.len() >= MAX_TARGETS && !map.contains_key(target) {
            map.retain(|path, _| path.symlink_metadata().is_ok());
            while map.len() >= MAX_TARGETS {
                let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (t, _))| *t)
                    .map(|(p, _)| p.clone())
                else {
                    break;
                };
                map.remove(&oldest);
            }
        }
        map.insert(target.to_owned(), (now, record));
    }

    /// Forgets `target` (its mount failed in a way that may have changed it).
    pub fn forget(&self, target: &Path) {
        self.lock().remove(target);
    }

    /// How many targets are remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no target is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
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
        let records = Records::default();
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live");
        std::fs::create_dir(&live).unwrap();
        records.put(&live, record(0));
        for i in 0..MAX_TARGETS + 10 {
            records.put(Path::new(&format!("/nonexistent/ascp/{i}")), record(1));
        }
        assert!(records.len() <= MAX_TARGETS);
        assert_eq!(records.get(&live).map(|r| r.set), Some([0; 32]));
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
