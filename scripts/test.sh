#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs the AWS
# emulator (moto) and the Python gRPC/HTTP/2 test clients into .venv, then
# checks formatting and lints, then runs all test targets. Fails, never skips, when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-moto.sh
bash scripts/install-clients.sh
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
