//! What rotation costs on driver v1.6, in calls: the scenarios of issue 11
//! (`tests/support/rotation.rs`, whose counts `tests/rotation.rs` asserts)
//! run through the `ascp` binary against moto, and printed as a Markdown
//! table for docs/how-it-works.md and `benchmarks/README.md`.
//!
//! - one pod, 40 secrets + 25 parameters, 5 unchanged remounts without
//!   versions: calls per remount, default and with
//!   `--batch-get-secret-value`, inside the check window and with every
//!   remount checked (`--rotation-check-window=0s`, what remounts spaced
//!   beyond the window cost); the same with every object pinned;
//! - 20 pods under two IAM roles, each mounting the same 10 secrets + 5
//!   parameters, 5 rotation rounds (first mounts excluded), inside one
//!   window and spaced beyond a `--window-ms` window; then the round after
//!   one secret changed.
//!
//! Counts do not depend on the machine; only the run time does.
//!
//! ```sh
//! scripts/install-moto.sh
//! cargo build --bin ascp --example rotation_calls
//! target/debug/examples/rotation_calls [--window-ms 5000] [--ascp PATH]
//! ```

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use support::rotation::{Counts, Spacing, many_pods, one_pod, total};

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
    #[arg(long, default_value_t = 5000)]
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
    for (name, flags, spacing) in [
        ("default, inside one window", &[][..], Spacing::InsideWindow),
        (
            "default, beyond the window",
            &[][..],
            Spacing::BeyondWindow(window),
        ),
        (
            "batching, inside one window",
            &[BATCH][..],
            Spacing::InsideWindow,
        ),
        (
            "batching, beyond the window",
            &[BATCH][..],
            Spacing::BeyondWindow(window),
        ),
    ] {
        let run = many_pods(&binary, flags, spacing, 20, 10, 5, 5).await;
        row(
            &format!("20 pods 10+5, {name}: 5 rounds"),
            &total(&run.rounds),
        );
        if let Some(changed) = &run.changed {
            row(
                &format!(
                    "20 pods 10+5, {name}: the round after a change ({} of 20 pods updated)",
                    run.updated
                ),
                changed,
            );
        }
    }
}
