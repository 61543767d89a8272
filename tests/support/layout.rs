//! Target directories of the atomic writer and what a pod sees in them:
//! for the tests of the output layout (`it`'s `output_layout` and the
//! `output_crash` binary, which includes this file on its own).

use std::collections::BTreeMap;
use std::path::Path;

use ascp::output::OutputFile;
use ascp::secret::SecretBytes;

/// A fresh target directory, on tmpfs when the machine has one (the
/// driver's targets are tmpfs mounts).
pub fn target_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("a directory in /dev/shm")
    } else {
        tempfile::tempdir().expect("a temporary directory")
    }
}

pub fn files(set: &[(&str, &str)]) -> Vec<OutputFile> {
    set.iter()
        .map(|(path, contents)| OutputFile {
            path: (*path).to_owned(),
            mode: 0o644,
            contents: SecretBytes::from((*contents).to_owned()),
        })
        .collect()
}

pub fn commit() -> bool {
    true
}

/// What a pod sees: every visible file (names not starting with `..`),
/// links followed; a dangling link reads as absent.
pub fn visible(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if dir == root && name.starts_with("..") {
                continue;
            }
            let path = entry.path();
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

pub fn as_map(set: &[(&str, &str)]) -> BTreeMap<String, String> {
    set.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The target's top-level entries, `..data`'s directory shown as `<data>`.
pub fn listing(dir: &Path) -> Vec<String> {
    let data = std::fs::read_link(dir.join("..data")).ok();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .map(|n| {
            if data.as_deref() == Some(Path::new(&n)) {
                "<data>".to_owned()
            } else {
                n
            }
        })
        .collect();
    names.sort();
    names
}
