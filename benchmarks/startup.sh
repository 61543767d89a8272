#!/usr/bin/env bash
# Start-up time of the provider: from exec to the socket existing, with
# instance metadata unreachable (a pod on EKS without host networking), no
# AWS_REGION, the default mode. Runs the binary RUNS times and prints every
# figure and the median, in milliseconds.
#
#   benchmarks/startup.sh [BINARY] [RUNS]    default: the release build, 20 runs
#
# The metadata endpoint is a non-routable address, so a call to it would
# hang until the SDK's timeout; the Kubernetes configuration is a dummy
# kubeconfig (no call is made at start-up).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

target="${CARGO_TARGET_DIR:-target}"
binary="${1:-}"
runs="${2:-20}"
if [[ -z "$binary" ]]; then
    cargo build --release --quiet --bin ascp
    binary="${target}/release/ascp"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/kubeconfig" <<'KUBECONFIG'
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:9"}}]
users: [{name: u, user: {token: dummy}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
KUBECONFIG

python3 - "$binary" "$runs" "$work" <<'PY'
import os, statistics, subprocess, sys, time
binary, runs, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
env = {
    "PATH": os.environ.get("PATH", ""),
    "HOME": work,
    "KUBECONFIG": os.path.join(work, "kubeconfig"),
    "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://10.255.255.1",
}
figures = []
for i in range(runs):
    volume = os.path.join(work, f"v{i}")
    os.mkdir(volume)
    socket = os.path.join(volume, "aws.sock")
    start = time.monotonic()
    child = subprocess.Popen(
        [binary, f"--provider-volume={volume}", "--metrics-addr="],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not os.path.exists(socket):
        if child.poll() is not None:
            sys.exit(f"ascp exited with {child.returncode} before binding its socket")
        if time.monotonic() - start > 30:
            sys.exit("no socket after 30 s")
        time.sleep(0.0005)
    figures.append((time.monotonic() - start) * 1000)
    child.terminate()
    child.wait()
print("runs (ms):", " ".join(f"{f:.1f}" for f in figures))
print(f"median: {statistics.median(figures):.1f} ms over {runs} runs")
PY
