#!/usr/bin/env bash
# Soak benchmark (issue 20): 30 pods over 3 IRSA roles remount for 30
# minutes against moto while objects change and faults come and go; the
# release provider's VmRSS, VmHWM, fds and threads are sampled to a CSV.
# Exits non-zero when a criterion fails (see examples/soak.rs).
#
#   benchmarks/soak.sh                       # 30 minutes
#   benchmarks/soak.sh --minutes 5           # a trial
#   benchmarks/soak.sh --csv /tmp/soak.csv   # any flag of the example
#
# The provider and the harness are built in one release build, as
# examples/load_bench.rs is, so the two share their dependencies' builds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet --bin ascp --example soak
exec "${target}/release/examples/soak" --ascp "${target}/release/ascp" "$@"
