//! Turning a mount's values into files: written by us inside the target
//! directory (the default), or returned to the driver
//! (`--driver-writes-secrets`), and read back on rotation remounts.
//!
//! # The target
//!
//! [`Target::open`] opens the target directory once, before anything is
//! fetched, and every later operation works relative to that descriptor.
//! The path may be reached through symlinks (some distributions link the
//! kubelet's root directory), but its final component must be a real
//! directory: it is opened with `O_NOFOLLOW | O_DIRECTORY`, so a target that
//! is itself a symlink is refused and nothing is written through it.
//!
//! The path's shape (`…/pods/<pod uid>/volumes/kubernetes.io~csi/<volume>/mount`)
//! is deliberately not checked against the request's pod UID: the kubelet's
//! root directory is configurable (`--root-dir`; k0s, microk8s and others
//! move it), `ascp mount` and tests use plain directories, and the check
//! would protect nothing: the path and the pod UID come in the same request
//! from the same caller, the driver, the only client of a socket only root
//! on the node can reach.
//!
//! # The layout (provider writes)
//!
//! The layout is the kubelet atomic writer's, the one the driver itself
//! writes in driver-writes mode, so a pod sees the same tree in both modes:
//!
//! ```text
//! ..2026_11_30_22_41_11.1234567/   the set's files (directory mode 0755)
//! ..data -> ..2026_11_30_22_41_11.1234567
//! tls.crt -> ..data/tls.crt        one relative link per top-level name;
//! app -> ..data/app                with nested paths only the top entry
//! ```
//!
//! A reader that resolves `..data` once and reads several files from that
//! directory always sees one whole set. [`Target::write_set`] proceeds in
//! these steps (each named by a [`Step`]):
//!
//! 1. Check every name ([`check_file_name`]; top-level names starting with
//!    `..` are reserved for the layout). Remove what an interrupted mount
//!    left ([`Step::OrphansRemoved`]): `..data_tmp`, our `..ascp_tmp_*`
//!    entries, timestamped directories `..data` does not point to, and
//!    name links into `..data` for names the current set does not have.
//! 2. Create a fresh `..YYYY_MM_DD_HH_MM_SS.<random>` directory, set to 0755
//!    with `fchmod` so non-root pods can read it ([`Step::DirCreated`]);
//!    write each file in it with `O_CREAT | O_EXCL | O_NOFOLLOW`, `fchmod`
//!    it to its mode and `fsync` it ([`Step::FileWritten`]); `fsync` the
//!    directories ([`Step::Staged`]).
//! 3. Link each new top-level name that is absent: `name -> ..data/name`
//!    ([`Step::NamesLinked`]). Until the swap such a link dangles, so the
//!    name still reads as absent, as in the old set.
//! 4. Create `..data_tmp` pointing to the new directory
//!    ([`Step::DataTmpLinked`]).
//! 5. Call `commit`; if it answers false, remove everything steps 2-4
//!    created and return [`Written::Abandoned`].
//! 6. Rename `..data_tmp` over `..data` ([`Step::Swapped`]): the single
//!    instant at which the new set replaces the old one.
//! 7. Replace each new top-level name held by something other than its
//!    link (a plain file or directory left by ASCP or an older ascp, a
//!    foreign symlink) by the link, in one rename each
//!    ([`Step::NameReplaced`]): a file or symlink by renaming a fresh link
//!    over it; a directory (an old nested path) by exchanging it with a
//!    fresh link (`renameat2(RENAME_EXCHANGE)`), then removing it. So while
//!    an earlier provider's files are converted, each name reads either its
//!    complete old value or its complete new one. (Only on a file system
//!    without exchanges is a directory moved aside first, leaving the name
//!    absent for an instant.) Top-level entries that are not in the new set
//!    and are not links into `..data` are left alone: nothing says which
//!    provider, if any, wrote them.
//! 8. Remove the links of names the old set had and the new one does not
//!    ([`Step::StaleRemoved`]), then the previous data directory
//!    ([`Step::OldDirRemoved`]).
//!
//! A failure in steps 1-6 removes what the mount created: the target shows
//! what it showed before (only orphans of earlier mounts may be gone). After step 6 the new set is committed: a failure to
//! replace a name is returned as an error (the driver retries, and the next
//! mount finishes the job); a failure to remove a stale link or the old
//! directory is logged and left to the next mount's step 1. A process killed
//! at any point leaves the old set or the new one, plus orphans step 1 of
//! the next mount removes (at worst a dangling name link, which reads as
//! absent); while an earlier provider's plain files are converted, each
//! name holds its old value or its new one.
//!
//! Nothing here follows a symlink below the target: directories are opened
//! one element at a time with `O_NOFOLLOW`, links are created, renamed and
//! removed, never written through, and `..data` is followed only to a
//! timestamped directory in the target. File names were checked by
//! [`crate::spc::objects::check_file_name`]; this module checks again, since
//! it is the last line of defence.
//!
//! # Reading back
//!
//! [`Target::read_mounted`] reads a mounted file in either mode, following
//! the layout's relative links while they stay inside the target (never an
//! absolute link, never a `..` that climbs out, at most 8 links), regular
//! files only, up to a size bound. It also reads plain files, as written by
//! earlier providers.
//!
//! # Driver writes
//!
//! [`to_driver_files`] returns the files for the driver to write, within
//! the size the driver reads in one response; nothing is written here.

