//! Directory operations relative to an open directory, never following a
//! symlink: the only way this module touches the file system.
//!
//! Every name handed to these functions is one path element (no `/`); every
//! open uses `O_NOFOLLOW`, so a symlink met where a directory or a file was
//! expected is reported, not followed. Listings and recursion are bounded,
//! so a hostile tree cannot exhaust memory or the stack.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Flags for opening a directory below the target: never through a symlink.
pub(super) const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Most entries read from one directory. A mount has at most a few thousand
/// files (the objects limit), so more means something else owns the
/// directory and we stop rather than read on.
const MAX_ENTRIES: usize = 100_000;

/// Deepest tree [`remove_tree`] descends into. File paths are at most
/// 4096 bytes, so a tree written by a mount is at most 2048 levels deep;
/// real ones are a few levels. Deeper trees are left in place with an error.
const MAX_DEPTH: usize = 2048;

/// Longest symlink target read (the kernel's `PATH_MAX`).
const MAX_LINK_BYTES: usize = 4096;

/// Opens the directory `name` in `parent`, refusing a symlink.
pub(super) fn open_dir(parent: impl AsFd, name: &str) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty())?)
}

/// The type of `name` in `parent` without following it; `None` when absent.
pub(super) fn kind(parent: impl AsFd, name: &str) -> io::Result<Option<FileType>> {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The target of the symlink `name` in `parent`: `None` when `name` is
/// absent or not a symlink; an error when it is not valid UTF-8 or too long.
pub(super) fn link_target(parent: impl AsFd, name: &str) -> io::Result<Option<String>> {
    match rustix::fs::readlinkat(parent, name, Vec::new()) {
        Ok(target) => {
            let bytes = target.into_bytes();
            if bytes.len() > MAX_LINK_BYTES {
                return Err(invalid(format!("symlink {name:?} is too long")));
            }
            String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| invalid(format!("symlink {name:?} is not UTF-8")))
        }
        // EINVAL: not a symlink.
        Err(Errno::NOENT | Errno::INVAL) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The names in `dir` with their types (unknown types are looked up),
/// without `.` and `..`; names that are not UTF-8 are skipped, as nothing
/// this module writes has one.
pub(super) fn entries(dir: impl AsFd) -> io::Result<Vec<(String, FileType)>> {
    let dir = dir.as_fd();
    let mut out = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().to_str() else {
            continue;
        };
        if name == "." || name == ".." {
            continue;
        }
        if out.len() == MAX_ENTRIES {
            return Err(invalid(format!(
                "more than {MAX_ENTRIES} entries in one directory"
            )));
        }
        let kind = match entry.file_type() {
            FileType::Unknown => match kind(dir, name)? {
                Some(k) => k,
                None => continue,
            },
            k => k,
        };
        out.push((name.to_owned(), kind));
    }
    Ok(out)
}

/// Removes `name` from `parent`: a directory with everything below it
/// (symlinks inside are removed, never followed), or any other entry.
/// Absent is not an error.
pub(super) fn remove_tree(parent: impl AsFd, name: &str) -> io::Result<()> {
    remove_tree_at(parent.as_fd(), name, 0)
}

fn remove_tree_at(parent: rustix::fd::BorrowedFd<'_>, name: &str, depth: usize) -> io::Result<()> {
    let dir = match open_dir(parent, name) {
        Ok(dir) => dir,
        Err(e) if is(&e, Errno::NOENT) => return Ok(()),
        // A symlink (ELOOP) or anything else that is not a directory.
        Err(e) if is(&e, Errno::LOOP) || is(&e, Errno::NOTDIR) => return unlink(parent, name),
        Err(e) => return Err(e),
    };
    if depth >= MAX_DEPTH {
        return Err(invalid(format!("{name:?} is nested too deep to remove")));
    }
    for (child, kind) in entries(&dir)? {
        if kind == FileType::Directory {
            remove_tree_at(dir.as_fd(), &child, depth + 1)?;
        } else {
            unlink(dir.as_fd(), &child)?;
        }
    }
    match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Removes the non-directory `name` from `parent`; absent is not an error.
pub(super) fn unlink(parent: impl AsFd, name: &str) -> io::Result<()> {
    match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// An `InvalidData` error with a message naming no value.
pub(super) fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Whether `e` is the errno `errno`.
pub(super) fn is(e: &io::Error, errno: Errno) -> bool {
    e.raw_os_error() == Some(errno.raw_os_error())
}
