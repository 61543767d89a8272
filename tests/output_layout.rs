//! The target directory's atomic-writer layout: whole-set rotations under a
//! racing reader, a writer killed with SIGKILL after each step, read-back
//! through the layout the driver writes, and a symlinked target refused
//! before anything is fetched.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use tonic::Code;

use ascp::output::{OutputFile, Step, Target, Written};
use ascp::proto::{MountRequest, MountResponse, ObjectVersion};
use ascp::secret::SecretBytes;

mod support;
use support::driver_layout::{files_of, write_like_the_driver};
use support::memory::{Answer, Harness, request};

/// A fresh target directory, on tmpfs when the machine has one (the
/// driver's targets are tmpfs mounts).
fn target_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("a directory in /dev/shm")
    } else {
        tempfile::tempdir().expect("a temporary directory")
    }
}

fn files(set: &[(&str, &str)]) -> Vec<OutputFile> {
    set.iter()
        .map(|(path, contents)| OutputFile {
            path: (*path).to_owned(),
            mode: 0o644,
            contents: SecretBytes::from((*contents).to_owned()),
        })
        .collect()
}

fn commit() -> bool {
    true
}

/// What a pod sees: every visible file (names not starting with `..`),
/// links followed; a dangling link reads as absent.
fn visible(dir: &Path) -> BTreeMap<String, String> {
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

fn as_map(set: &[(&str, &str)]) -> BTreeMap<String, String> {
    set.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The target's top-level entries, `..data`'s directory shown as `<data>`.
fn listing(dir: &Path) -> Vec<String> {
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

#[test]
fn a_reader_resolving_data_once_never_sees_a_mixed_pair() {
    const ROTATIONS: usize = 1_000;
    let dir = target_dir();
    let target = Target::open(dir.path()).unwrap();
    let set = |i: usize| {
        let (cert, key) = (format!("cert-{i}"), format!("key-{i}"));
        files(&[("tls.crt", &cert), ("tls.key", &key)])
    };
    target.write_set(&set(0), &commit).unwrap();

    let done = AtomicBool::new(false);
    let read_pair = |dir: &Path| -> Option<(String, String)> {
        // As a pod's reader does: resolve ..data once, read both from there.
        let data = std::fs::read_link(dir.join("..data")).ok()?;
        let cert = std::fs::read_to_string(dir.join(&data).join("tls.crt")).ok()?;
        let key = std::fs::read_to_string(dir.join(&data).join("tls.key")).ok()?;
        Some((cert, key))
    };
    let mixed_if =
        |(cert, key): &(String, String)| cert.strip_prefix("cert-") != key.strip_prefix("key-");
    let (rotations, pairs, mixed) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let (mut pairs, mut mixed) = (0usize, 0usize);
            while !done.load(Ordering::Acquire) {
                // A directory removed between the two reads is no pair.
                if let Some(pair) = read_pair(dir.path()) {
                    pairs += 1;
                    mixed += usize::from(mixed_if(&pair));
                }
            }
            (pairs, mixed)
        });
        let mut rotations = 0;
        for i in 1..=ROTATIONS {
            assert_eq!(
                target.write_set(&set(i), &commit).unwrap(),
                Written::Committed
            );
            rotations += 1;
        }
        done.store(true, Ordering::Release);
        let (pairs, mixed) = reader.join().unwrap();
        (rotations, pairs, mixed)
    });
    // Once the writer has stopped, a read must succeed and be the last set.
    let last = read_pair(dir.path()).expect("a pair after the last rotation");
    assert_eq!(
        last,
        (format!("cert-{ROTATIONS}"), format!("key-{ROTATIONS}"))
    );
    eprintln!("{rotations} rotations, {pairs} pairs read while rotating, {mixed} mixed");
    assert_eq!(rotations, ROTATIONS);
    assert_eq!(mixed, 0, "mixed pairs out of {pairs}");
    assert_eq!(
        listing(dir.path()),
        ["..data", "<data>", "tls.crt", "tls.key"]
    );
}

// ---- SIGKILL at each step ----------------------------------------------

const CHILD_TARGET: &str = "ASCP_TEST_CRASH_TARGET";
const CHILD_STEP: &str = "ASCP_TEST_CRASH_STEP";
const CHILD_SCENARIO: &str = "ASCP_TEST_CRASH_SCENARIO";
const MARKER: &str = "ASCP-CRASH-AT ";

/// The sets of a crash scenario: what the target shows before, what the
/// killed mount writes, and what the next mount writes.
struct Scenario {
    name: &'static str,
    old: &'static [(&'static str, &'static str)],
    new: &'static [(&'static str, &'static str)],
    next: &'static [(&'static str, &'static str)],
    /// The old set is plain files of an earlier provider, not the layout.
    plain: bool,
}

