//! Issue 22: the node backs off as a whole when AWS throttles it, through
//! the real binary against moto behind the fault proxy
//! (`tests/support/throttle.rs`). Counts are exact or bounded by counts;
//! nothing here asserts a duration. The provider checks versions on every
//! remount (`--rotation-check-window=0s`), so every remount needs AWS
//! whatever the machine's speed: with a window, a fast round is answered
//! from the node's checks and never meets the throttling; the test of
//! recovery within one window runs with a window. The node's backoff ends
//! on an answer that is not throttling, to a probe: the one wait, before
//! throttling stops, is one probe interval at the floor
//! (`ascp::aws::throttle::probe_interval`), or one window when the
//! region's two services probe half an interval apart, after which a probe
//! slot is free by construction.

use crate::support;

use std::time::Duration;

use support::rotation::{Node, Pod, read};
use support::throttle::{Round, free_addr, round, sample, scrape, throttle_stores};
use support::{Rule, put_secret_string};
use tonic::Code;

const SM: &str = r#"service="secretsmanager",region="us-east-1""#;
const SSM: &str = r#"service="ssm",region="us-east-1""#;
const STS: &str = r#"service="sts",region="us-east-1""#;
const RATE: &str = "ascp_aws_allowed_calls_per_second";
const HELD_BACK: &str = "ascp_aws_calls_held_back_total";

fn binary() -> std::path::PathBuf {
    env!("CARGO_BIN_EXE_ascp").into()
}

/// Every failure names throttling, as RESOURCE_EXHAUSTED, never UNAVAILABLE.
fn assert_throttling_failures(round: &Round, what: &str) {
    for (code, message) in &round.failed {
        assert_eq!(*code, Code::ResourceExhausted, "{what}: {message}");
        assert!(
            message.to_lowercase().contains("throttl"),
            "{what}: the message does not name throttling: {message}"
        );
    }
}

/// Nothing visible was written in a target that never mounted.
fn assert_empty(pod: &Pod) {
    let entries: Vec<_> = std::fs::read_dir(&pod.target)
        .expect("read the target")
        .collect();
    assert!(entries.is_empty(), "{} has {entries:?}", pod.name);
}

