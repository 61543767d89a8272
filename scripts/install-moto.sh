#!/usr/bin/env bash
# Installs the moto AWS emulator (server mode) into a project-local virtualenv
# at <repo>/.venv, for the integration tests in tests/ (see tests/support/moto.rs).
#
# Idempotent: when the pinned version is already installed it returns at once
# without touching the network, so CI and test scripts can call it every time.
#
# Environment:
#   PYTHON   interpreter used to create the venv (default: python3)
set -euo pipefail

MOTO_VERSION="5.2.5"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${repo_root}/.venv"
python="${PYTHON:-python3}"

die() {
    echo "install-moto.sh: error: $*" >&2
    exit 1
}

# Fast path: the venv exists and already has the pinned moto. Importing moto
# itself is slow, so ask the package metadata instead.
if [[ -x "${venv}/bin/python" && -x "${venv}/bin/moto_server" ]]; then
    installed="$("${venv}/bin/python" -c \
        'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null || true)"
    if [[ "${installed}" == "${MOTO_VERSION}" ]]; then
        echo "moto ${MOTO_VERSION} already installed in ${venv}"
        exit 0
    fi
    echo "found moto '${installed:-none}' in ${venv}, installing ${MOTO_VERSION}"
fi

command -v "${python}" >/dev/null 2>&1 ||
    die "'${python}' not found; install Python 3 (3.10 or newer) or set PYTHON=/path/to/python3"

pyver="$("${python}" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" ||
    die "'${python}' does not run as a Python interpreter"
"${python}" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' ||
    die "Python ${pyver} is too old; moto ${MOTO_VERSION} needs Python 3.10 or newer"

"${python}" -c 'import venv, ensurepip' 2>/dev/null ||
    die "the Python 'venv'/'ensurepip' modules are missing (on Debian/Ubuntu: apt-get install python3-venv)"

# A venv left half-made by an interrupted run has no working pip: start over.
if [[ -d "${venv}" && ! -x "${venv}/bin/pip" ]]; then
    echo "removing incomplete virtualenv ${venv}"
    rm -rf "${venv}"
fi

if [[ ! -d "${venv}" ]]; then
    echo "creating virtualenv ${venv}"
    "${python}" -m venv "${venv}" || die "'${python} -m venv ${venv}' failed"
fi

echo "installing moto[server]==${MOTO_VERSION} into ${venv}"
"${venv}/bin/python" -m pip install --disable-pip-version-check --quiet \
    "moto[server]==${MOTO_VERSION}" ||
    die "pip could not install moto[server]==${MOTO_VERSION} (is PyPI reachable?)"

[[ -x "${venv}/bin/moto_server" ]] ||
    die "moto installed but ${venv}/bin/moto_server is missing"

echo "moto ${MOTO_VERSION} installed: ${venv}/bin/moto_server"