const SCENARIOS: [Scenario; 2] = [
    Scenario {
        name: "rotation",
        old: &[
            ("tls.crt", "cert-A"),
            ("tls.key", "key-A"),
            ("dropped", "d-A"),
        ],
        new: &[
            ("tls.crt", "cert-B"),
            ("tls.key", "key-B"),
            ("nested/added", "n-B"),
        ],
        next: &[("tls.crt", "cert-C"), ("tls.key", "key-C")],
        plain: false,
    },
    Scenario {
        name: "conversion",
        old: &[
            ("tls.crt", "cert-A"),
            ("tls.key", "key-A"),
            ("app/db/pw", "pw-A"),
        ],
        new: &[
            ("tls.crt", "cert-B"),
            ("tls.key", "key-B"),
            ("app/db/pw", "pw-B"),
        ],
        // Every old name again: plain files the new set drops are left alone.
        next: &[
            ("tls.crt", "cert-C"),
            ("tls.key", "key-C"),
            ("app/db/pw", "pw-C"),
        ],
        plain: true,
    },
];

/// Not a test of its own: the child process of
/// `sigkill_at_every_step_leaves_the_old_or_the_new_set`, which runs this
/// test binary again with the environment naming a target, a scenario and
/// a step. It writes the scenario's new set, announces the step on stdout
/// when reached and waits there to be killed. Without that environment
/// (an ordinary test run) it does nothing.
#[test]
fn crash_child() {
    let (Ok(dir), Ok(step), Ok(scenario)) = (
        std::env::var(CHILD_TARGET),
        std::env::var(CHILD_STEP),
        std::env::var(CHILD_SCENARIO),
    ) else {
        return;
    };
    let scenario = SCENARIOS.iter().find(|s| s.name == scenario).unwrap();
    let target = Target::open(Path::new(&dir)).unwrap();
    let mut observe = |reached: Step| {
        if format!("{reached:?}") == step {
            let mut out = std::io::stdout();
            writeln!(out, "{MARKER}{step}").unwrap();
            out.flush().unwrap();
            // Wait for SIGKILL; the parent never writes to stdin.
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            std::process::exit(3);
        }
    };
    target
        .write_set_observed(&files(scenario.new), &commit, &mut observe)
        .unwrap();
}

/// Runs the child writing `scenario`'s new set into `dir`; kills it with
/// SIGKILL once it reports `step`. Returns whether it was reached.
fn write_and_kill_at(dir: &Path, scenario: &Scenario, step: Step) -> bool {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_TARGET, dir)
        .env(CHILD_STEP, format!("{step:?}"))
        .env(CHILD_SCENARIO, scenario.name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut reached = false;
    for line in BufReader::new(stdout).lines() {
        if line.unwrap().contains(MARKER) {
            reached = true;
            child.kill().unwrap();
            break;
        }
    }
    let status = child.wait().unwrap();
    if reached {
        assert_eq!(status.signal(), Some(9), "{step:?}: {status:?}");
    } else {
        assert!(status.success(), "{step:?}: the child failed: {status:?}");
    }
    reached
}

