//! The target directory's atomic-writer layout: whole-set rotations under a
//! racing reader, read-back through the layout the driver writes, and a
//! symlinked target refused before anything is fetched. A writer killed
//! with SIGKILL after each step is the `output_crash` binary's test.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use tonic::Code;

use ascp::output::{Target, Written};
use ascp::proto::{MountRequest, MountResponse, ObjectVersion};

use crate::support;
use support::driver_layout::{files_of, write_like_the_driver};
use support::layout::{as_map, commit, files, listing, target_dir, visible};
use support::memory::{Answer, Harness, request};

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
