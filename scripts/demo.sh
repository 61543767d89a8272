#!/usr/bin/env bash
# Runs ascp's main job end to end on this machine, with emulated AWS:
# installs moto into .venv (scripts/install-moto.sh), builds ascp and the demo
# driver (examples/demo.rs), which starts moto and stub Kubernetes API / Pod
# Identity Agent servers on loopback, seeds the secrets and parameters that the
# SecretProviderClasses in examples/ name, starts the real ascp on a temporary
# socket, mounts every class with `ascp mount`, prints the files and versions,
# and cleans up. Needs cargo and python3 (with venv and pip); nothing else.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-moto.sh
echo "building ascp and the demo (first build takes a few minutes)"
cargo build --quiet --bin ascp --example demo
target="${CARGO_TARGET_DIR:-target}"
exec "${target}/debug/examples/demo" "${target}/debug/ascp"
