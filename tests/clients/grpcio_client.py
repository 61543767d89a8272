"""Calls the provider socket with Python grpcio: a gRPC client that shares no
code with ascp (C-core HTTP/2 and HPACK), as the driver's grpc-go does not.

Usage: grpcio_client.py CASE.json, where CASE is
  {"socket": PATH, "authority": null | STRING, "retry": BOOL, "timeout": SECONDS,
   "serve_unavailable": null | PATH,
   "calls": [{"rpc": "Health" | "Version" | "Mount", "request": {...}}]}
- authority: the grpc.default_authority option; null keeps grpcio's own.
- retry: the Secrets Store CSI driver's retry service config (its
  provider_client.go ServiceConfig, spelled in camelCase as grpcio requires).
- serve_unavailable: first start, on that socket, a stub provider whose Mount
  always answers UNAVAILABLE and counts its calls; "socket" should name it.
Prints {"results": [{"rpc", "code", "message", "response"}], "stub_calls": N}.
"""

import json
import sys
import threading
from concurrent import futures

import stubs

try:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
except ImportError as e:
    sys.exit(f"missing Python package ({e}); {stubs.INSTALL_HINT}")

DRIVER_SERVICE_CONFIG = {
    "methodConfig": [
        {
            "name": [{"service": "v1alpha1.CSIDriverProvider"}],
            "waitForReady": True,
            "retryPolicy": {
                "maxAttempts": 3,
                "initialBackoff": "1s",
                "maxBackoff": "10s",
                "backoffMultiplier": 1.1,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}


def serve_unavailable(pb2, pb2_grpc, socket):
    """A provider whose Mount always answers UNAVAILABLE; returns (server, counter)."""
    calls = {"n": 0}
    lock = threading.Lock()

    class Unavailable(pb2_grpc.CSIDriverProviderServicer):
        def Mount(self, request, context):
            with lock:
                calls["n"] += 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "stub: not ready")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb2_grpc.add_CSIDriverProviderServicer_to_server(Unavailable(), server)
    server.add_insecure_port(f"unix:{socket}")
    server.start()
    return server, calls


def call(pb2, stub, health, spec, c):
    timeout = spec.get("timeout", 60)
    rpc = c["rpc"]
    try:
        if rpc == "Health":
            r = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
            response = {"status": health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)}
        elif rpc == "Version":
            r = stub.Version(pb2.VersionRequest(version="v1alpha1"), timeout=timeout)
            response = {
                "version": r.version,
                "runtime_name": r.runtime_name,
                "runtime_version": r.runtime_version,
            }
        elif rpc == "Mount":
            r = stub.Mount(pb2.MountRequest(**c["request"]), timeout=timeout)
            response = {
                "object_version": [[v.id, v.version] for v in r.object_version],
                "files": [f.path for f in r.files],
                "error": r.error.code,
            }
        else:
            sys.exit(f"unknown rpc {rpc!r}")
        return {"rpc": rpc, "code": "OK", "message": "", "response": response}
    except grpc.RpcError as e:
        return {"rpc": rpc, "code": e.code().name, "message": e.details() or "", "response": None}


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    pb2, pb2_grpc = stubs.load()
    server, counter = None, {"n": 0}
    if spec.get("serve_unavailable"):
        server, counter = serve_unavailable(pb2, pb2_grpc, spec["serve_unavailable"])
    options = []
    if spec.get("authority") is not None:
        options.append(("grpc.default_authority", spec["authority"]))
    if spec.get("retry"):
        options.append(("grpc.enable_retries", 1))
        options.append(("grpc.service_config", json.dumps(DRIVER_SERVICE_CONFIG)))
    with grpc.insecure_channel(f"unix:{spec['socket']}", options=options) as channel:
        stub = pb2_grpc.CSIDriverProviderStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        results = [call(pb2, stub, health, spec, c) for c in spec["calls"]]
    if server is not None:
        server.stop(None)
    print(json.dumps({"results": results, "stub_calls": counter["n"]}))


if __name__ == "__main__":
    main()
