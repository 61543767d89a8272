//! Writing a whole set of files in the kubelet atomic writer's layout; the
//! order of operations is specified in the parent module's documentation
//! and followed here step by step.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use rustix::fs::{FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use tracing::warn;

use super::dirfd::{self, invalid};
use super::{OutputFile, Step, Written};
use crate::error::Error;
use crate::spc::objects::check_file_name;

/// The symlink to the committed set's directory.
pub(super) const DATA: &str = "..data";
/// The new `..data` link before it is renamed over the old one.
pub(super) const DATA_TMP: &str = "..data_tmp";
/// Our other temporary entries (links before they replace a name, and
/// directories replaced by a link, before they are removed).
pub(super) const TEMP_PREFIX: &str = "..ascp_tmp_";

/// How often a fresh random name is tried when one is taken.
const NAME_ATTEMPTS: usize = 16;

/// Whether `name` is shaped like a timestamped data directory,
/// `..YYYY_MM_DD_HH_MM_SS.<suffix>`, as we and the kubelet name them.
pub(super) fn is_timestamp_dir(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("..") else {
        return false;
    };
    let b = rest.as_bytes();
    b.len() > 20
        && b[..19].iter().enumerate().all(|(i, c)| {
            if matches!(i, 4 | 7 | 10 | 13 | 16) {
                *c == b'_'
            } else {
                c.is_ascii_digit()
            }
        })
        && b[19] == b'.'
}

/// A fresh timestamped directory name (UTC, as the kubelet's).
fn timestamp_dir_name() -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    // "2026-11-30T22:41:11Z" -> "2026_11_30_22_41_11"
    let stamp: String = now
        .trim_end_matches('Z')
        .chars()
        .map(|c| if c.is_ascii_digit() { c } else { '_' })
        .collect();
    format!("..{stamp}.{}", fastrand::u32(..))
}

/// The visible link for a top-level name: `..data/<name>`.
fn link_for(name: &str) -> String {
    format!("{DATA}/{name}")
}

/// The set the target shows now.
struct Current {
    /// The directory `..data` points to, when it is one of ours.
    dir: Option<String>,
    /// Its top-level names.
    names: BTreeSet<String>,
}

fn current(root: &OwnedFd) -> io::Result<Current> {
    let mut out = Current {
        dir: None,
        names: BTreeSet::new(),
    };
    // A `..data` that is not a link to a timestamped directory here is not
    // ours to follow: it is treated as no set, and replaced by the swap.
    if let Some(dir) = dirfd::link_target(root, DATA)?.filter(|d| is_timestamp_dir(d)) {
        match dirfd::open_dir(root, &dir) {
            Ok(fd) => {
                out.names = dirfd::entries(&fd)?.into_iter().map(|(n, _)| n).collect();
                out.dir = Some(dir);
            }
            Err(e) if dirfd::is(&e, Errno::NOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn write_error(path: &str) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_owned(),
        source,
    }
}

/// The top-level names of `files`, once each file name passed the checks.
fn top_level_names(files: &[OutputFile]) -> Result<BTreeSet<&str>, Error> {
    let mut names = BTreeSet::new();
    for file in files {
        let refuse = |reason: String| Error::Write {
            path: file.path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidInput, reason),
        };
        check_file_name(&file.path).map_err(refuse)?;
        let top = file.path.split('/').next().unwrap_or_default();
        if top.starts_with("..") {
            return Err(refuse(
                "names starting with \"..\" are reserved for the atomic-writer layout".into(),
            ));
        }
        names.insert(top);
    }
    Ok(names)
}

/// Removes what an interrupted mount left: `..data_tmp`, our temporary
/// entries, timestamped directories `..data` does not point to, and name
/// links into `..data` for names the current set does not have.
fn remove_orphans(root: &OwnedFd, current: &Current) -> Result<(), Error> {
    for (name, kind) in dirfd::entries(root).map_err(write_error("."))? {
        let orphan = name == DATA_TMP
            || name.starts_with(TEMP_PREFIX)
            || (is_timestamp_dir(&name) && current.dir.as_deref() != Some(name.as_str()))
            || (kind == FileType::Symlink
                && !name.starts_with("..")
                && !current.names.contains(&name)
                && dirfd::link_target(root, &name)
                    .map_err(write_error(&name))?
                    .is_some_and(|t| t == link_for(&name)));
        if orphan {
            dirfd::remove_tree(root, &name).map_err(write_error(&name))?;
        }
    }
    Ok(())
}

/// What this mount created before the swap, removed again if it does not
/// commit.
struct Staging<'a> {
    root: &'a OwnedFd,
    dir: Option<String>,
    linked: Vec<String>,
    data_tmp: bool,
}

