#!/usr/bin/env bash
# Installs the independent (non-Rust) gRPC and HTTP/2 clients that
# tests/it/driver_wire.rs drives against the real binary: Python grpcio (with
# grpc_tools to generate the stubs from proto/service.proto at test time, and
# the grpc.health.v1 stubs), and the h2/hpack packages for raw HTTP/2. They go
# into the same <repo>/.venv as moto, so run scripts/install-moto.sh first.
#
# Idempotent: when every pinned version is installed it returns at once
# without touching the network.
set -euo pipefail

PACKAGES=(
    "grpcio==1.85.1"
    "grpcio-tools==1.85.1"
    "grpcio-health-checking==1.85.1"
    "protobuf==7.36.2"
    "h2==4.4.1"
    "hpack==4.2.0"
    "hyperframe==6.1.0"
)

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${repo_root}/.venv"
python="${venv}/bin/python"

die() {
    echo "install-clients.sh: error: $*" >&2
    exit 1
}

[[ -x "${python}" ]] ||
    die "no virtualenv at ${venv}; run scripts/install-moto.sh first"

# Fast path: ask the package metadata whether every pin is satisfied.
missing="$("${python}" - "${PACKAGES[@]}" <<'PY'
import importlib.metadata as m
import sys
for pin in sys.argv[1:]:
    name, version = pin.split("==")
    try:
        if m.version(name) != version:
            print(pin)
    except m.PackageNotFoundError:
        print(pin)
PY
)"
if [[ -z "${missing}" ]]; then
    echo "test clients already installed in ${venv}"
    exit 0
fi

echo "installing test clients into ${venv}: ${PACKAGES[*]}"
"${python}" -m pip install --disable-pip-version-check --quiet "${PACKAGES[@]}" ||
    die "pip could not install ${PACKAGES[*]} (is PyPI reachable?)"

"${python}" -c 'import grpc, grpc_tools.protoc, grpc_health.v1.health_pb2, h2.connection, hpack' ||
    die "the test clients were installed but do not import"
echo "test clients installed in ${venv}"
