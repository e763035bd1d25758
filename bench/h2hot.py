"""In-process cost of the HTTP/2 hot path: Python CPU per request, no sockets, no kernel.

The gworkers HTTP/2 connection (``H2Protocol``) is driven on bench/hotpath.py's fake transport:
each connection gets the client preface once, then per iteration ``--streams`` requests in one
feed (pre-encoded by an h2 client, so the client costs nothing in the measure), then the loop
runs until every response is written. The server's answers are not parsed, only counted (one
END_STREAM per response).

    python -m bench.h2hot                               # plaintext and echo, 1 and 100 streams
    python -m bench.h2hot --workloads plaintext --streams 100 --profile   # cProfile top functions
    python -m bench.h2hot --variants gworkers-h11       # the same connection under asyncio

Both variants run the same HTTP/2 code (http/h2/); they differ by loop (uvloop or asyncio).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time

from h2.config import H2Configuration
from h2.connection import H2Connection
from hyperframe.frame import SettingsFrame, WindowUpdateFrame

from bench.hotpath import FakeTransport, new_loop, responses_reach

CONNS = 16
BODY = b"b" * 4096
WORKLOADS = {"plaintext": ("GET", "/", b""), "echo": ("POST", "/echo", BODY)}


class H2Transport(FakeTransport):
    """Counts responses by the END_STREAM flags of the frames written (HEADERS or DATA)."""

    def write(self, data) -> None:
        self.writes += 1
        data = bytes(data)
        pos, end, done = 0, len(data), 0
        while pos + 9 <= end:
            length = int.from_bytes(data[pos:pos + 3], "big")
            if data[pos + 3] in (0, 1) and data[pos + 4] & 1:
                done += 1
            pos += 9 + length
        self.counter[0] += done


def client_bytes(method: str, path: str, body: bytes, requests: int, per_feed: int) -> tuple[bytes, list[bytes]]:
    """The preface (with a wide connection window) and the request feeds, each ``per_feed``
    requests on new streams, encoded by one h2 client so HPACK indexes as a real client does."""
    client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    client.increment_flow_control_window(2**31 - 1 - 65535)
    # what the server's preface will say: its SETTINGS and a wide connection window (the client
    # acknowledges them in its preface)
    client.receive_data(SettingsFrame(0).serialize() + WindowUpdateFrame(0, window_increment=2**24).serialize())
    preface = client.data_to_send()
    headers = [(b":method", method.encode()), (b":scheme", b"http"), (b":authority", b"127.0.0.1:8000"),
               (b":path", path.encode()), (b"user-agent", b"h2load nghttp2/1.52.0")]
    if body:
        headers += [(b"content-length", b"%d" % len(body)), (b"content-type", b"application/octet-stream")]
    feeds = []
    for _ in range(requests // per_feed):
        for _ in range(per_feed):
            sid = client.get_next_available_stream_id()
            client.send_headers(sid, headers, end_stream=not body)
            if body:
                client.send_data(sid, body, end_stream=True)
            # streams are closed at once client-side, so h2 does not count them against limits
            client.streams.pop(sid)
        feeds.append(client.data_to_send())
    return preface, feeds


def make_protocols(variant: str, loop, counter: list) -> list:
    from bench.apps import app
    from gworkers.config import Config
    from gworkers.http.h2.connection import H2Protocol
    from gworkers.server import ServerState

    http = "h11" if variant == "gworkers-h11" else "httptools"
    state = ServerState(Config(http=http, loop="asyncio", http_protocols="h2,h1",
                               http2_cleartext="prior-knowledge"), app, loop)
    protos = []
    for _ in range(CONNS):
        proto = H2Protocol(state.context)
        proto.connection_made(H2Transport(counter))
        protos.append(proto)
    return protos


async def drive(protos, counter, feeds: list[list[bytes]], start: int, count: int, per_feed: int) -> None:
    target = counter[0]
    for i in range(start, start + count):
        for proto, conn_feeds in zip(protos, feeds, strict=True):
            proto.data_received(conn_feeds[i])
        target += per_feed * len(protos)
        await responses_reach(counter, target)


def run(variant: str, workload: str, streams: int, requests: int, profile: bool = False) -> float:
    """µs per request (``requests`` per connection after a warm-up of ``2 * streams``)."""
    method, path, body = WORKLOADS[workload]
    warm = 2
    iterations = max(1, requests // streams)
    encoded = [client_bytes(method, path, body, (warm + iterations) * streams, streams) for _ in range(CONNS)]
    loop = new_loop()
    try:
        counter = [0]
        protos = make_protocols(variant, loop, counter)
        for proto, (preface, _) in zip(protos, encoded, strict=True):
            proto.data_received(preface)
        feeds = [f for _, f in encoded]
        loop.run_until_complete(drive(protos, counter, feeds, 0, warm, streams))
        prof = cProfile.Profile() if profile else None
        if prof:
            prof.enable()
        begin = time.perf_counter()
        loop.run_until_complete(drive(protos, counter, feeds, warm, iterations, streams))
        elapsed = time.perf_counter() - begin
        if prof:
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        for proto in protos:
            proto.connection_lost(None)
        return elapsed * 1e6 / (iterations * streams * CONNS)
    finally:
        loop.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="gworkers")
    ap.add_argument("--workloads", default="plaintext,echo")
    ap.add_argument("--streams", default="1,100", help="requests per feed per connection (comma list)")
    ap.add_argument("--requests", type=int, default=2000, help="per connection")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args(argv)
    for variant in args.variants.split(","):
        for workload in args.workloads.split(","):
            for streams in map(int, args.streams.split(",")):
                if args.profile:
                    run(variant, workload, streams, args.requests, profile=True)
                    continue
                us = [run(variant, workload, streams, args.requests) for _ in range(args.repeat)]
                print(f"{variant:14} {workload:10} m{streams:<4} {min(us):7.1f} µs/request "
                      f"(median {statistics.median(us):.1f})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
