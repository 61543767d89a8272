"""A hostile local process on the provider socket, in raw HTTP/2 frames (the
PyPI hyperframe and hpack packages, h2's own codecs): what no gRPC library
does on purpose. Each case pushes as hard as the server lets it, obeying
HTTP/2 flow control (a client that breaks it is only dropped), and reports
what the server did; the test then checks the provider's memory and that it
still serves.

Usage: hostile_h2.py CASE.json, where CASE is
  {"socket": PATH, "case": CASE, ...case parameters}
and CASE is one of
  "streams":     one connection opens "streams" Mount streams, each
                 declaring a 4 MB message and sending up to "per_stream"
                 bytes of it, as flow control allows; never ends them.
  "connections": "connections" connections, each one Mount stream sending
                 up to "per_stream" bytes of a 4 MB message.
  "headers":     on fresh connections, one request each with a header of
                 each size in "sizes" (bytes), split into CONTINUATION
                 frames of 16 KiB; then one with "continuations" empty
                 CONTINUATION frames; then one starting with a table size
                 update to "table_size".
  "slow_reader": one connection that grants no flow-control window
                 (SETTINGS_INITIAL_WINDOW_SIZE 0) sends "requests" copies of
                 "request" (a MountRequest by field names) and never reads
                 an answer's body.
A case ends when the server has been quiet for "quiet" seconds (default 1):
it can then take no more. Prints one JSON object of what was seen.
"""

import json
import select
import socket as socketlib
import struct
import sys
import time

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
DECLARED = 4_000_000
MOUNT = "/v1alpha1.CSIDriverProvider/Mount"


def fields(path, extra=()):
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        *extra,
    ]


