"""Talks gRPC to the provider socket in raw HTTP/2 frames (the PyPI hyperframe
and hpack packages, h2's own codecs), to send what no gRPC library lets a
caller choose: no :authority at all, an empty one, a header block split
across CONTINUATION frames, padding and priority, HPACK table size updates,
and an indexed :authority reused over many requests on one connection.

Usage: raw_h2.py CASE.json, where CASE is
  {"socket": PATH,
   "calls": [{"rpc": "Version" | "Mount", "request": {...}, "authority": null | STRING,
              "form": "plain" | "continuation" | "padded" | "table_size"}],
   "churn": N}
Every call runs in order on one connection; then "churn" Version calls follow
on the same connection, each with another grpc-timeout, so the encoder's
dynamic table keeps evicting and re-adding :authority.
Prints {"results": [{"rpc", "code", "message", "response"}], "churn_ok": N,
        "churn_indexed": N (requests whose :authority was a one-byte index)}.
"""

import json
import socket as socketlib
import struct
import sys
import urllib.parse

import stubs

try:
    import hpack
    from hyperframe.frame import (
        ContinuationFrame,
        DataFrame,
        Frame,
        GoAwayFrame,
        HeadersFrame,
        PingFrame,
        RstStreamFrame,
        SettingsFrame,
        WindowUpdateFrame,
    )
except ImportError as e:
    sys.exit(f"missing Python package ({e}); {stubs.INSTALL_HINT}")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class Connection:
    def __init__(self, path):
        self.sock = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
        self.sock.settimeout(120)
        self.sock.connect(path)
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.next_stream = 1
        self.buf = b""
        self.sock.sendall(PREFACE + SettingsFrame(0).serialize())

    def read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the provider closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self):
        frame, length = Frame.parse_frame_header(memoryview(self.read_exact(9)))
        frame.parse_body(memoryview(self.read_exact(length)))
        return frame

    def headers(self, path, authority, timeout):
        fields = [(":method", "POST"), (":scheme", "http"), (":path", path)]
        if authority is not None:
            fields.append((":authority", authority))
        fields += [
            ("content-type", "application/grpc"),
            ("user-agent", "raw-h2-test/1"),
            ("te", "trailers"),
            ("grpc-timeout", timeout),
        ]
        return fields

    def send_request(self, path, message, authority, form, timeout="60S"):
        stream = self.next_stream
        self.next_stream += 2
        if form == "table_size":
            # Shrink the table to nothing, then grow it back: the block
            # starts with two size updates and every entry is evicted.
            self.encoder.header_table_size = 0
            self.encoder.header_table_size = 4096
        block = self.encoder.encode(self.headers(path, authority, timeout))
        frames = []
        if form == "continuation":
            third = max(1, len(block) // 3)
            pieces = [block[:third], block[third : 2 * third], block[2 * third :]]
            first = HeadersFrame(stream, data=pieces[0])
            frames.append(first)
            for i, piece in enumerate(pieces[1:]):
                c = ContinuationFrame(stream, data=piece)
                if i == 1:
                    c.flags.add("END_HEADERS")
                frames.append(c)
        else:
            h = HeadersFrame(stream, data=block)
            h.flags.add("END_HEADERS")
            if form == "padded":
                h.flags.add("PADDED")
                h.pad_length = 17
                h.flags.add("PRIORITY")
                h.depends_on = 0
                h.stream_weight = 200
                h.exclusive = False
            frames.append(h)
        body = struct.pack(">BI", 0, len(message)) + message
        frames.append(DataFrame(stream, data=body, flags=["END_STREAM"]))
        self.sock.sendall(b"".join(f.serialize() for f in frames))
        return stream

    def response(self, stream):
        """Reads until `stream` ends; returns (grpc-status, message, body)."""
        fields, data, block = {}, b"", b""
        while True:
            f = self.read_frame()
            if isinstance(f, SettingsFrame) and "ACK" not in f.flags:
                self.sock.sendall(SettingsFrame(0, flags=["ACK"]).serialize())
            elif isinstance(f, PingFrame) and "ACK" not in f.flags:
                self.sock.sendall(PingFrame(0, opaque_data=f.opaque_data, flags=["ACK"]).serialize())
            elif isinstance(f, GoAwayFrame):
                raise ConnectionError(f"GOAWAY {f.error_code}: {f.additional_data!r}")
            elif isinstance(f, RstStreamFrame) and f.stream_id == stream:
                return -1, f"RST_STREAM {f.error_code}", b""
            elif isinstance(f, (HeadersFrame, ContinuationFrame)):
                block += f.data
                if "END_HEADERS" in f.flags:
                    fields.update({n: v for n, v in self.decoder.decode(block)})
                    block = b""
                if "END_STREAM" in f.flags and f.stream_id == stream:
                    break
            elif isinstance(f, DataFrame):
                if f.flow_controlled_length:
                    self.sock.sendall(
                        WindowUpdateFrame(0, window_increment=f.flow_controlled_length).serialize()
                    )
                if f.stream_id == stream:
                    data += f.data
                    if "END_STREAM" in f.flags:
                        break
        code = int(fields.get("grpc-status", "-2"))
        message = urllib.parse.unquote(fields.get("grpc-message", ""))
        return code, message, data[5:]


def decode(pb2, rpc, body):
    if rpc == "Version":
        r = pb2.VersionResponse.FromString(body)
        return {"version": r.version, "runtime_name": r.runtime_name}
    r = pb2.MountResponse.FromString(body)
    return {"object_version": [[v.id, v.version] for v in r.object_version], "files": [f.path for f in r.files]}


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    pb2, _ = stubs.load()
    conn = Connection(spec["socket"])
    results = []
    for c in spec["calls"]:
        rpc = c["rpc"]
        if rpc == "Version":
            message = pb2.VersionRequest(version="v1alpha1").SerializeToString()
        else:
            message = pb2.MountRequest(**c["request"]).SerializeToString()
        path = f"/v1alpha1.CSIDriverProvider/{rpc}"
        stream = conn.send_request(path, message, c.get("authority"), c.get("form", "plain"))
        code, msg, body = conn.response(stream)
        response = decode(pb2, rpc, body) if code == 0 else None
        results.append({"rpc": rpc, "form": c.get("form", "plain"), "code": code, "message": msg, "response": response})

    churn_ok, churn_indexed = 0, 0
    authority = "/var/run/secrets-store-csi-providers/aws.sock"
    message = pb2.VersionRequest(version="v1alpha1").SerializeToString()
    for i in range(spec.get("churn", 0)):
        # A full match in the encoder's dynamic table: sent as a one-byte index.
        hit = conn.encoder.header_table.search(b":authority", authority.encode())
        if hit is not None and hit[2] is not None:
            churn_indexed += 1
        stream = conn.send_request(
            "/v1alpha1.CSIDriverProvider/Version", message, authority, "plain", f"{100000 + i}m"
        )
        code, msg, body = conn.response(stream)
        if code == 0 and decode(pb2, "Version", body)["version"] == "v1alpha1":
            churn_ok += 1
        else:
            results.append({"rpc": "Version", "form": f"churn {i}", "code": code, "message": msg, "response": None})
            break
    print(json.dumps({"results": results, "churn_ok": churn_ok, "churn_indexed": churn_indexed}))


if __name__ == "__main__":
    main()
