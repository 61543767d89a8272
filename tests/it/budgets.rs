//! Byte budgets and fair shares through the real binary against moto:
//! the per-mount bound (`--max-mount-bytes`) crossed by fetched values, by
//! decoded values and by a path's matches; the process-wide bound
//! (`--max-inflight-bytes`) that a mount can never fit, and that two mounts
//! share by waiting; a driver-writes answer past the driver's 4 MiB; and a
//! heavy mount that does not hold small mounts' AWS calls behind its own
//! (`--max-concurrent-fetches`). Each failure is checked for its code and
//! message, for nothing written, and for the process's peak memory.
//!
//! Ordering is explicit: the fault proxy holds a call until the test
//! releases it, and the test reads the provider's metrics (waits, calls
//! waiting) to know a mount is queued. Nothing is timed.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use support::loopback::{self, Pod};
use support::*;
use tonic::Code;

/// The pod every test mounts for.
const POD: Pod = Pod {
    namespace: "team",
    service_account: "app",
    role: "arn:aws:iam::123456789012:role/app",
    uid: "b7e1-uid",
    class: "budgets",
    token: "eyJhbGciOiJSUzI1NiJ9.BUDGETS-TOKEN-4d2a.sig",
};
/// Peak memory allowed for any of these runs: the values they fetch total
/// at most about 4.5 MB; the debug binary these tests run holds about
/// 42 MiB after its first mount, and peaked at 46.7 MiB in the largest run
/// here (driver-writes, 4.4 MB of files).
const PEAK_MIB: u64 = 56;
/// How long a test waits for the provider to reach a state it must reach.
const STATE_TIMEOUT: Duration = Duration::from_secs(60);

/// moto behind the counting proxy, a Kubernetes API knowing the service
/// account, and the binary with its metrics on a loopback port.
struct World {
    base: loopback::World,
    metrics: std::net::SocketAddr,
}

impl std::ops::Deref for World {
    type Target = loopback::World;

    fn deref(&self) -> &loopback::World {
        &self.base
    }
}