// 20 pods remounting (driver v1.6, no versions), 4 at a time, each remount
// checking its versions; every Secrets Manager and SSM call throttled for a while. While
// throttled, a remount costs no more AWS calls than a calm one (and at most
// 3), fails naming throttling, and keeps its files; first mounts fail
// naming throttling (or succeed after waiting), never UNAVAILABLE, and
// write nothing; once throttling stops, remounts succeed after the backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_backs_off_as_a_whole_while_throttled() {
    let metrics = free_addr();
    let flags = [
        "--rotation-check-window=0s".to_owned(),
        format!("--metrics-addr={metrics}"),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let node = Node::start(&binary(), &flags).await;
    let objects = node.seed("thr", 3, 2, false).await;
    let all = node.pods(24);
    let (pods, fresh) = all.split_at(20);

    let first = round(&node, pods, &objects).await;
    assert_eq!(first.ok, 20, "first mounts: {:?}", first.failed);
    let mut calm = Round::default();
    for _ in 0..3 {
        calm.add(round(&node, pods, &objects).await);
    }
    assert_eq!(calm.ok, 60, "calm remounts: {:?}", calm.failed);
    // One calm remount alone: what each pod costs.
    let calm_single = round(&node, &pods[..1], &objects).await.aws;
    assert_eq!(
        calm_single, 4,
        "a calm remount checks 3 secrets and 1 batch of parameters"
    );

    throttle_stores(&node.net.proxy);
    let mut throttled = Round::default();
    for _ in 0..5 {
        throttled.add(round(&node, pods, &objects).await);
    }
    assert_eq!(throttled.mounts(), 100);
    assert_throttling_failures(&throttled, "throttled remounts");
    assert!(
        !throttled.failed.is_empty(),
        "no remount saw the throttling"
    );
    assert!(
        throttled.per_mount() <= calm.per_mount() && throttled.per_mount() <= 3.0,
        "AWS calls per remount: {} throttled ({} calls), {} calm ({} calls)",
        throttled.per_mount(),
        throttled.aws,
        calm.per_mount(),
        calm.aws
    );
    eprintln!(
        "AWS calls per remount: calm {:.2} ({} / {}), throttled {:.2} ({} / {}, {} failed)",
        calm.per_mount(),
        calm.aws,
        calm.mounts(),
        throttled.per_mount(),
        throttled.aws,
        throttled.mounts(),
        throttled.failed.len()
    );
    // No remount makes more calls than a calm one, nor more than ASCP's 3:
    // one remount at a time, each at most one probe per service.
    for pod in pods.iter().take(10) {
        let alone = round(&node, std::slice::from_ref(pod), &objects).await;
        assert_eq!(alone.failed.len(), 1, "{} while throttled", pod.name);
        assert_throttling_failures(&alone, "a remount alone, throttled");
        assert!(
            alone.aws <= calm_single.min(3),
            "{}: {} calls throttled, {calm_single} calm",
            pod.name,
            alone.aws
        );
    }
    // The pods keep their files.
    for pod in pods {
        assert_eq!(read(pod, "thr_s00"), "s0-v1");
        assert_eq!(read(pod, "_thr_p00"), "p0-v1");
    }
    // The limiter's state: backing off, and calls held back.
    let text = scrape(metrics).await;
    let rate = sample(&text, RATE, SSM).expect("the SSM limiter's rate");
    assert!(rate > 0.0, "SSM backing off: {rate}\n{text}");
    assert!(sample(&text, HELD_BACK, SSM).unwrap_or(0.0) > 0.0, "{text}");

    // First mounts while throttled: at most one retry per call, each
    // failing naming throttling or succeeding after waiting, writing
    // nothing when they fail.
    let before = node.net.proxy.total_calls();
    let first_mounts = round(&node, fresh, &objects).await;
    let calls = node.net.proxy.total_calls() - before;
    assert_throttling_failures(&first_mounts, "first mounts while throttled");
    // Per first mount: STS once, 3 GetSecretValue and 1 GetParameters,
    // each sent at most twice.
    assert!(calls <= 4 * (1 + 2 * 4), "{calls} calls for 4 first mounts");
    for pod in fresh {
        if pod.target.join("thr_s00").exists() {
            assert_eq!(read(pod, "_thr_p01"), "p1-v1");
        } else {
            assert_empty(pod);
        }
    }

    // Throttling stops. Once a probe slot is free (one probe interval at
    // the floor, by construction), a remount's first call to each service
    // is its probe; the answers end the backoff, and the round after that
    // succeeds everywhere and sees the secret changed meanwhile.
    node.net.proxy.clear_rules();
    tokio::time::sleep(ascp::aws::throttle::probe_interval(Duration::ZERO)).await;
    let probes = round(&node, &pods[..1], &objects).await;
    assert!(
        probes.aws <= calm_single,
        "the probing remount: {} calls",
        probes.aws
    );
    assert_throttling_failures(&probes, "the probing remount");
    put_secret_string(&node.sm, "thr/s00", "s0-v2", &[]).await;
    let after = round(&node, pods, &objects).await;
    assert_eq!(after.ok, 20, "after throttling: {:?}", after.failed);
    for pod in pods {
        assert_eq!(read(pod, "thr_s00"), "s0-v2");
    }
    let text = scrape(metrics).await;
    assert_eq!(sample(&text, RATE, SSM), Some(0.0), "{text}");
    node.ascp.assert_peak_below_mib(64, "throttling");
}

