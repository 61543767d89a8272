//! A panic's payload never reaches the driver or the log: a store that
//! panics with a recognizable message inside a mount, with the binary's
//! panic hook and a captured log. Its own test binary, because the panic
//! hook and the log subscriber are process-wide.

mod support;

use support::log::CapturedLog;
use support::memory::Harness;
use tonic::Code;

#[tokio::test]
async fn a_panic_in_a_mount_reaches_neither_the_status_nor_the_log() {
    let log = CapturedLog::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    ascp::telemetry::install_panic_hook();

    let mut h = Harness::start(false).await;
    let status = h.mount_a_panicking_store().await;
    h.stop().await;

    assert_eq!(status.code(), Code::Internal);
    assert!(
        !status.message().contains("exploded"),
        "{}",
        status.message()
    );
    let log = log.text();
    assert!(log.contains("panic (payload withheld)"), "{log}");
    assert!(log.contains("mount task failed"), "{log}");
    assert!(!log.contains("exploded"), "{log}");
}