impl Staging<'_> {
    fn rollback(self) {
        if self.data_tmp {
            let _ = dirfd::unlink(self.root, DATA_TMP);
        }
        for name in &self.linked {
            let _ = dirfd::unlink(self.root, name);
        }
        if let Some(dir) = &self.dir
            && let Err(e) = dirfd::remove_tree(self.root, dir)
        {
            warn!(dir = %dir, error = %e, "cannot remove an uncommitted data directory; the next mount will");
        }
        let _ = rustix::fs::fsync(self.root);
    }

    /// Creates the timestamped directory (0755 whatever the umask).
    fn create_dir(&mut self) -> Result<OwnedFd, Error> {
        for _ in 0..NAME_ATTEMPTS {
            let name = timestamp_dir_name();
            match rustix::fs::mkdirat(self.root, name.as_str(), Mode::from_raw_mode(0o700)) {
                Ok(()) => {}
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(write_error(&name)(e.into())),
            }
            self.dir = Some(name.clone());
            let fd = dirfd::open_dir(self.root, &name).map_err(write_error(&name))?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o755))
                .map_err(|e| write_error(&name)(e.into()))?;
            return Ok(fd);
        }
        Err(write_error(DATA)(invalid(
            "no free name for a new data directory".into(),
        )))
    }

    /// Writes every file into the new directory `dir`, then makes the
    /// directory tree durable.
    fn write_files(
        &mut self,
        dir: OwnedFd,
        files: &[OutputFile],
        observe: &mut dyn FnMut(Step),
    ) -> Result<(), Error> {
        let mut dirs = Dirs {
            top: Arc::new(dir),
            below: HashMap::new(),
        };
        for file in files {
            write_file(&mut dirs, file).map_err(write_error(&file.path))?;
            observe(Step::FileWritten);
        }
        for fd in dirs.below.values().chain([&dirs.top]) {
            rustix::fs::fsync(&**fd).map_err(|e| write_error(".")(e.into()))?;
        }
        Ok(())
    }

    /// Links each new top-level name that is absent into `..data` (the
    /// link dangles until the swap, so the name still reads as absent);
    /// returns the names held by something else, replaced after the swap.
    fn link_names(&mut self, names: &BTreeSet<&str>) -> Result<Vec<String>, Error> {
        let mut replace = Vec::new();
        for &name in names {
            let kind = dirfd::kind(self.root, name).map_err(write_error(name))?;
            match kind {
                None => {
                    rustix::fs::symlinkat(link_for(name).as_str(), self.root, name)
                        .map_err(|e| write_error(name)(e.into()))?;
                    self.linked.push(name.to_owned());
                }
                Some(FileType::Symlink)
                    if dirfd::link_target(self.root, name)
                        .map_err(write_error(name))?
                        .is_some_and(|t| t == link_for(name)) => {}
                Some(_) => replace.push(name.to_owned()),
            }
        }
        Ok(replace)
    }

    /// Creates `..data_tmp` pointing to the new directory.
    fn link_data_tmp(&mut self) -> Result<(), Error> {
        let dir = self.dir.as_deref().unwrap_or_default();
        rustix::fs::symlinkat(dir, self.root, DATA_TMP)
            .map_err(|e| write_error(DATA_TMP)(e.into()))?;
        self.data_tmp = true;
        rustix::fs::fsync(self.root).map_err(|e| write_error(".")(e.into()))
    }
}

/// Directories of the new set, opened once each.
struct Dirs {
    top: Arc<OwnedFd>,
    /// By their path below the data directory.
    below: HashMap<String, Arc<OwnedFd>>,
}

fn write_file(dirs: &mut Dirs, file: &OutputFile) -> io::Result<()> {
    let (parents, base) = match file.path.rsplit_once('/') {
        Some((parents, base)) => (Some(parents), base),
        None => (None, file.path.as_str()),
    };
    let mut dir = dirs.top.clone();
    if let Some(parents) = parents {
        let mut key = String::new();
        for element in parents.split('/') {
            if !key.is_empty() {
                key.push('/');
            }
            key.push_str(element);
            if let Some(d) = dirs.below.get(&key) {
                dir = d.clone();
                continue;
            }
            let child = match dirfd::open_dir(&*dir, element) {
                Ok(fd) => fd,
                Err(e) if dirfd::is(&e, Errno::NOENT) => {
                    rustix::fs::mkdirat(&*dir, element, Mode::from_raw_mode(0o700))?;
                    let fd = dirfd::open_dir(&*dir, element)?;
                    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o755))?;
                    fd
                }
                Err(e) => return Err(e),
            };
            let child = Arc::new(child);
            dirs.below.insert(key.clone(), child.clone());
            dir = child;
        }
    }
    let fd = rustix::fs::openat(
        &*dir,
        base,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    let mut f = File::from(fd);
    f.write_all(file.contents.expose())?;
    // fchmod is exact; the umask does not apply to it.
    rustix::fs::fchmod(&f, Mode::from_raw_mode(file.mode & 0o777))?;
    f.sync_all()
}

