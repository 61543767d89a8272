"""The provider API's Python stubs, generated from proto/service.proto.

Generated at run time into a temporary directory with grpc_tools.protoc, so
the repository holds no generated code. A missing package fails loudly with
what to install: these clients are part of the test suite, never skipped.
"""

import importlib
import os
import sys
import tempfile

INSTALL_HINT = "run scripts/install-clients.sh (installs grpcio, grpcio-tools, grpcio-health-checking, h2, hpack into .venv)"

try:
    import grpc  # noqa: F401
    from grpc_tools import protoc
except ImportError as e:  # pragma: no cover - the message is the point
    sys.exit(f"missing Python package ({e}); {INSTALL_HINT}")

PROTO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")


def load():
    """Returns (service_pb2, service_pb2_grpc)."""
    out = tempfile.mkdtemp(prefix="ascp-stubs-")
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            os.path.join(PROTO_DIR, "service.proto"),
        ]
    )
    if status != 0:
        sys.exit(f"grpc_tools.protoc failed on proto/service.proto (status {status})")
    sys.path.insert(0, out)
    return importlib.import_module("service_pb2"), importlib.import_module("service_pb2_grpc")
