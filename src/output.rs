//! Turning a mount's values into files: written by us inside the target
//! directory (the default), or returned to the driver
//! (`--driver-writes-secrets`).
//!
//! Writing is all or nothing. Every file is first written to a temporary
//! file beside its final name, its mode set and its data fsync'ed; only when
//! every one succeeded are they renamed over their final names, and the
//! directories fsync'ed. A failure before the renames removes every temporary
//! file and every directory this mount created, so the target directory is
//! left exactly as it was.
//!
//! Nothing here follows a symlink below the target directory: directories
//! are walked one element at a time with `O_NOFOLLOW`, files are created with
//! `O_EXCL | O_NOFOLLOW`, and a symlink planted at a final name is replaced
//! by the rename, never written through. File names were checked by
//! [`crate::spc::objects::check_file_name`]; this module checks again, since
//! it is the last line of defence.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::error::Error;
use crate::proto;
use crate::secret::SecretBytes;
use crate::spc::objects::check_file_name;

/// One file of a mount.
#[derive(Debug, Clone)]
pub struct OutputFile {
    /// Path relative to the target directory.
    pub path: String,
    /// Permission bits (0 to 0o777).
    pub mode: u32,
    /// Contents.
    pub contents: SecretBytes,
}

/// The most a driver reads in one response by default (gRPC's 4 MiB), less
/// room for the versions and framing.
pub const DRIVER_RESPONSE_LIMIT: usize = 4 * 1024 * 1024 - 64 * 1024;

/// Checks that the target path exists and is a directory.
pub fn check_target(target: &Path) -> Result<(), Error> {
    let err = |reason: &str| Error::TargetPath {
        path: target.to_owned(),
        reason: reason.to_owned(),
    };
    if target.as_os_str().is_empty() {
        return Err(err("missing: the driver sent no target path"));
    }
    match std::fs::metadata(target) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(err("not a directory")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(err("does not exist")),
        Err(e) => Err(Error::TargetPath {
            path: target.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// The files as the driver receives them, checked against its response limit.
pub fn to_driver_files(files: &[OutputFile]) -> Result<Vec<proto::File>, Error> {
    let bytes: usize = files
        .iter()
        .map(|f| f.contents.len() + f.path.len() + 16)
        .sum();
    if bytes > DRIVER_RESPONSE_LIMIT {
        return Err(Error::ResponseTooLarge {
            bytes,
            limit: DRIVER_RESPONSE_LIMIT,
        });
    }
    Ok(files
        .iter()
        .map(|f| proto::File {
            path: f.path.clone(),
            mode: f.mode as i32,
            contents: f.contents.expose().to_vec(),
        })
        .collect())
}

/// Writes every file into `target`, all or nothing.
pub fn write_all(target: &Path, files: &[OutputFile]) -> Result<(), Error> {
    let root = open_dir(target).map_err(|source| Error::TargetPath {
        path: target.to_owned(),
        reason: source.to_string(),
    })?;
    let mut tx = Transaction::new(Arc::new(root));
    match tx.stage_all(files) {
        Ok(()) => tx.commit(),
        Err(e) => {
            tx.rollback();
            Err(e)
        }
    }
}

/// Reads a mounted file back (rotation remounts reuse the contents of an
/// unchanged version). Refuses symlinks and anything but a regular file of
/// at most `max` bytes.
pub fn read_mounted(target: &Path, path: &str, max: usize) -> io::Result<SecretBytes> {
    check_file_name(path).map_err(|r| io::Error::new(io::ErrorKind::InvalidInput, r))?;
    let root = open_dir(target)?;
    let (parents, base) = split(path);
    let mut dir = root;
    for element in parents {
        dir = open_child_dir(&dir, element)?;
    }
    let fd = rustix::fs::openat(
        &dir,
        base,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )?;
    let stat = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    let mut buf = Vec::new();
    File::from(fd).take(max as u64 + 1).read_to_end(&mut buf)?;
    if buf.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "larger than expected",
        ));
    }
    Ok(SecretBytes::new(buf))
}

fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    // The target path itself comes from the driver and may legitimately be
    // reached through symlinks; below it nothing is followed.
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

fn open_child_dir(parent: &impl AsFd, name: &str) -> io::Result<OwnedFd> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?} is a symlink or not a directory; refusing to follow it"),
            )
        } else {
            e.into()
        }
    })
}

fn split(path: &str) -> (Vec<&str>, &str) {
    let mut parts: Vec<&str> = path.split('/').collect();
    let base = parts.pop().unwrap_or_default();
    (parts, base)
}

/// A unique temporary name; `O_EXCL` catches the impossible collision.
fn temp_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(".ascp-{}-{n}-{nanos:08x}.tmp", std::process::id())
}

struct Staged {
    dir: Arc<OwnedFd>,
    temp: String,
    name: String,
}

struct Transaction {
    root: Arc<OwnedFd>,
    /// Directories opened so far, by their path below the root.
    dirs: HashMap<String, Arc<OwnedFd>>,
    /// Directories this mount created, in creation order.
    created: Vec<(Arc<OwnedFd>, String)>,
    staged: Vec<Staged>,
}