/// Replaces whatever holds the visible `name` (a file or directory left by
/// an earlier provider, a foreign symlink) by the link into `..data`, in one
/// rename, so a reader sees the old entry or the new one, never neither.
fn replace_with_link(root: &OwnedFd, name: &str) -> io::Result<()> {
    let directory = dirfd::kind(root, name)? == Some(FileType::Directory);
    let temp = format!("{TEMP_PREFIX}{}", fastrand::u64(..));
    rustix::fs::symlinkat(link_for(name).as_str(), root, temp.as_str())?;
    let result = if directory {
        // rename(2) cannot replace a directory with a link; an exchange
        // swaps them in one step, and the directory is then removed under
        // the temporary name.
        match rustix::fs::renameat_with(root, temp.as_str(), root, name, RenameFlags::EXCHANGE) {
            Ok(()) => {
                remove_replaced(root, &temp);
                return Ok(());
            }
            // A file system without exchanges: move the directory aside,
            // then rename the link in (the name is absent in between), or
            // move the directory back if that fails.
            Err(Errno::INVAL | Errno::NOSYS) => {
                let aside = format!("{TEMP_PREFIX}{}", fastrand::u64(..));
                rustix::fs::renameat(root, name, root, aside.as_str())
                    .and_then(|()| {
                        rustix::fs::renameat(root, temp.as_str(), root, name).inspect_err(|_| {
                            let _ = rustix::fs::renameat(root, aside.as_str(), root, name);
                        })
                    })
                    .map(|()| remove_replaced(root, &aside))
                    .map_err(io::Error::from)
            }
            Err(e) => Err(e.into()),
        }
    } else {
        rustix::fs::renameat(root, temp.as_str(), root, name).map_err(io::Error::from)
    };
    if result.is_err() {
        let _ = dirfd::unlink(root, &temp);
    }
    result
}

/// Removes a directory a link replaced; what stays is an orphan for the
/// next mount, not a failure of this one.
fn remove_replaced(root: &OwnedFd, temp: &str) {
    if let Err(e) = dirfd::remove_tree(root, temp) {
        warn!(dir = %temp, error = %e, "cannot remove a replaced directory; the next mount will");
    }
}

/// Writes `files` as the target's new set; see the parent module.
pub(super) fn write_set(
    root: &OwnedFd,
    files: &[OutputFile],
    commit: &dyn Fn() -> bool,
    observe: &mut dyn FnMut(Step),
) -> Result<Written, Error> {
    let names = top_level_names(files)?;
    let old = current(root).map_err(write_error(DATA))?;
    remove_orphans(root, &old)?;
    observe(Step::OrphansRemoved);

    let mut staging = Staging {
        root,
        dir: None,
        linked: Vec::new(),
        data_tmp: false,
    };
    let staged = (|| {
        let dir = staging.create_dir()?;
        observe(Step::DirCreated);
        staging.write_files(dir, files, observe)?;
        observe(Step::Staged);
        let replace = staging.link_names(&names)?;
        observe(Step::NamesLinked);
        staging.link_data_tmp()?;
        observe(Step::DataTmpLinked);
        Ok(replace)
    })();
    let replace = match staged {
        Ok(replace) => replace,
        Err(e) => {
            staging.rollback();
            return Err(e);
        }
    };
    if !commit() {
        staging.rollback();
        return Ok(Written::Abandoned);
    }
    if let Err(e) = rustix::fs::renameat(root, DATA_TMP, root, DATA) {
        staging.rollback();
        return Err(write_error(DATA)(e.into()));
    }
    let _ = rustix::fs::fsync(root);
    observe(Step::Swapped);

    // Committed: the new set is what `..data` shows. What follows finishes
    // the names and tidies up; what fails here is finished by the next
    // mount.
    for name in &replace {
        replace_with_link(root, name).map_err(write_error(name))?;
        observe(Step::NameReplaced);
    }
    for name in old.names.iter().filter(|n| !names.contains(n.as_str())) {
        let ours = dirfd::link_target(root, name)
            .ok()
            .flatten()
            .is_some_and(|t| t == link_for(name));
        if ours && let Err(e) = dirfd::unlink(root, name) {
            warn!(file = %name, error = %e, "cannot remove a name the new set dropped; the next mount will");
        }
    }
    observe(Step::StaleRemoved);
    if let Some(dir) = old.dir.filter(|d| Some(d) != staging.dir.as_ref())
        && let Err(e) = dirfd::remove_tree(root, &dir)
    {
        warn!(dir = %dir, error = %e, "cannot remove the previous data directory; the next mount will");
    }
    let _ = rustix::fs::fsync(root);
    observe(Step::OldDirRemoved);
    Ok(Written::Committed)
}
