//! A panic's payload never reaches the driver or the log: a store that
//! panics with a recognizable message inside a mount, with the binary's
//! panic hook and a captured log. Its own test binary, because the panic
//! hook and the log subscriber are process-wide.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use support::memory::Harness;
use tonic::Code;

/// The log, as the subscriber writes it.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_panic_in_a_mount_reaches_neither_the_status_nor_the_log() {
    let log = Captured::default();
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
    let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("panic (payload withheld)"), "{log}");
    assert!(log.contains("mount task failed"), "{log}");
    assert!(!log.contains("exploded"), "{log}");
}
