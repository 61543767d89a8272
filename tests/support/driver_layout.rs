//! What the Secrets Store CSI driver does with the files of a driver-writes
//! Mount: it writes them with (a vendored copy of) the kubelet's atomic
//! writer. Rebuilt here step by step, in the writer's order, so read-back
//! tests run against the layout the real driver leaves, not plain files:
//!
//! 1. the current data directory is what `..data` links to;
//! 2. if every file is byte-for-byte what is there, nothing is written;
//! 3. a new `..YYYY_MM_DD_HH_MM_SS.<random digits>` directory (created 0700,
//!    then chmod 0755) receives the files (parents 0755, each file written
//!    then chmod'ed to its mode);
//! 4. `..data_tmp -> <new dir>` is renamed over `..data`;
//! 5. each top-level name that does not exist yet becomes `name -> ..data/name`;
//! 6. top-level names of the old set missing from the new one are removed,
//!    then the old directory.

use std::collections::BTreeSet;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt, symlink};
use std::path::Path;

use ascp::proto::MountResponse;

/// One file as the driver receives it in `MountResponse.files`.
pub struct DriverFile<'a> {
    pub path: &'a str,
    pub mode: u32,
    pub contents: &'a [u8],
}

/// The files of a driver-writes response.
pub fn files_of(response: &MountResponse) -> Vec<DriverFile<'_>> {
    response
        .files
        .iter()
        .map(|f| DriverFile {
            path: &f.path,
            mode: f.mode as u32,
            contents: &f.contents,
        })
        .collect()
}

/// Writes `files` into `dir` as the driver does. Returns whether anything
/// was written (the driver skips an unchanged payload).
pub fn write_like_the_driver(dir: &Path, files: &[DriverFile<'_>]) -> bool {
    let data = dir.join("..data");
    let old = std::fs::read_link(&data).ok();
    if let Some(old) = &old {
        let unchanged = files
            .iter()
            .all(|f| std::fs::read(dir.join(old).join(f.path)).is_ok_and(|c| c == f.contents))
            && old_top_level(&dir.join(old)) == top_level(files);
        if unchanged {
            return false;
        }
    }

    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .trim_end_matches('Z')
        .replace(['-', 'T', ':'], "_");
    let ts = format!("..{stamp}.{}", fastrand::u32(..));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir.join(&ts))
        .expect("create the timestamped directory");
    chmod(&dir.join(&ts), 0o755);
    for f in files {
        let path = dir.join(&ts).join(f.path);
        if let Some(parent) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .expect("create parents");
        }
        std::fs::write(&path, f.contents).expect("write a file");
        chmod(&path, f.mode);
    }

    let tmp = dir.join("..data_tmp");
    symlink(&ts, &tmp).expect("link ..data_tmp");
    std::fs::rename(&tmp, &data).expect("swap ..data");

    let new_names = top_level(files);
    for name in &new_names {
        let visible = dir.join(name);
        if std::fs::symlink_metadata(&visible).is_err() {
            symlink(Path::new("..data").join(name), &visible).expect("link a visible name");
        }
    }
    if let Some(old) = &old {
        for name in old_top_level(&dir.join(old)).difference(&new_names) {
            let _ = std::fs::remove_file(dir.join(name));
        }
        std::fs::remove_dir_all(dir.join(old)).expect("remove the old directory");
    }
    true
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn top_level(files: &[DriverFile<'_>]) -> BTreeSet<String> {
    files
        .iter()
        .map(|f| f.path.split('/').next().unwrap_or_default().to_owned())
        .collect()
}

fn old_top_level(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