class Conn:
    """One HTTP/2 connection, read without blocking."""

    def __init__(self, path, settings=None):
        self.sock = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.setblocking(False)
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.status = {}
        self.buf = b""
        self.out = b""
        self.closed = False
        self.server_settings = None
        self.conn_window = 65535
        self.initial_stream_window = 65535
        self.windows = {}
        self.reset = {}
        self.ended = set()
        self.goaway = None
        self.next_stream = 1
        s = SettingsFrame(0, settings=settings or {})
        self.send(PREFACE + s.serialize())

    def send(self, data):
        self.out += data
        self.flush()

    def flush(self):
        while self.out and not self.closed:
            try:
                n = self.sock.send(self.out)
            except BlockingIOError:
                return
            except OSError:
                self.closed = True
                return
            self.out = self.out[n:]

    def open(self, block, end_headers=True):
        stream = self.next_stream
        self.next_stream += 2
        h = HeadersFrame(stream, data=block)
        if end_headers:
            h.flags.add("END_HEADERS")
        self.windows[stream] = self.initial_stream_window
        self.send(h.serialize())
        return stream

    def pump(self):
        """Reads what has arrived; returns whether anything did."""
        got = False
        while not self.closed:
            try:
                chunk = self.sock.recv(1 << 16)
            except BlockingIOError:
                break
            except OSError:
                self.closed = True
                break
            if not chunk:
                self.closed = True
                break
            got = True
            self.buf += chunk
        while len(self.buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
            if len(self.buf) < 9 + length:
                break
            frame.parse_body(memoryview(self.buf[9 : 9 + length]))
            self.buf = self.buf[9 + length :]
            self.on_frame(frame)
        self.flush()
        return got

    def on_frame(self, f):
        if isinstance(f, SettingsFrame) and "ACK" not in f.flags:
            if self.server_settings is None:
                self.server_settings = {}
            self.server_settings.update(f.settings)
            new = f.settings.get(SettingsFrame.INITIAL_WINDOW_SIZE)
            if new is not None:
                delta = new - self.initial_stream_window
                self.initial_stream_window = new
                for s in self.windows:
                    self.windows[s] += delta
            self.send(SettingsFrame(0, flags=["ACK"]).serialize())
        elif isinstance(f, PingFrame) and "ACK" not in f.flags:
            self.send(PingFrame(0, opaque_data=f.opaque_data, flags=["ACK"]).serialize())
        elif isinstance(f, WindowUpdateFrame):
            if f.stream_id == 0:
                self.conn_window += f.window_increment
            elif f.stream_id in self.windows:
                self.windows[f.stream_id] += f.window_increment
        elif isinstance(f, RstStreamFrame):
            self.reset.setdefault(f.stream_id, f.error_code)
        elif isinstance(f, GoAwayFrame):
            self.goaway = f.error_code
        elif isinstance(f, (HeadersFrame, DataFrame)):
            if isinstance(f, HeadersFrame):
                # Whole blocks only: the provider's answers fit one frame.
                got = dict(self.decoder.decode(f.data))
                for key in (":status", "grpc-status"):
                    if key in got:
                        self.status.setdefault(f.stream_id, {})[key] = got[key]
            if "END_STREAM" in f.flags:
                self.ended.add(f.stream_id)

    def push(self, stream, want):
        """Sends up to `want` DATA bytes on `stream` as the windows allow."""
        n = min(want, self.conn_window, self.windows.get(stream, 0), 16384)
        if n <= 0 or self.closed or stream in self.reset or len(self.out) > (1 << 20):
            return 0
        self.conn_window -= n
        self.windows[stream] -= n
        self.send(DataFrame(stream, data=b"\0" * n).serialize())
        return n


def settle(conns, quiet, step):
    """Calls step() and reads until nothing moves for `quiet` seconds."""
    last = time.monotonic()
    while time.monotonic() - last < quiet:
        moved = step()
        for c in conns:
            moved = c.pump() or moved
        if moved:
            last = time.monotonic()
        else:
            socks = [c.sock for c in conns if not c.closed]
            if not socks:
                break
            select.select(socks, [], [], 0.05)


def mount_header(conn):
    return conn.encoder.encode(fields(MOUNT))


def case_streams(spec):
    conn = Conn(spec["socket"])
    settle([conn], spec.get("quiet", 1.0), lambda: False)
    sent = {}
    for _ in range(spec["streams"]):
        s = conn.open(mount_header(conn))
        conn.send(DataFrame(s, data=struct.pack(">BI", 0, DECLARED)).serialize())
        conn.windows[s] -= 5
        conn.conn_window -= 5
        sent[s] = 0

    def step():
        moved = False
        for s in sent:
            n = conn.push(s, spec["per_stream"] - sent[s])
            sent[s] += n
            moved = moved or n > 0
        return moved

    settle([conn], spec.get("quiet", 1.0), step)
    return {
        "max_concurrent_streams": (conn.server_settings or {}).get(SettingsFrame.MAX_CONCURRENT_STREAMS),
        "refused": sum(1 for c in conn.reset.values() if c == 7),
        "reset": len(conn.reset),
        "reset_codes": sorted(set(conn.reset.values())),
        "bytes_sent": sum(sent.values()),
        "goaway": conn.goaway,
    }


def case_connections(spec):
    conns = [Conn(spec["socket"]) for _ in range(spec["connections"])]
    streams = []
    for c in conns:
        s = c.open(mount_header(c))
        c.send(DataFrame(s, data=struct.pack(">BI", 0, DECLARED)).serialize())
        c.windows[s] -= 5
        c.conn_window -= 5
        streams.append([c, s, 0])

    def step():
        moved = False
        for entry in streams:
            c, s, done = entry
            if c.server_settings is None:
                continue
            n = c.push(s, spec["per_stream"] - done)
            entry[2] += n
            moved = moved or n > 0
        return moved

    settle(conns, spec.get("quiet", 1.0), step)
    return {
        "served": sum(1 for c in conns if c.server_settings is not None),
        "bytes_sent": sum(e[2] for e in streams),
    }


def one_request(path, build):
    """A fresh connection, one request built by build(conn); what became of it."""
    c = Conn(path)
    settle([c], 0.3, lambda: False)
    stream = build(c)
    # Wait for the stream's fate however slow the machine, then collect
    # what follows it (a GOAWAY after a reset, say) as before.
    def decided():
        return stream in c.reset or stream in c.ended or c.goaway is not None or c.closed

    deadline = time.monotonic() + 60
    while not decided() and time.monotonic() < deadline:
        if not c.pump() and not c.closed:
            select.select([c.sock], [], [], 0.05)
    settle([c], 1.0, lambda: False)
    if stream in c.reset:
        outcome = f"reset {c.reset[stream]}"
    elif stream in c.ended:
        got = c.status.get(stream, {})
        outcome = f"status {got.get(':status')} grpc-status {got.get('grpc-status')}"
    elif c.goaway is not None:
        outcome = f"goaway {c.goaway}"
    elif c.closed:
        outcome = "closed"
    else:
        outcome = "pending"
    c.sock.close()
    return outcome


def case_headers(spec):
    results = {}
    for size in spec["sizes"]:

        def build(c, size=size):
            block = c.encoder.encode(fields(MOUNT, [("x-hostile", "a" * size)]))
            pieces = [block[i : i + 16384] for i in range(0, len(block), 16384)]
            stream = c.next_stream
            c.next_stream += 2
            frames = [HeadersFrame(stream, data=pieces[0])]
            frames += [ContinuationFrame(stream, data=p) for p in pieces[1:]]
            frames[-1].flags.add("END_HEADERS")
            # No body: an accepted request is answered at once (no message).
            frames[0].flags.add("END_STREAM")
            c.send(b"".join(f.serialize() for f in frames))
            return stream

        results[f"header {size}"] = one_request(spec["socket"], build)

    def continuations(c):
        block = c.encoder.encode(fields(MOUNT))
        stream = c.next_stream
        c.next_stream += 2
        frames = [HeadersFrame(stream, data=block, flags=["END_STREAM"])]
        frames += [ContinuationFrame(stream, data=b"") for _ in range(spec["continuations"])]
        frames[-1].flags.add("END_HEADERS")
        c.send(b"".join(f.serialize() for f in frames))
        return stream

    results["continuations"] = one_request(spec["socket"], continuations)

    def table_size(c):
        # A dynamic table size update (001xxxxx, 5-bit prefix integer).
        n, update = spec["table_size"], bytearray()
        if n < 31:
            update.append(0x20 | n)
        else:
            update.append(0x20 | 31)
            n -= 31
            while n >= 128:
                update.append((n % 128) | 128)
                n //= 128
            update.append(n)
        stream = c.open(bytes(update) + c.encoder.encode(fields(MOUNT)))
        c.send(DataFrame(stream, data=b"", flags=["END_STREAM"]).serialize())
        return stream

    results["table size"] = one_request(spec["socket"], table_size)
    return results


def case_slow_reader(spec):
    pb2, _ = stubs.load()
    message = pb2.MountRequest(**spec["request"]).SerializeToString()
    body = struct.pack(">BI", 0, len(message)) + message
    conn = Conn(spec["socket"], settings={SettingsFrame.INITIAL_WINDOW_SIZE: 0})
    settle([conn], 0.3, lambda: False)
    opened = []
    for _ in range(spec["requests"]):
        s = conn.open(mount_header(conn))
        opened.append(s)
        conn.send(DataFrame(s, data=body, flags=["END_STREAM"]).serialize())
        conn.windows[s] -= len(body)
        conn.conn_window -= len(body)
        settle([conn], 0.0, lambda: False)
    # Answers' headers arrive; their bodies cannot, the window being 0.
    settle([conn], spec.get("quiet", 2.0), lambda: False)
    result = {"opened": len(opened), "reset": len(conn.reset), "goaway": conn.goaway}
    # Held open until the test has measured: it sends a line on stdin.
    print(json.dumps(result), flush=True)
    while not conn.closed:
        r, _, _ = select.select([conn.sock, sys.stdin], [], [], 1.0)
        if sys.stdin in r:
            break
        conn.pump()
    conn.sock.close()
    return None


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    cases = {
        "streams": case_streams,
        "connections": case_connections,
        "headers": case_headers,
        "slow_reader": case_slow_reader,
    }
    result = cases[spec["case"]](spec)
    if result is not None:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