mod dirfd;
mod layout;
mod read;

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{FileType, OFlags, Timespec, Timestamps, UTIME_NOW, UTIME_OMIT};
use rustix::io::Errno;

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

/// Longest target path accepted: the kernel's `PATH_MAX`. Longer ones cannot
/// be opened, and are refused before their text reaches an error or a log
/// line, which then shows only its first bytes.
pub const MAX_TARGET_PATH_BYTES: usize = 4096;

/// The most a driver reads in one response by default (gRPC's 4 MiB), less
/// room for the versions and framing.
pub const DRIVER_RESPONSE_LIMIT: usize = 4 * 1024 * 1024 - 64 * 1024;

/// What the driver's gRPC client receives in one message by default: a
/// response encoding to more is refused by the driver with its own error.
pub const DRIVER_RECEIVE_LIMIT: usize = 4 * 1024 * 1024;

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

/// A mount's target directory, opened once: the path may be reached through
/// symlinks, but its final component must be a real directory (opened
/// `O_NOFOLLOW | O_DIRECTORY`); every later operation uses this handle.
/// Cheap to clone (an `Arc` inside), `Send + Sync`, so it can move into
/// `spawn_blocking`.
#[derive(Clone)]
pub struct Target(Arc<TargetDir>);

struct TargetDir {
    path: PathBuf,
    fd: OwnedFd,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Target").field(&self.0.path).finish()
    }
}

/// What [`Target::write_set`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The new set is visible.
    Committed,
    /// `commit` answered false: nothing became visible and the staged
    /// files were removed.
    Abandoned,
}

/// The steps of [`Target::write_set`], in order, as reported to the
/// observer of [`Target::write_set_observed`] right after each one (see the
/// module documentation). [`Step::FileWritten`] and [`Step::NameReplaced`]
/// are reported once per file and per replaced name, so possibly never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Orphans of an interrupted mount were removed.
    OrphansRemoved,
    /// The new timestamped directory exists.
    DirCreated,
    /// One more file was written and synced in it.
    FileWritten,
    /// Every file and directory of the new set is durable.
    Staged,
    /// Absent top-level names link into `..data`.
    NamesLinked,
    /// `..data_tmp` points to the new directory.
    DataTmpLinked,
    /// `..data` points to the new directory: the set is committed.
    Swapped,
    /// One name held by something else now links into `..data`.
    NameReplaced,
    /// Names the new set dropped were removed.
    StaleRemoved,
    /// The previous data directory was removed.
    OldDirRemoved,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 10] = [
        Step::OrphansRemoved,
        Step::DirCreated,
        Step::FileWritten,
        Step::Staged,
        Step::NamesLinked,
        Step::DataTmpLinked,
        Step::Swapped,
        Step::NameReplaced,
        Step::StaleRemoved,
        Step::OldDirRemoved,
    ];
}

