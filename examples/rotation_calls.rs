//! What rotation costs on driver v1.6, in calls: the scenarios of issue 11
//! (`tests/support/rotation.rs`, whose counts `tests/it/rotation.rs` asserts)
//! run through the `ascp` binary against moto, and printed as a Markdown
//! table for docs/how-it-works.md and `benchmarks/README.md`.
//!
//! - one pod, 40 secrets + 25 parameters, 5 unchanged remounts without
//!   versions: calls per remount, default and with
//!   `--batch-get-secret-value`, inside the check window and with every
//!   remount checked (`--rotation-check-window=0s`, what remounts spaced
//!   beyond the window cost); the same with every object pinned;
//! - 20 pods, each mounting the same 10 secrets + 5 parameters, 5 rotation
//!   rounds (first mounts excluded): under two IAM roles inside one window;
//!   under one role spaced beyond a `--window-ms` window with one secret
//!   changed before round 4 (issue 22); under two roles with a parameter
//!   changed before round 2. Each round's calls, then the total.
//!
//! Counts do not depend on the machine; only the run time does.
//!
//! ```sh
//! scripts/install-moto.sh
//! cargo build --bin ascp --example rotation_calls
//! target/debug/examples/rotation_calls [--window-ms 15000] [--ascp PATH]
//! ```

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use support::rotation::{Change, Counts, Scenario, Spacing, many_pods, one_pod, total};

const BATCH: &str = "--batch-get-secret-value=true";
const EVERY_REMOUNT: &str = "--rotation-check-window=0s";

#[derive(Parser)]
#[command(about = "Rotation call counts of the ascp binary against moto (see the source's header)")]
struct Args {
    /// The provider binary; default: `ascp` in the directory above this
    /// example's (target/<profile>/ascp).
    #[arg(long)]
    ascp: Option<PathBuf>,
    /// The check window of the spaced 20-pod runs; rounds wait it out.
    #[arg(long, default_value_t = 15000)]
    window_ms: u64,
}

fn row(scenario: &str, counts: &Counts) {
    println!("| {scenario} | {} | {counts} |", counts.aws_total);
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let binary = common::provider_binary(args.ascp, "cargo build --bin ascp");
    let window = Duration::from_millis(args.window_ms);

    println!("| scenario | AWS calls | detail |");
    println!("|---|---:|---|");
    for (name, flags, pinned) in [
        ("default", &[][..], false),
        (
            "default, every remount checked",
            &[EVERY_REMOUNT][..],
            false,
        ),
        ("batching", &[BATCH][..], false),
        (
            "batching, every remount checked",
            &[BATCH, EVERY_REMOUNT][..],
            false,
        ),
        (
            "all pinned, every remount checked",
            &[EVERY_REMOUNT][..],
            true,
        ),
    ] {
        let (_, remounts) = one_pod(&binary, flags, 40, 25, pinned, 5).await;
        row(&format!("1 pod 40+25, {name}: remount 1"), &remounts[0]);
        row(
            &format!("1 pod 40+25, {name}: remounts 2-5, each"),
            &remounts[1],
        );
    }
    // Issue 22's scenario: one role, a secret changed before round 4; and
    // a parameter changed before round 2 under two roles.
    for (name, flags, spacing, roles, change) in [
        (
            "default, 2 roles, inside one window",
            &[][..],
            Spacing::InsideWindow,
            2,
            None,
        ),
        (
            "default, 1 role, beyond the window, a secret changed before round 4",
            &[][..],
            Spacing::BeyondWindow(window),
            1,
            Some((Change::Secret, 4)),
        ),
        (
            "batching, 2 roles, inside one window",
            &[BATCH][..],
            Spacing::InsideWindow,
            2,
            None,
        ),
        (
            "batching, 1 role, beyond the window, a secret changed before round 4",
            &[BATCH][..],
            Spacing::BeyondWindow(window),
            1,
            Some((Change::Secret, 4)),
        ),
        (
            "default, 2 roles, beyond the window, a parameter changed before round 2",
            &[][..],
            Spacing::BeyondWindow(window),
            2,
            Some((Change::Parameter, 2)),
        ),
    ] {
        let scenario = Scenario::twenty_pods(roles, change);
        let run = many_pods(&binary, flags, spacing, &scenario).await;
        for (i, round) in run.rounds.iter().enumerate() {
            row(&format!("20 pods 10+5, {name}: round {}", i + 1), round);
        }
        let updated = match change {
            Some(_) => format!(" ({} of 20 pods updated)", run.updated),
            None => String::new(),
        };
        row(
            &format!("20 pods 10+5, {name}: 5 rounds{updated}"),
            &total(&run.rounds),
        );
    }
}