impl World {
    async fn start(flags: &[&str]) -> World {
        let metrics = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("its address")
        };
        let metrics_flag = format!("--metrics-addr={metrics}");
        let mut flags = flags.to_vec();
        flags.push(&metrics_flag);
        let base = loopback::World::start(POD, Path::new(env!("CARGO_BIN_EXE_ascp")), &flags).await;
        World { base, metrics }
    }

    /// Mounts into a fresh target and expects failure with `code` and a
    /// message holding every one of `needles`; checks that nothing was
    /// written. Returns the message.
    async fn mount_err(&self, name: &str, objects: &str, code: Code, needles: &[&str]) -> String {
        let target = self.target(name);
        let message = self.base.mount_err(&target, objects, code, needles).await;
        assert_empty(&target);
        message
    }

    /// The value of an unlabelled metric (0 when absent).
    async fn metric(&self, name: &str) -> f64 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.metrics)
            .await
            .expect("connect to /metrics");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("ask for /metrics");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read /metrics");
        out.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits until `ready` holds, failing with `what` and the log after
    /// [`STATE_TIMEOUT`] (a wedged provider, never a slow one).
    async fn until(&self, what: &str, mut ready: impl AsyncFnMut() -> bool) {
        let started = Instant::now();
        while !ready().await {
            assert!(
                started.elapsed() < STATE_TIMEOUT,
                "never reached: {what}; ascp log:\n{}",
                self.ascp.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Asserts the provider's peak memory so far is below [`PEAK_MIB`], and
/// shows it (`cargo test --test it budgets:: -- --nocapture`).
fn peak(w: &World, what: &str) {
    let memory = w.ascp.memory();
    eprintln!(
        "{what}: VmHWM {} KiB, VmRSS {} KiB",
        memory.hwm_kib, memory.rss_kib
    );
    w.ascp.assert_peak_below_mib(PEAK_MIB, what);
}

/// Nothing in `dir`: not a file, not the writer's hidden entries.
fn assert_empty(dir: &Path) {
    let entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read the target")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    assert!(entries.is_empty(), "written: {entries:?}");
}

fn secret_of(n: usize, fill: char) -> String {
    std::iter::repeat_n(fill, n).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mount_bound_counts_fetched_decoded_and_listed_bytes() {
    let w = World::start(&["--max-mount-bytes=100000"]).await;
    let sm = w.sm().await;
    for name in ["a", "b", "c"] {
        create_secret_string(&sm, name, &secret_of(40_000, 'v')).await;
    }
    // Fetched values: 40,000 + 40,000 fit, the third crosses.
    let objects = "- objectName: a\n  objectType: secretsmanager\n- objectName: b\n  objectType: secretsmanager\n- objectName: c\n  objectType: secretsmanager\n";
    w.mount_err(
        "fetched",
        objects,
        Code::InvalidArgument,
        &["more than 100000 bytes", "--max-mount-bytes", "at object c"],
    )
    .await;
    let ok = w.target("fetched-fit");
    w.mount_ok(&ok, "- objectName: a\n  objectType: secretsmanager\n- objectName: b\n  objectType: secretsmanager\n")
        .await;

    // Decoded values: 80,000 base64 characters fit alone; with the 60,000
    // bytes they decode to, they do not.
    let raw = vec![0x5au8; 60_000];
    let encoded = base64::engine::general_purpose::STANDARD.encode(&raw);
    create_secret_string(&sm, "blob", &encoded).await;
    let plain = w.target("decoded-fit");
    w.mount_ok(&plain, "- objectName: blob\n  objectType: secretsmanager\n")
        .await;
    w.mount_err(
        "decoded",
        "- objectName: blob\n  objectType: secretsmanager\n  objectEncoding: base64\n",
        Code::InvalidArgument,
        &["more than 100000 bytes", "at object blob (decoded)"],
    )
    .await;

    // A path's matches, one by one in name order: the fourth crosses.
    for name in ["big/m1", "big/m2", "big/m3", "big/m4", "big/m5"] {
        create_secret_string(&sm, name, &secret_of(30_000, 'p')).await;
    }
    w.mount_err(
        "listed",
        "- objectName: big/*\n  objectType: secretsmanager\n",
        Code::InvalidArgument,
        &["more than 100000 bytes", "at object big/* match big/m4"],
    )
    .await;
    assert_eq!(w.metric("ascp_budget_waits_total").await, 0.0);
    peak(&w, "mounts past --max-mount-bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_larger_than_the_process_budget_fails_at_once() {
    let w = World::start(&["--max-inflight-bytes=100000"]).await;
    let sm = w.sm().await;
    for name in ["a", "b"] {
        create_secret_string(&sm, name, &secret_of(60_000, 'w')).await;
    }
    w.mount_err(
        "never",
        "- objectName: a\n  objectType: secretsmanager\n- objectName: b\n  objectType: secretsmanager\n",
        Code::ResourceExhausted,
        &[
            "more than the 100000 bytes",
            "--max-inflight-bytes",
            "can never fit",
            "at object b",
        ],
    )
    .await;
    // It did not wait for room that cannot come, and gave back what it held.
    assert_eq!(w.metric("ascp_budget_waits_total").await, 0.0);
    assert_eq!(w.metric("ascp_budget_bytes_in_use").await, 0.0);
    peak(&w, "a mount past --max-inflight-bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_mounts_that_fit_alone_take_turns() {
    // Each mount of one secret reserves 64 KiB; two do not fit in 100,000.
    let w = World::start(&["--max-inflight-bytes=100000"]).await;
    let sm = w.sm().await;
    create_secret_string(&sm, "first", "one").await;
    create_secret_string(&sm, "second", "two").await;
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    w.net.proxy.add_rule(
        Rule::new()
            .operation("GetSecretValue")
            .hold(release.clone())
            .times(1),
    );
    let (a, b) = (w.target("first"), w.target("second"));
    let first = w.mount(&a, "- objectName: first\n  objectType: secretsmanager\n");
    let second = async {
        // The first mount holds its reservation while its call is held.
        w.until("the first mount's call reaches AWS", async || {
            w.net.proxy.calls("GetSecretValue") == 1
        })
        .await;
        let mount = w.mount(&b, "- objectName: second\n  objectType: secretsmanager\n");
        let waited = async {
            w.until("the second mount waits for room", async || {
                w.metric("ascp_budget_waits_total").await == 1.0
            })
            .await;
            // Waiting, it asked AWS for nothing.
            assert_eq!(w.net.proxy.calls("GetSecretValue"), 1);
            release.add_permits(1);
        };
        futures::join!(mount, waited).0
    };
    let (first, second) = futures::join!(first, second);
    for (result, file, value) in [
        (first, a.join("first"), "one"),
        (second, b.join("second"), "two"),
    ] {
        let response = result.unwrap_or_else(|s| panic!("{:?}: {}", s.code(), s.message()));
        assert_eq!(response.object_version.len(), 1);
        assert_eq!(std::fs::read_to_string(file).unwrap(), value);
    }
    let order: Vec<String> = w.net.proxy.bodies("GetSecretValue");
    assert_eq!(order.len(), 2, "{order:?}");
    assert!(order[0].contains("\"first\"") && order[1].contains("\"second\""));
    assert_eq!(w.metric("ascp_budget_bytes_in_use").await, 0.0);
    peak(&w, "two mounts taking turns");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_writes_past_the_receive_limit_is_our_error() {
    // One 60,000-byte JSON value and 72 jmesPath copies of it: 4.4 MB of
    // files from one secret.
    let value = serde_json::json!({ "k": secret_of(60_000, 'j') }).to_string();
    let entries: String = (0..72)
        .map(|i| format!("    - path: k\n      objectAlias: k{i}\n"))
        .collect();
    let objects =
        format!("- objectName: doc\n  objectType: secretsmanager\n  jmesPath:\n{entries}");

    // The default bound in driver-writes mode is the driver's response.
    let w = World::start(&["--driver-writes-secrets"]).await;
    create_secret_string(&w.sm().await, "doc", &value).await;
    w.mount_err(
        "default",
        &objects,
        Code::InvalidArgument,
        &[
            "more than 4128768 bytes",
            "--max-mount-bytes",
            "at object doc jmesPath k",
        ],
    )
    .await;
    peak(&w, "driver-writes past the default bound");
    drop(w);

    // Raised above it, the response itself is refused, by us.
    let w = World::start(&["--driver-writes-secrets", "--max-mount-bytes=16Mi"]).await;
    create_secret_string(&w.sm().await, "doc", &value).await;
    w.mount_err(
        "raised",
        &objects,
        Code::ResourceExhausted,
        &[
            "bytes the driver reads in one response",
            "--driver-writes-secrets",
        ],
    )
    .await;
    peak(&w, "driver-writes past the driver's limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavy_mount_does_not_queue_small_mounts_behind_its_calls() {
    // One AWS call at a time in the whole process: contention is certain.
    let w = World::start(&["--max-concurrent-fetches=1"]).await;
    let sm = w.sm().await;
    const HEAVY: usize = 20;
    const SMALL: usize = 5;
    for i in 0..HEAVY {
        create_secret_string(&sm, &format!("heavy/s{i:02}"), "h").await;
    }
    for i in 0..SMALL {
        create_secret_string(&sm, &format!("small-{i}"), "s").await;
    }
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    w.net.proxy.add_rule(
        Rule::new()
            .operation("GetSecretValue")
            .hold(release.clone())
            .times(1),
    );
    let heavy_target = w.target("heavy");
    let heavy = w.mount(
        &heavy_target,
        "- objectName: heavy/*\n  objectType: secretsmanager\n",
    );
    let small_targets: Vec<PathBuf> = (0..SMALL)
        .map(|i| w.target(&format!("small-{i}")))
        .collect();
    let small_objects: Vec<String> = (0..SMALL)
        .map(|i| format!("- objectName: small-{i}\n  objectType: secretsmanager\n"))
        .collect();
    let smalls = async {
        // The heavy mount's first value is held with the one permit; its
        // other values wait for it.
        w.until("the heavy mount's calls queue", async || {
            w.net.proxy.calls("GetSecretValue") == 1
                && w.metric("ascp_aws_calls_waiting").await == (HEAVY - 1) as f64
        })
        .await;
        let mounts = futures::future::join_all(
            small_targets
                .iter()
                .zip(&small_objects)
                .map(|(target, objects)| w.mount(target, objects)),
        );
        let queued = async {
            w.until("the small mounts' calls queue too", async || {
                w.metric("ascp_aws_calls_waiting").await == (HEAVY - 1 + SMALL) as f64
            })
            .await;
            release.add_permits(1);
        };
        futures::join!(mounts, queued).0
    };
    let (heavy, smalls) = futures::join!(heavy, smalls);
    let heavy = heavy.unwrap_or_else(|s| panic!("heavy: {:?}: {}", s.code(), s.message()));
    assert_eq!(heavy.object_version.len(), HEAVY);
    for (i, small) in smalls.into_iter().enumerate() {
        let small = small.unwrap_or_else(|s| panic!("small-{i}: {:?}: {}", s.code(), s.message()));
        assert_eq!(small.object_version.len(), 1);
    }
    // The calls in the order AWS saw them (one at a time): the small
    // mounts' come right after the heavy mount's next one, round robin,
    // not after all of its own (a FIFO bound would put 20 heavy calls
    // first).
    let order: Vec<bool> = w
        .net
        .proxy
        .bodies("GetSecretValue")
        .iter()
        .map(|body| body.contains("small-"))
        .collect();
    assert_eq!(order.len(), HEAVY + SMALL, "{order:?}");
    let last_small = order.iter().rposition(|small| *small).unwrap();
    let heavy_before = order[..last_small].iter().filter(|small| !**small).count();
    assert_eq!(heavy_before, 2, "{order:?}");
    assert_eq!(w.metric("ascp_aws_calls_waiting").await, 0.0);
    peak(&w, "a heavy mount among small ones");
}
