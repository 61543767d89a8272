//! What throttling costs the node, in AWS calls: issue 22's scenario
//! (`tests/support/throttle.rs`, whose outcomes `tests/it/throttle.rs`
//! asserts) through the `ascp` binary against moto behind the fault proxy.
//! 20 pods under two IAM roles mount the same 3 secrets + 2 parameters,
//! then remount as driver v1.6 does (no versions), 4 at a time, round after
//! round, with a 2 s check window: calm for a while, then every Secrets
//! Manager and SSM call answered `ThrottlingException` for 20 s, then calm
//! again. Prints, per phase, AWS calls per second and per remount as a
//! Markdown table, then how long after throttling stopped the first remount
//! succeeded and the last failed, in seconds and check windows.
//!
//! Calls per remount do not depend on the machine; calls per second do
//! (compare the phases of one run, not runs).
//!
//! ```sh
//! scripts/install-moto.sh
//! cargo build --bin ascp --example throttle
//! target/debug/examples/throttle [--calm-secs 30] [--throttled-secs 20] [--ascp PATH]
//! ```

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use support::rotation::{Node, Pod};
use support::throttle::{Round, round, throttle_stores};

#[derive(Parser)]
#[command(about = "AWS calls of the ascp binary while AWS throttles it (see the source's header)")]
struct Args {
    /// The provider binary; default: `ascp` in the directory above this
    /// example's (target/<profile>/ascp).
    #[arg(long)]
    ascp: Option<PathBuf>,
    /// Length of the calm phases, in seconds.
    #[arg(long, default_value_t = 30)]
    calm_secs: u64,
    /// Length of the throttled phase, in seconds.
    #[arg(long, default_value_t = 20)]
    throttled_secs: u64,
}

/// The check window the node runs with.
const WINDOW: Duration = Duration::from_secs(2);

/// What one phase did.
struct Phase {
    /// Its rounds together.
    total: Round,
    /// How long it lasted.
    took: Duration,
    /// When the last round with a failure ended.
    last_failure: Option<Duration>,
    /// When the first remount that succeeded was answered.
    first_success: Option<Duration>,
}

/// Rounds of remounts until `length` has passed.
async fn phase(node: &Node, pods: &[Pod], objects: &str, length: Duration) -> Phase {
    let started = Instant::now();
    let mut total = Round::default();
    let (mut last_failure, mut first_success) = (None, None);
    while started.elapsed() < length {
        let r = round(node, pods, objects).await;
        if !r.failed.is_empty() {
            last_failure = Some(started.elapsed());
        }
        if r.ok > 0 && first_success.is_none() {
            first_success = Some(started.elapsed());
        }
        total.add(r);
    }
    Phase {
        total,
        took: started.elapsed(),
        last_failure,
        first_success,
    }
}

fn row(name: &str, phase: &Phase) -> f64 {
    let (r, took) = (&phase.total, phase.took);
    let per_second = r.aws as f64 / took.as_secs_f64();
    println!(
        "| {name} | {:.1} | {} | {} | {} | {per_second:.1} | {:.2} |",
        took.as_secs_f64(),
        r.mounts(),
        r.failed.len(),
        r.aws,
        r.per_mount()
    );
    per_second
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let binary = common::provider_binary(args.ascp, "cargo build --bin ascp");
    let window = format!("--rotation-check-window={}s", WINDOW.as_secs());
    let node = Node::start(&binary, &[window.as_str()]).await;
    let objects = node.seed("thr", 3, 2, false).await;
    let pods = node.pods(20);
    let first = round(&node, &pods, &objects).await;
    assert_eq!(first.ok, 20, "first mounts failed: {:?}", first.failed);

    let calm = phase(&node, &pods, &objects, Duration::from_secs(args.calm_secs)).await;
    throttle_stores(&node.net.proxy);
    let throttled = phase(
        &node,
        &pods,
        &objects,
        Duration::from_secs(args.throttled_secs),
    )
    .await;
    node.net.proxy.clear_rules();
    let after = phase(&node, &pods, &objects, Duration::from_secs(args.calm_secs)).await;

    println!(
        "| phase | seconds | remounts | failed | AWS calls | AWS calls/s | AWS calls per remount |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let calm_rate = row("calm", &calm);
    let throttled_rate = row("throttled", &throttled);
    row("after", &after);
    println!(
        "\nthrottled calls/s: {:.1} % of calm",
        100.0 * throttled_rate / calm_rate
    );
    let when = |t: Duration| {
        let windows = t.as_secs_f64() / WINDOW.as_secs_f64();
        format!("{:.1} s ({windows:.2} windows)", t.as_secs_f64())
    };
    match after.first_success {
        Some(t) => println!(
            "after throttling stopped, the first remount succeeded within {}",
            when(t)
        ),
        None => println!("after throttling stopped, no remount succeeded"),
    }
    match after.last_failure {
        Some(t) => println!(
            "after throttling stopped, remounts failed for {} (the node's recovery)",
            when(t)
        ),
        None => println!("after throttling stopped, every remount succeeded"),
    }
}