impl Target {
    /// Opens the target directory; refuses a missing or empty path, a path
    /// that does not end in a directory name, and a final component that is
    /// not a directory or is a symlink ([`Error::TargetPath`]).
    pub fn open(path: &Path) -> Result<Target, Error> {
        let fail = |reason: String| Error::TargetPath {
            path: path.to_owned(),
            reason,
        };
        if path.as_os_str().is_empty() {
            return Err(fail("missing: the driver sent no target path".into()));
        }
        let len = path.as_os_str().len();
        if len > MAX_TARGET_PATH_BYTES {
            return Err(Error::TargetPath {
                path: PathBuf::from(crate::bounded_text::truncate(&path.to_string_lossy(), 200)),
                reason: format!(
                    "{len} bytes, longer than the {MAX_TARGET_PATH_BYTES} a path may have"
                ),
            });
        }
        let Some(name) = path.file_name() else {
            return Err(fail("does not end in a directory name".into()));
        };
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        // Everything up to the final component may be a symlink.
        let parent_fd = rustix::fs::open(
            parent,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| fail(open_failure(e, false)))?;
        match rustix::fs::openat(
            &parent_fd,
            name,
            dirfd::DIR_FLAGS,
            rustix::fs::Mode::empty(),
        ) {
            Ok(fd) => Ok(Target(Arc::new(TargetDir {
                path: path.to_owned(),
                fd,
            }))),
            Err(e) => {
                let symlink =
                    rustix::fs::statat(&parent_fd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
                Err(fail(open_failure(e, symlink)))
            }
        }
    }

    /// The path the driver sent.
    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// Reads a mounted file back, following `name -> ..data/...` relative
    /// symlinks only while they stay inside the target (never absolute
    /// links, never `..` escaping, bounded link count), regular files only,
    /// at most `max` bytes.
    pub fn read_mounted(&self, path: &str, max: usize) -> io::Result<SecretBytes> {
        check_file_name(path).map_err(|r| io::Error::new(io::ErrorKind::InvalidInput, r))?;
        read::read_mounted(&self.0.fd, path, max)
    }

    /// Writes the whole set atomically in the kubelet atomic-writer layout.
    /// `commit` is called once staging succeeded, right before the `..data`
    /// swap, and not at all when staging failed (the caller holds its
    /// per-target lock around this call and uses `commit` to check it is
    /// still the newest, non-cancelled mount); if it returns false nothing
    /// becomes visible, staged work is removed, and `Ok(Written::Abandoned)`
    /// is returned.
    pub fn write_set(
        &self,
        files: &[OutputFile],
        commit: &dyn Fn() -> bool,
    ) -> Result<Written, Error> {
        self.write_set_observed(files, commit, &mut |_| {})
    }

    /// [`Target::write_set`], reporting each [`Step`] to `observe` as it
    /// completes. The observer changes nothing; crash tests use it to stop
    /// a writer at each step.
    pub fn write_set_observed(
        &self,
        files: &[OutputFile],
        commit: &dyn Fn() -> bool,
        observe: &mut dyn FnMut(Step),
    ) -> Result<Written, Error> {
        layout::write_set(&self.0.fd, files, commit, observe)
    }

    /// Where `..data` points now (the current set's directory), or `None`
    /// when there is no layout (nothing mounted yet, or plain files left by
    /// an older provider). A rotation remount compares it with what it
    /// recorded to tell that nobody replaced the set since.
    pub fn data_dir(&self) -> io::Result<Option<String>> {
        dirfd::link_target(&self.0.fd, layout::DATA)
    }

    /// Sets the target directory's mtime to now (used by unchanged remounts).
    pub fn touch(&self) -> io::Result<()> {
        let times = Timestamps {
            last_access: Timespec {
                tv_sec: 0,
                tv_nsec: UTIME_OMIT,
            },
            last_modification: Timespec {
                tv_sec: 0,
                tv_nsec: UTIME_NOW,
            },
        };
        Ok(rustix::fs::futimens(&self.0.fd, &times)?)
    }
}

/// Why the target could not be opened, in words.
fn open_failure(e: Errno, symlink: bool) -> String {
    if symlink {
        return "is a symlink; the target's final component must be a real directory".into();
    }
    match e {
        Errno::NOENT => "does not exist".into(),
        Errno::NOTDIR | Errno::LOOP => "not a directory".into(),
        e => io::Error::from(e).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    fn file(path: &str, mode: u32, contents: &str) -> OutputFile {
        OutputFile {
            path: path.into(),
            mode,
            contents: SecretBytes::from(contents.to_owned()),
        }
    }

    fn commit_always() -> bool {
        true
    }

    /// Every entry of `dir` (not following links): name -> what it is.
    fn listing(dir: &Path) -> BTreeMap<String, String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                let meta = std::fs::symlink_metadata(e.path()).unwrap();
                let what = if meta.file_type().is_symlink() {
                    format!("-> {}", std::fs::read_link(e.path()).unwrap().display())
                } else if meta.is_dir() {
                    "dir".into()
                } else {
                    "file".into()
                };
                (name, what)
            })
            .collect()
    }

    /// The listing of a layout whose data directory is `ts`, with `names`.
    fn layout_listing(ts: &str, names: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut want: BTreeMap<String, String> = names
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        want.insert(layout::DATA.into(), format!("-> {ts}"));
        want.insert(ts.into(), "dir".into());
        want
    }

    fn data_dir(dir: &Path) -> String {
        std::fs::read_link(dir.join(layout::DATA))
            .unwrap()
            .display()
            .to_string()
    }

    #[test]
    fn a_target_can_move_into_a_blocking_task() {
        fn send_sync_clone<T: Send + Sync + Clone + 'static>() {}
        send_sync_clone::<Target>();
    }

    #[test]
    fn open_refuses_a_symlinked_final_component_but_follows_parents() {
        let base = tempfile::tempdir().unwrap();
        let real = base.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::create_dir(real.join("mount")).unwrap();
        symlink(&real, base.path().join("link-to-parent")).unwrap();
        symlink(real.join("mount"), base.path().join("link-to-target")).unwrap();
        std::fs::write(base.path().join("plain"), "x").unwrap();

        let through_parent = base.path().join("link-to-parent/mount");
        assert_eq!(
            Target::open(&through_parent).unwrap().path(),
            through_parent
        );
        for (path, reason) in [
            (base.path().join("link-to-target"), "is a symlink"),
            // A trailing "/" or "/." must not smuggle the link through.
            (base.path().join("link-to-target/"), "is a symlink"),
            (base.path().join("link-to-target/."), "is a symlink"),
            (base.path().join("plain"), "not a directory"),
            (base.path().join("nope"), "does not exist"),
            (base.path().join("nope/deeper"), "does not exist"),
            (base.path().join(".."), "does not end in a directory name"),
            (PathBuf::new(), "missing"),
        ] {
            let err = Target::open(&path).expect_err(&path.display().to_string());
            assert!(matches!(err, Error::TargetPath { .. }), "{err:?}");
            assert!(err.to_string().contains(reason), "{path:?}: {err}");
        }
    }

    #[test]
    fn write_set_builds_the_layout_with_modes() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::open(dir.path()).unwrap();
        let written = target
            .write_set(
                &[
                    file("tls.crt", 0o644, "cert-1"),
                    file("tls.key", 0o400, "key-1"),
                    file("app/db/password", 0o600, "pw"),
                ],
                &commit_always,
            )
            .unwrap();
        assert_eq!(written, Written::Committed);
        let ts = data_dir(dir.path());
        assert!(layout::is_timestamp_dir(&ts), "{ts}");
        let want = layout_listing(
            &ts,
            &[
                ("app", "-> ..data/app"),
                ("tls.crt", "-> ..data/tls.crt"),
                ("tls.key", "-> ..data/tls.key"),
            ],
        );
        assert_eq!(listing(dir.path()), want);
        let mode = |p: &str| {
            std::fs::metadata(dir.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(&ts), 0o755);
        assert_eq!(mode(&format!("{ts}/app/db")), 0o755);
        assert_eq!(mode("tls.key"), 0o400);
        assert_eq!(mode("app/db/password"), 0o600);
        assert_eq!(
            std::fs::read(dir.path().join("tls.crt")).unwrap(),
            b"cert-1"
        );
        assert_eq!(
            std::fs::read(dir.path().join("app/db/password")).unwrap(),
            b"pw"
        );
        assert_eq!(
            target.read_mounted("app/db/password", 10).unwrap().expose(),
            b"pw"
        );

        // The next set: one changed, one dropped, one new.
        target
            .write_set(
                &[
                    file("tls.crt", 0o644, "cert-2"),
                    file("ca.crt", 0o644, "ca"),
                ],
                &commit_always,
            )
            .unwrap();
        let ts2 = data_dir(dir.path());
        assert_ne!(ts, ts2);
        let want = layout_listing(
            &ts2,
            &[
                ("ca.crt", "-> ..data/ca.crt"),
                ("tls.crt", "-> ..data/tls.crt"),
            ],
        );
        assert_eq!(listing(dir.path()), want);
        assert_eq!(
            std::fs::read(dir.path().join("tls.crt")).unwrap(),
            b"cert-2"
        );
    }

    #[test]
    fn an_abandoned_or_failed_set_leaves_the_target_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::open(dir.path()).unwrap();
        target
            .write_set(&[file("a", 0o644, "old")], &commit_always)
            .unwrap();
        let before = listing(dir.path());

        let calls = std::cell::Cell::new(0);
        let refuse = || {
            calls.set(calls.get() + 1);
            false
        };
        let written = target
            .write_set(&[file("a", 0o644, "new"), file("b", 0o644, "b")], &refuse)
            .unwrap();
        assert_eq!((written, calls.get()), (Written::Abandoned, 1));
        assert_eq!(listing(dir.path()), before);

        // A file name that cannot be created (a file where a directory
        // must go) fails after staging began: no commit, nothing visible.
        let calls = std::cell::Cell::new(0);
        let count = || {
            calls.set(calls.get() + 1);
            true
        };
        let err = target
            .write_set(
                &[
                    file("b", 0o644, "b"),
                    file("a", 0o644, "x"),
                    file("a/c", 0o644, "y"),
                ],
                &count,
            )
            .unwrap_err();
        assert!(
            matches!(err, Error::Write { ref path, .. } if path == "a/c"),
            "{err:?}"
        );
        assert_eq!(calls.get(), 0);
        assert_eq!(listing(dir.path()), before);
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"old");

        // Reserved and unsafe names are refused before anything is touched.
        for bad in ["..data", "..x/y", "../x", "/abs", "a//b"] {
            let err = target
                .write_set(&[file(bad, 0o644, "x")], &count)
                .unwrap_err();
            assert!(matches!(err, Error::Write { .. }), "{bad}: {err:?}");
        }
        assert_eq!(calls.get(), 0);
        assert_eq!(listing(dir.path()), before);
    }

    #[test]
    fn plain_files_and_directories_of_an_earlier_provider_are_converted() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db"), "old-db").unwrap();
        std::fs::create_dir_all(dir.path().join("app/db")).unwrap();
        std::fs::write(dir.path().join("app/db/password"), "old-pw").unwrap();
        std::fs::write(dir.path().join("app/db/extra"), "gone").unwrap();
        std::fs::write(dir.path().join("unrelated"), "kept").unwrap();
        std::fs::write(outside.path().join("victim"), "precious").unwrap();
        symlink(outside.path().join("victim"), dir.path().join("planted")).unwrap();

        let target = Target::open(dir.path()).unwrap();
        let mut replaced = 0;
        target
            .write_set_observed(
                &[
                    file("db", 0o644, "new-db"),
                    file("app/db/password", 0o644, "new-pw"),
                    file("planted", 0o644, "mine"),
                ],
                &commit_always,
                &mut |s| replaced += usize::from(s == Step::NameReplaced),
            )
            .unwrap();
        assert_eq!(replaced, 3);
        let ts = data_dir(dir.path());
        let want = layout_listing(
            &ts,
            &[
                ("app", "-> ..data/app"),
                ("db", "-> ..data/db"),
                ("planted", "-> ..data/planted"),
                ("unrelated", "file"),
            ],
        );
        assert_eq!(listing(dir.path()), want);
        assert_eq!(std::fs::read(dir.path().join("db")).unwrap(), b"new-db");
        assert_eq!(
            std::fs::read(dir.path().join("app/db/password")).unwrap(),
            b"new-pw"
        );
        assert!(!dir.path().join("app/db/extra").exists());
        assert_eq!(
            std::fs::read(outside.path().join("victim")).unwrap(),
            b"precious"
        );
    }

    #[test]
    fn orphans_of_an_interrupted_mount_are_removed_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::open(dir.path()).unwrap();
        target
            .write_set(&[file("a", 0o644, "1")], &commit_always)
            .unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("..2020_01_01_00_00_00.42")).unwrap();
        std::fs::write(d.join("..2020_01_01_00_00_00.42/a"), "stale").unwrap();
        symlink("..2020_01_01_00_00_00.42", d.join(layout::DATA_TMP)).unwrap();
        symlink("..data/b", d.join("b")).unwrap();
        std::fs::create_dir(d.join("..ascp_tmp_7")).unwrap();
        symlink("..data/x", d.join("..ascp_tmp_8")).unwrap();
        // Not ours: kept.
        std::fs::create_dir(d.join("..other")).unwrap();
        symlink("elsewhere", d.join("c")).unwrap();

        target
            .write_set(&[file("a", 0o644, "2")], &commit_always)
            .unwrap();
        let ts = data_dir(d);
        let want = layout_listing(
            &ts,
            &[
                ("..other", "dir"),
                ("a", "-> ..data/a"),
                ("c", "-> elsewhere"),
            ],
        );
        assert_eq!(listing(d), want);
    }

    #[test]
    fn read_back_follows_links_inside_the_target_only() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("t");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(base.path().join("outside"), "secret-outside").unwrap();
        std::fs::create_dir(dir.join("..ts")).unwrap();
        std::fs::create_dir(dir.join("..ts/sub")).unwrap();
        std::fs::write(dir.join("..ts/f"), "inside").unwrap();
        std::fs::write(dir.join("..ts/sub/g"), "nested").unwrap();
        symlink("..ts", dir.join("..data")).unwrap();
        symlink("..data/f", dir.join("f")).unwrap();
        symlink("..data/sub", dir.join("sub")).unwrap();
        symlink("sub/../f", dir.join("dotdot-inside")).unwrap();
        symlink(base.path().join("outside"), dir.join("absolute")).unwrap();
        symlink("../outside", dir.join("escape")).unwrap();
        symlink("sub/../../outside", dir.join("escape2")).unwrap();
        symlink("loop", dir.join("loop")).unwrap();
        symlink("..ts", dir.join("dirlink")).unwrap();
        std::fs::write(dir.join("big"), "0123456789").unwrap();

        let target = Target::open(&dir).unwrap();
        let read = |p: &str| target.read_mounted(p, 10).map(|b| b.expose().to_vec());
        assert_eq!(read("f").unwrap(), b"inside");
        assert_eq!(read("sub/g").unwrap(), b"nested");
        assert_eq!(read("dotdot-inside").unwrap(), b"inside");
        assert_eq!(read("big").unwrap(), b"0123456789");
        assert!(target.read_mounted("big", 9).is_err());
        for bad in [
            "absolute", "escape", "escape2", "loop", "dirlink", "nope", "sub",
        ] {
            let err = read(bad).expect_err(bad);
            assert!(!err.to_string().contains("secret-outside"), "{bad}: {err}");
        }
    }

    #[test]
    fn touch_moves_the_mtime_only() {
        let dir = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::open(dir.path())
            .unwrap()
            .set_modified(old)
            .unwrap();
        let target = Target::open(dir.path()).unwrap();
        target.touch().unwrap();
        let mtime = std::fs::metadata(dir.path()).unwrap().modified().unwrap();
        assert!(mtime > old);
        assert!(listing(dir.path()).is_empty());
    }
}