/// The scenario's old set on disk: through `Target` or as plain files.
fn prepare(scenario: &Scenario) -> tempfile::TempDir {
    let dir = target_dir();
    if scenario.plain {
        for (path, contents) in scenario.old {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
    } else {
        Target::open(dir.path())
            .unwrap()
            .write_set(&files(scenario.old), &commit)
            .unwrap();
    }
    dir
}

#[test]
fn sigkill_at_every_step_leaves_the_old_or_the_new_set_and_the_next_mount_cleans_up() {
    for scenario in &SCENARIOS {
        let (old, new, next) = (
            as_map(scenario.old),
            as_map(scenario.new),
            as_map(scenario.next),
        );
        let mut reached_steps = Vec::new();
        for step in Step::ALL {
            let dir = prepare(scenario);
            let reached = write_and_kill_at(dir.path(), scenario, step);
            let seen = visible(dir.path());
            let swapped = Step::ALL.iter().position(|s| *s == step)
                >= Step::ALL.iter().position(|s| *s == Step::Swapped);
            if !reached {
                assert_eq!(seen, new, "{}: ran to the end", scenario.name);
            } else if !swapped {
                assert_eq!(seen, old, "{} killed at {step:?}", scenario.name);
            } else if !scenario.plain {
                assert_eq!(seen, new, "{} killed at {step:?}", scenario.name);
            } else {
                // Converting plain files: each name holds its old or its new value.
                assert_eq!(
                    seen.keys().collect::<Vec<_>>(),
                    new.keys().collect::<Vec<_>>(),
                    "{} killed at {step:?}",
                    scenario.name
                );
                for (name, value) in &seen {
                    assert!(
                        *value == old[name] || *value == new[name],
                        "{} killed at {step:?}: {name} = {value}",
                        scenario.name
                    );
                }
            }
            if reached {
                reached_steps.push(step);
            }

            // The next mount: its set exactly, and nothing left over.
            let target = Target::open(dir.path()).unwrap();
            target.write_set(&files(scenario.next), &commit).unwrap();
            assert_eq!(
                visible(dir.path()),
                next,
                "{} after a kill at {step:?}",
                scenario.name
            );
            let mut want = vec!["..data".to_owned(), "<data>".to_owned()];
            want.extend(
                scenario
                    .next
                    .iter()
                    .map(|(p, _)| p.split('/').next().unwrap().to_owned()),
            );
            want.sort();
            assert_eq!(
                listing(dir.path()),
                want,
                "{} after a kill at {step:?}",
                scenario.name
            );
        }
        let mut want: Vec<Step> = Step::ALL.to_vec();
        if !scenario.plain {
            // Nothing to replace when the old set is already the layout.
            want.retain(|s| *s != Step::NameReplaced);
        }
        assert_eq!(reached_steps, want, "{}", scenario.name);
    }
}

// ---- through the server ---------------------------------------------------

const OBJECTS: &str = r#"
- objectName: "tls/cert"
  objectType: secretsmanager
  objectAlias: tls.crt
- objectName: "tls/key"
  objectType: secretsmanager
  objectAlias: tls.key
- objectName: "/app/flag"
  objectType: ssmparameter
  objectAlias: flag
"#;

fn seed(h: &Harness) {
    let sm = h.backend.sm("us-east-1");
    sm.put("tls/cert", Answer::Value("cert-1", "v-cert-1"));
    sm.put("tls/key", Answer::Value("key-1", "v-key-1"));
    h.backend
        .ssm("us-east-1")
        .put("/app/flag", Answer::Value("on", "3"));
}

/// A first mount of `OBJECTS` into a fresh target (2 secrets fetched), and
/// the driver's rotation remount request carrying its versions.
async fn first_mount(
    driver_writes: bool,
) -> (Harness, tempfile::TempDir, MountResponse, MountRequest) {
    let mut h = Harness::start(driver_writes).await;
    seed(&h);
    let dir = target_dir();
    let first = h.mount(request(dir.path(), OBJECTS, &[])).await.unwrap();
    assert_eq!(h.backend.sm("us-east-1").fetched.load(Ordering::SeqCst), 2);
    let mut again = request(dir.path(), OBJECTS, &[]);
    again.current_object_version = first.object_version.clone();
    (h, dir, first, again)
}

#[tokio::test]
async fn driver_writes_remount_reads_back_through_the_drivers_layout() {
    let (mut h, dir, first, again) = first_mount(true).await;
    assert!(write_like_the_driver(dir.path(), &files_of(&first)));
    assert!(
        std::fs::symlink_metadata(dir.path().join("tls.crt"))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    let second = h.mount(again).await.unwrap();
    let fetched = |s: std::sync::Arc<support::memory::MemStore>| s.fetched.load(Ordering::SeqCst);
    assert_eq!(
        (
            fetched(h.backend.sm("us-east-1")),
            fetched(h.backend.ssm("us-east-1"))
        ),
        (2, 1),
        "unchanged objects are read back through the layout, not fetched"
    );
    assert_eq!(second.files, first.files);
    assert_eq!(second.object_version, first.object_version);
    h.stop().await;
}

#[tokio::test]
async fn provider_writes_remount_reads_back_its_own_layout() {
    let (mut h, dir, _, mut again) = first_mount(false).await;
    again.current_object_version.push(ObjectVersion {
        id: "other".into(),
        version: "1".into(),
    });
    h.mount(again).await.unwrap();
    assert_eq!(h.backend.sm("us-east-1").fetched.load(Ordering::SeqCst), 2);
    assert_eq!(
        visible(dir.path()),
        as_map(&[("tls.crt", "cert-1"), ("tls.key", "key-1"), ("flag", "on")])
    );
    h.stop().await;
}

#[tokio::test]
async fn a_symlinked_target_is_refused_before_anything_is_fetched() {
    let mut h = Harness::start(false).await;
    seed(&h);
    let base = tempfile::tempdir().unwrap();
    let real = base.path().join("elsewhere");
    std::fs::create_dir(&real).unwrap();
    let link: PathBuf = base.path().join("mount");
    std::os::unix::fs::symlink(&real, &link).unwrap();

    let err = h.mount(request(&link, OBJECTS, &[])).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert!(err.message().contains("symlink"), "{}", err.message());
    assert!(
        h.backend
            .sm("us-east-1")
            .last_items
            .lock()
            .unwrap()
            .is_empty(),
        "nothing fetched"
    );
    assert_eq!(
        std::fs::read_dir(&real).unwrap().count(),
        0,
        "nothing written"
    );
    h.stop().await;
}