// AssumeRoleWithWebIdentity throttled on first mounts: each mount's STS
// call is sent at most twice (once, and once more when the node's backoff
// allows), not three times per attempt as the SDK's own retries would, and
// the mount fails naming throttling with nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_throttling_backs_off_too() {
    let metrics = free_addr();
    let flag = format!("--metrics-addr={metrics}");
    // A probe interval of 1 s at the floor, within the mounts' deadline.
    let flags = [flag.as_str(), "--rotation-check-window=0s"];
    let node = Node::start(&binary(), &flags).await;
    let objects = node.seed("sts", 1, 0, false).await;
    let pods = node.pods(4);
    let rule = node.net.proxy.add_rule(
        Rule::new()
            .operation("AssumeRoleWithWebIdentity")
            .respond_with(400, "Throttling", "Rate exceeded"),
    );
    let first = round(&node, &pods, &objects).await;
    assert_eq!(first.failed.len(), 4, "{:?}", first.failed);
    assert_throttling_failures(&first, "first mounts, STS throttled");
    assert_eq!(node.net.proxy.fired(rule), 8);
    assert_eq!(node.net.proxy.calls("GetSecretValue"), 0);
    for pod in &pods {
        assert_empty(pod);
    }
    let text = scrape(metrics).await;
    let rate = sample(&text, RATE, STS).expect("the STS limiter's rate");
    assert!(rate > 0.0, "STS backing off: {rate}\n{text}");

    // Throttling over: first mounts wait for their slots within their
    // deadline; the first answer ends the backoff, and the mounts succeed.
    node.net.proxy.clear_rules();
    let again = round(&node, &pods, &objects).await;
    assert_eq!(again.ok, 4, "{:?}", again.failed);
}

// With a 2 s check window the node probes each throttled service once per
// 4 s at the floor, Secrets Manager and SSM half of that (one window)
// apart; a service that stops throttling lets the other probe at once.
// So, once both are at the floor and throttling stops, one window later a
// probe slot is free (by construction), and the remount after the probes
// succeeds: at most two remounts, one at a time, fail before one succeeds,
// none with more calls than a calm remount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_throttling_stops_remounts_succeed_within_one_window() {
    const WINDOW: Duration = Duration::from_secs(2);
    let metrics = free_addr();
    let flags = [
        format!("--rotation-check-window={}s", WINDOW.as_secs()),
        format!("--metrics-addr={metrics}"),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let node = Node::start(&binary(), &flags).await;
    let objects = node.seed("win", 3, 2, false).await;
    let pods = node.pods(8);
    let first = round(&node, &pods, &objects).await;
    assert_eq!(first.ok, 8, "first mounts: {:?}", first.failed);
    let calm = {
        let before = node.net.proxy.total_calls();
        tokio::time::sleep(WINDOW).await;
        let alone = round(&node, &pods[..1], &objects).await;
        assert_eq!(alone.ok, 1, "{:?}", alone.failed);
        node.net.proxy.total_calls() - before
    };

    // Throttled until both services' limiters are at the floor.
    throttle_stores(&node.net.proxy);
    let floor = 1.0 / ascp::aws::throttle::probe_interval(WINDOW).as_secs_f64();
    let mut at_floor = false;
    for _ in 0..600 {
        let r = round(&node, &pods, &objects).await;
        assert_throttling_failures(&r, "throttled remounts");
        let text = scrape(metrics).await;
        if sample(&text, RATE, SM) == Some(floor) && sample(&text, RATE, SSM) == Some(floor) {
            at_floor = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(at_floor, "{}", scrape(metrics).await);

    node.net.proxy.clear_rules();
    tokio::time::sleep(WINDOW).await;
    let mut failed = Vec::new();
    for pod in pods.iter().cycle().take(3) {
        let alone = round(&node, std::slice::from_ref(pod), &objects).await;
        assert!(alone.aws <= calm, "{} calls, {calm} calm", alone.aws);
        if alone.ok == 1 {
            break;
        }
        assert_throttling_failures(&alone, "a probing remount");
        failed.push((alone.aws, alone.failed));
    }
    assert!(
        failed.len() <= 2,
        "remounts failed after throttling stopped (calls, failure): {failed:?}"
    );
    let after = round(&node, &pods, &objects).await;
    assert_eq!(after.ok, 8, "after throttling: {:?}", after.failed);
}
