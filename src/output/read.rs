//! Reading a mounted file back through the atomic-writer layout.
//!
//! The path is resolved one element at a time from the target's descriptor,
//! as the kernel would, except that symlinks are resolved here rather than
//! by the kernel: a link is followed only when its target is relative and
//! stays inside the target directory (a `..` that would climb above the
//! target is refused, however the link got there), at most [`MAX_LINKS`]
//! links per read. The file read must be a regular file of at most `max`
//! bytes. Directories are opened with `O_NOFOLLOW`, so nothing outside the
//! target is ever opened, whatever the links say.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use super::dirfd::{self, invalid};
use crate::secret::SecretBytes;

/// Most symlinks followed in one read. The layout needs two
/// (`name -> ..data/name`, then `..data -> ..<timestamp>`).
pub(super) const MAX_LINKS: usize = 8;

/// Reads `path` below `root`, following the layout's links inside it.
pub(super) fn read_mounted(root: &OwnedFd, path: &str, max: usize) -> io::Result<SecretBytes> {
    let file = open_file(root, path)?;
    let mut buf = Vec::new();
    File::from(file)
        .take(max as u64 + 1)
        .read_to_end(&mut buf)?;
    if buf.len() > max {
        return Err(invalid(format!("{path:?} is larger than {max} bytes")));
    }
    Ok(SecretBytes::new(buf))
}

/// Where the walk stands: the directories entered below the root.
struct Walk<'a> {
    root: &'a OwnedFd,
    entered: Vec<OwnedFd>,
}

impl Walk<'_> {
    fn here(&self) -> BorrowedFd<'_> {
        self.entered.last().map_or(self.root.as_fd(), AsFd::as_fd)
    }
}

/// Opens the regular file `path` below `root` for reading.
fn open_file(root: &OwnedFd, path: &str) -> io::Result<OwnedFd> {
    let mut walk = Walk {
        root,
        entered: Vec::new(),
    };
    // Elements still to resolve, the next one last.
    let mut pending: Vec<String> = Vec::new();
    push_elements(&mut pending, path);
    let mut links = 0;
    while let Some(element) = pending.pop() {
        match element.as_str() {
            "" | "." => continue,
            ".." => {
                if walk.entered.pop().is_none() {
                    return Err(invalid(format!("{path:?} leads out of the target")));
                }
                continue;
            }
            _ => {}
        }
        let last = pending.is_empty();
        let kind = dirfd::kind(walk.here(), &element)?
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        if kind == FileType::Symlink {
            links += 1;
            if links > MAX_LINKS {
                return Err(invalid(format!(
                    "{path:?} goes through more than {MAX_LINKS} symlinks"
                )));
            }
            let target = dirfd::link_target(walk.here(), &element)?
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            if target.starts_with('/') {
                return Err(invalid(format!(
                    "{element:?} is an absolute symlink; refusing to follow it out of the target"
                )));
            }
            push_elements(&mut pending, &target);
            continue;
        }
        if !last {
            // O_NOFOLLOW: if a symlink replaced the directory since the
            // check above, this fails instead of following it.
            let dir = dirfd::open_dir(walk.here(), &element).map_err(|e| {
                if dirfd::is(&e, Errno::NOTDIR) || dirfd::is(&e, Errno::LOOP) {
                    invalid(format!("{element:?} is not a directory"))
                } else {
                    e
                }
            })?;
            walk.entered.push(dir);
            continue;
        }
        if kind != FileType::RegularFile {
            return Err(invalid(format!("{path:?} is not a regular file")));
        }
        let fd = rustix::fs::openat(
            walk.here(),
            element.as_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )?;
        // Checked again on the open file: the entry may have changed.
        let stat = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(invalid(format!("{path:?} is not a regular file")));
        }
        return Ok(fd);
    }
    Err(invalid(format!("{path:?} names no file")))
}

/// Pushes the elements of `path` so that the first is popped first.
fn push_elements(pending: &mut Vec<String>, path: &str) {
    pending.extend(path.rsplit('/').map(str::to_owned));
}