impl Transaction {
    fn new(root: Arc<OwnedFd>) -> Self {
        Self {
            root,
            dirs: HashMap::new(),
            created: Vec::new(),
            staged: Vec::new(),
        }
    }

    fn stage_all(&mut self, files: &[OutputFile]) -> Result<(), Error> {
        for file in files {
            self.stage(file).map_err(|source| Error::Write {
                path: file.path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    fn stage(&mut self, file: &OutputFile) -> io::Result<()> {
        check_file_name(&file.path).map_err(|r| io::Error::new(io::ErrorKind::InvalidInput, r))?;
        let (parents, base) = split(&file.path);
        let dir = self.dir_for(&parents)?;
        match rustix::fs::statat(&*dir, base, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a directory stands at this file name",
                ));
            }
            Ok(_) => {}
            Err(e) if e == rustix::io::Errno::NOENT => {}
            Err(e) => return Err(e.into()),
        }
        let temp = temp_name();
        let fd = rustix::fs::openat(
            &*dir,
            temp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        // Recorded before writing, so a failed write is cleaned up too.
        self.staged.push(Staged {
            dir: dir.clone(),
            temp,
            name: base.to_owned(),
        });
        let mut f = File::from(fd);
        f.write_all(file.contents.expose())?;
        // fchmod is exact; the umask does not apply to it.
        rustix::fs::fchmod(&f, Mode::from_raw_mode(file.mode & 0o777))?;
        f.sync_all()?;
        Ok(())
    }

    /// Opens (creating when missing) the directory for `parents`.
    fn dir_for(&mut self, parents: &[&str]) -> io::Result<Arc<OwnedFd>> {
        let mut dir = self.root.clone();
        let mut key = String::new();
        for element in parents {
            if !key.is_empty() {
                key.push('/');
            }
            key.push_str(element);
            if let Some(d) = self.dirs.get(&key) {
                dir = d.clone();
                continue;
            }
            let child = match open_child_dir(&*dir, element) {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    rustix::fs::mkdirat(&*dir, *element, Mode::from_raw_mode(0o755))?;
                    self.created.push((dir.clone(), (*element).to_owned()));
                    open_child_dir(&*dir, element)?
                }
                Err(e) => return Err(e),
            };
            let child = Arc::new(child);
            self.dirs.insert(key.clone(), child.clone());
            dir = child;
        }
        Ok(dir)
    }

    fn commit(mut self) -> Result<(), Error> {
        let staged = std::mem::take(&mut self.staged);
        for (i, s) in staged.iter().enumerate() {
            if let Err(e) = rustix::fs::renameat(&*s.dir, s.temp.as_str(), &*s.dir, s.name.as_str())
            {
                for rest in &staged[i..] {
                    let _ = rustix::fs::unlinkat(&*rest.dir, rest.temp.as_str(), AtFlags::empty());
                }
                return Err(Error::Write {
                    path: s.name.clone(),
                    source: e.into(),
                });
            }
        }
        // Make the renames durable.
        let _ = rustix::fs::fsync(&*self.root);
        for dir in self.dirs.values() {
            let _ = rustix::fs::fsync(&**dir);
        }
        Ok(())
    }

    fn rollback(mut self) {
        for s in self.staged.drain(..) {
            let _ = rustix::fs::unlinkat(&*s.dir, s.temp.as_str(), AtFlags::empty());
        }
        for (parent, name) in self.created.drain(..).rev() {
            let _ = rustix::fs::unlinkat(&*parent, name.as_str(), AtFlags::REMOVEDIR);
        }
    }
}

// BEGIN SHIM
// TEMPORARY: the target API of the atomic-set writer, over the functions
// above, so that the mount compiles against it before that writer lands.

/// An opened target directory.
#[derive(Clone, Debug)]
pub struct Target {
    path: std::path::PathBuf,
}

/// Whether a set was made visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The set is visible.
    Committed,
    /// `commit` said no: nothing is visible.
    Abandoned,
}

impl Target {
    /// Opens the target directory.
    pub fn open(path: &Path) -> Result<Target, Error> {
        check_target(path)?;
        Ok(Target {
            path: path.to_owned(),
        })
    }

    /// The target's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads a mounted file back.
    pub fn read_mounted(&self, path: &str, max: usize) -> io::Result<SecretBytes> {
        read_mounted(&self.path, path, max)
    }

    /// Writes the set if `commit` says yes.
    pub fn write_set(
        &self,
        files: &[OutputFile],
        commit: &dyn Fn() -> bool,
    ) -> Result<Written, Error> {
        if !commit() {
            return Ok(Written::Abandoned);
        }
        write_all(&self.path, files)?;
        Ok(Written::Committed)
    }

    /// Sets the target's mtime to now.
    pub fn touch(&self) -> io::Result<()> {
        File::open(&self.path)?.set_modified(std::time::SystemTime::now())
    }
}
// END SHIM
