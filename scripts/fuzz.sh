#!/usr/bin/env bash
# Runs one coverage-guided fuzz target for a while:
#
#   scripts/fuzz.sh TARGET SECONDS     e.g. scripts/fuzz.sh objects 600
#   scripts/fuzz.sh --list             the targets
#
# Targets live in fuzz/ (cargo-fuzz, libFuzzer, AddressSanitizer) and call
# the entry functions of src/fuzzing.rs. The run starts from the committed
# seed corpus fuzz/corpus/TARGET/ and keeps what it learns in
# fuzz/.work/TARGET/ (git-ignored), so the committed corpus stays small. A
# crash is saved in fuzz/artifacts/TARGET/: copy it into fuzz/corpus/TARGET/
# (tests/it/fuzz_replay.rs then replays it on every test run) and fix the bug.
#
# Installs cargo-fuzz from crates.io when missing. cargo-fuzz needs nightly
# compiler flags; RUSTC_BOOTSTRAP=1 lets the pinned stable toolchain accept
# them. One job, one worker: the machine's cores are shared.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ "${1:-}" == "--list" ]]; then
    ls fuzz/fuzz_targets | sed 's/\.rs$//'
    exit 0
fi
if [[ $# -ne 2 || ! -f "fuzz/fuzz_targets/$1.rs" || ! "$2" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 TARGET SECONDS (targets: $(ls fuzz/fuzz_targets | sed 's/\.rs$//' | tr '\n' ' '))" >&2
    exit 2
fi
target="$1"
seconds="$2"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi
# The fuzzed build uses the dependency versions of the shipped one.
cp Cargo.lock fuzz/Cargo.lock

export RUSTC_BOOTSTRAP=1
work="fuzz/.work/${target}"
mkdir -p "$work"
# -max_total_time ends the run; -timeout reports an input taking over 10 s
# as a hang.
cargo fuzz run --fuzz-dir fuzz "$target" "$work" "fuzz/corpus/${target}" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1
