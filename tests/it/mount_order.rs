//! The order of the mounts of one target: the newest wins, whatever order
//! they finish in, and a mount whose caller gave up (its deadline passed, or
//! its request was dropped) makes nothing visible afterwards. Stores hold
//! their answers at gates the tests open in a chosen order; deadlines run on
//! tokio's paused clock.

use crate::support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ascp::mount::{MountConfig, Mounter};
use ascp::proto::MountRequest;
use support::memory::{Answer, Gate, Harness, MemBackend, request};
use tonic::Code;

const REGION: &str = "us-east-1";

/// A mount of `name` into `target` as the file `db`.
fn mount_of(target: &Path, name: &str) -> MountRequest {
    request(
        target,
        &format!("- objectName: {name}\n  objectType: secretsmanager\n  objectAlias: db\n"),
        &[],
    )
}

fn mounter(backend: &Arc<MemBackend>, driver_writes: bool, timeout: Duration) -> Arc<Mounter> {
    Arc::new(Mounter::new(
        backend.clone(),
        backend.clone(),
        MountConfig {
            driver_writes_secrets: driver_writes,
            env_region: None,
            timeout,
        },
    ))
}

fn mounted(target: &Path) -> Option<String> {
    std::fs::read_to_string(target.join("db")).ok()
}

/// Two gated objects, `old` (arriving first) and `new`.
fn two_gated(backend: &MemBackend) -> (Arc<Gate>, Arc<Gate>) {
    let (old, new) = (Gate::new(), Gate::new());
    backend
        .sm(REGION)
        .put("old", Answer::Gated("old-value", "v1", old.clone()));
    backend
        .sm(REGION)
        .put("new", Answer::Gated("new-value", "v2", new.clone()));
    (old, new)
}

#[tokio::test]
async fn concurrent_mounts_of_one_target_leave_the_newest_value() {
    for newer_finishes_first in [true, false] {
        let backend = Arc::new(MemBackend::default());
        let mounter = mounter(&backend, false, Duration::from_secs(60));
        let (old, new) = two_gated(&backend);
        let target = tempfile::tempdir().unwrap();

        let older = tokio::spawn({
            let (m, r) = (mounter.clone(), mount_of(target.path(), "old"));
            async move { m.handle(r).await }
        });
        old.entered().await;
        let newer = tokio::spawn({
            let (m, r) = (mounter.clone(), mount_of(target.path(), "new"));
            async move { m.handle(r).await }
        });
        new.entered().await;
        assert_eq!(mounter.targets_in_flight(), 1);

        if newer_finishes_first {
            new.open();
            newer.await.unwrap().unwrap();
            assert_eq!(mounted(target.path()).as_deref(), Some("new-value"));
            old.open();
            let err = older.await.unwrap().unwrap_err();
            assert_eq!(err.code(), Code::Aborted, "{}", err.full_message());
            assert!(err.full_message().contains("newer mount"), "{err}");
        } else {
            old.open();
            older.await.unwrap().unwrap();
            assert_eq!(mounted(target.path()).as_deref(), Some("old-value"));
            new.open();
            newer.await.unwrap().unwrap();
        }
        assert_eq!(
            mounted(target.path()).as_deref(),
            Some("new-value"),
            "newer finishes first: {newer_finishes_first}"
        );
        assert_eq!(mounter.targets_in_flight(), 0, "the registry empties");
    }
}

#[tokio::test]
async fn in_driver_writes_mode_an_older_answer_is_refused_after_a_newer() {
    let backend = Arc::new(MemBackend::default());
    let mounter = mounter(&backend, true, Duration::from_secs(60));
    let (old, new) = two_gated(&backend);
    let target = tempfile::tempdir().unwrap();
    let older = tokio::spawn({
        let (m, r) = (mounter.clone(), mount_of(target.path(), "old"));
        async move { m.handle(r).await }
    });
    old.entered().await;
    new.open();
    let answer = mounter
        .handle(mount_of(target.path(), "new"))
        .await
        .unwrap();
    assert_eq!(answer.files[0].contents, b"new-value");
    old.open();
    let err = older.await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(mounted(target.path()), None, "the driver writes, not us");
}

#[tokio::test(start_paused = true)]
async fn a_mount_past_its_deadline_never_leaves_its_value() {
    let backend = Arc::new(MemBackend::default());
    let mounter = mounter(&backend, false, Duration::from_secs(100));
    let (old, new) = two_gated(&backend);
    let target = tempfile::tempdir().unwrap();

    let late = tokio::spawn({
        let (m, r) = (mounter.clone(), mount_of(target.path(), "old"));
        async move { m.handle(r).await }
    });
    old.entered().await;
    // Nothing else runs, so the paused clock jumps to the deadline.
    let err = late.await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    old.dropped().await;
    old.open();
    assert_eq!(mounted(target.path()), None, "the late mount wrote nothing");

    new.open();
    mounter
        .handle(mount_of(target.path(), "new"))
        .await
        .unwrap();
    assert_eq!(mounted(target.path()).as_deref(), Some("new-value"));
    assert_eq!(mounter.targets_in_flight(), 0);
}

#[tokio::test]
async fn a_dropped_request_writes_nothing() {
    let backend = MemBackend::default();
    let gate = Gate::new();
    backend
        .sm(REGION)
        .put("old", Answer::Gated("old-value", "v1", gate.clone()));
    let h = Harness::start_with(backend, false).await;
    let target = tempfile::tempdir().unwrap();
    let call = tokio::spawn({
        let mut client = h.client.clone();
        let request = mount_of(target.path(), "old");
        async move { client.mount(request).await }
    });
    gate.entered().await;
    // The driver gives up: its request is reset, the server drops the
    // handler, and the mount is cancelled (its fetch dropped).
    call.abort();
    gate.dropped().await;
    gate.open();
    assert_eq!(mounted(target.path()), None);
    h.stop().await;
}
