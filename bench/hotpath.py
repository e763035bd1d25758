"""In-process cost of the hot path: Python CPU per request with no sockets and no kernel.

Drives the servers' asyncio.Protocol objects directly on fake transports (writes are counted,
not sent): 64 connections, each fed one request per iteration, then the loop runs until every
response is written. Far less noisy than a socket benchmark on a shared machine, and what it
leaves out (syscalls, loopback TCP, epoll) is the same for every server.

    python -m bench.hotpath                          # all variants, plaintext/echo/pipe16, µs/request
    python -m bench.hotpath --variants gworkers --profile plaintext   # cProfile top functions
    python -m bench.hotpath --callgrind gworkers:plaintext            # instructions per request
    python -m bench.hotpath --variants gworkers,gworkers-h11,uvicorn,gunicorn-asgi --workloads ws  # WebSocket echo

``gworkers-lazy`` is ``gworkers`` with its request Tasks made by a plain ``create_task`` (the
3.11 way) instead of started eagerly: on 3.12+ the two side by side show what eager Tasks save.

``--callgrind`` runs the variant under ``valgrind --tool=callgrind`` twice (N and 2N requests)
and reports the difference per request: the instruction count of one request with start-up
and imports cancelled out, which does not move when the machine is busy.

The ``ws`` workload is WebSocket echo: 32 connections are upgraded once (outside the measured
part), then each iteration feeds one masked 64-byte text frame per connection and runs the
loop until every echo frame is written. A "request" is then one echoed message. ``gworkers``
parses with websockets (``ws=websockets``), ``gworkers-h11`` with wsproto, ``uvicorn`` with
websockets-sansio, ``uvicorn-h11`` with wsproto, ``gunicorn-asgi`` with Gunicorn 27's own parser.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import email.utils
import importlib.util
import os
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONNS = 64
GET = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
ECHO = (b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: wrk\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Length: 4096\r\n\r\n" + b"b" * 4096)
JSON = b"GET /json HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
STREAM = b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
WS_CONNS = 32
WS_UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def masked_text_frame(payload: bytes, key: bytes = b"\x37\xfa\x21\x3d") -> bytes:
    """A client's final text frame (FIN, opcode 1, masked; payload < 126 bytes)."""
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes((0x81, 0x80 | len(payload))) + key + masked


WS_FRAME = masked_text_frame(b"m" * 64)
WORKLOADS = {"plaintext": (GET, 1), "json": (JSON, 1), "echo": (ECHO, 1), "pipe16": (GET * 16, 16),
             "stream": (STREAM, 1), "ws": (WS_FRAME, 1)}


class FakeTransport(asyncio.Transport):
    """Counts responses and writes; never blocks, never closes the protocol."""

    def __init__(self, counter: list) -> None:
        super().__init__()
        self.counter = counter
        self.writes = 0
        self.closing = False

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data) -> None:
        self.writes += 1
        self.counter[0] += bytes(data).count(b"HTTP/1.1 200")

    def writelines(self, parts) -> None:
        self.writes += 1
        for p in parts:
            self.counter[0] += bytes(p).count(b"HTTP/1.1 200")

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def set_protocol(self, protocol) -> None:
        self.protocol = protocol

    def get_protocol(self):
        return self.protocol


class WSTransport(FakeTransport):
    """Counts the 101 answers while upgrading, then one per unfragmented text frame written."""

    def write(self, data) -> None:
        self.writes += 1
        data = bytes(data)
        self.counter[0] += data[:1] == b"\x81" or data.startswith(b"HTTP/1.1 101")

    def writelines(self, parts) -> None:
        for p in parts:
            self.write(p)


# ------------------------------------------------------------------------------------ variants


def gworkers_factory(http: str, ws: str):
    def make(loop, app):
        from gworkers.config import Config
        from gworkers.server import ServerState

        state = ServerState(Config(http=http, ws=ws, loop="asyncio"), app, loop)
        return state.protocol_factory

    return make


def gworkers_lazy_factory(loop, app):
    """gworkers (httptools) with the request Task made by a plain ``create_task``, as on 3.11:
    on 3.12+ the difference to ``gworkers`` is what starting the Task eagerly is worth."""
    from gworkers.config import Config
    from gworkers.server import ServerState

    state = ServerState(Config(http="httptools", ws="websockets", loop="asyncio"), app, loop)
    # WorkerContext is read-only for the server's own code; a benchmark may swap the spawner
    object.__setattr__(state.context, "spawn", loop.create_task)
    object.__setattr__(state.context, "eager", False)
    return state.protocol_factory


def limit_factory(loop, app, eager=True):
    path = Path(os.environ.get("BENCH_LIMIT_SERVER", "/work/shared/bench/limit_server.py"))
    spec = importlib.util.spec_from_file_location("limit_server", path)
    ls = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ls)
    ls._refresh_date()
    flusher = ls.Flusher(loop, deferred=True)
    return lambda: ls.ASGIHTTP(app, loop, eager, flusher)


def uvicorn_factory(http: str, ws: str):
    def make(loop, app):
        from uvicorn.config import Config
        from uvicorn.server import ServerState

        config = Config(app=app, http=http, ws=ws, lifespan="off", access_log=False, log_level="warning")
        config.load()
        state = ServerState()
        state.default_headers = [(b"date", email.utils.formatdate(usegmt=True).encode()), (b"server", b"uvicorn")]
        cls = config.http_protocol_class
        return lambda: cls(config=config, server_state=state, app_state={}, _loop=loop)

    return make


def gunicorn_asgi_factory(loop, app):
    """Gunicorn 27's ``-k asgi`` protocol on a stand-in for its worker object."""
    from types import SimpleNamespace

    from gunicorn.asgi.protocol import ASGIProtocol
    from gunicorn.config import Config
    from gunicorn.glogging import Logger

    cfg = Config()
    cfg.set("accesslog", None)
    cfg.set("asgi_lifespan", "off")
    worker = SimpleNamespace(cfg=cfg, log=Logger(cfg), asgi=app, loop=loop, alive=True, nr=0, nr_conns=0,
                             max_requests=sys.maxsize, state={})
    return lambda: ASGIProtocol(worker)


VARIANTS = {
    "gworkers": gworkers_factory("httptools", "websockets"),
    "gworkers-h11": gworkers_factory("h11", "wsproto"),
    "gworkers-lazy": gworkers_lazy_factory,
    "limit-asgi": limit_factory,
    "limit-asgi-task": lambda loop, app: limit_factory(loop, app, eager=False),
    "uvicorn": uvicorn_factory("httptools", "websockets-sansio"),
    "uvicorn-h11": uvicorn_factory("h11", "wsproto"),
    "gunicorn-asgi": gunicorn_asgi_factory,
}


# ------------------------------------------------------------------------------------ driver


def new_loop():
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def setup(variant: str, loop, workload: str = "plaintext"):
    from bench.apps import app

    factory = VARIANTS[variant](loop, app)
    counter = [0]
    if workload == "ws":
        return loop.run_until_complete(upgrade_all(factory, counter)), counter
    protos = []
    for _ in range(CONNS):
        proto = factory()
        proto.connection_made(FakeTransport(counter))
        protos.append(proto)
    return protos, counter


async def upgrade_all(factory, counter) -> list:
    """WS_CONNS connections, each upgraded to WebSocket (its 101 written)."""
    transports = []
    for _ in range(WS_CONNS):
        transport = WSTransport(counter)
        transport.protocol = proto = factory()
        proto.connection_made(transport)
        proto.data_received(WS_UPGRADE)
        transports.append(transport)
    for _ in range(1000):
        if counter[0] >= WS_CONNS:
            break
        await asyncio.sleep(0)
    else:
        raise RuntimeError(f"upgrades missing: {counter[0]} of {WS_CONNS}")
    counter[0] = 0
    # the upgrade swapped each transport's protocol: feed the WebSocket protocols directly
    return [t.protocol for t in transports]


async def drive(protos, counter, data: bytes, per_feed: int, iterations: int) -> int:
    target = counter[0]
    for _ in range(iterations):
        for proto in protos:
            proto.data_received(data)
        target += per_feed * len(protos)
        await responses_reach(counter, target)
    return target


async def responses_reach(counter: list, target: int) -> None:
    """Let the loop run until the fake transports have counted ``target`` responses."""
    spins = 0
    while counter[0] < target:
        await asyncio.sleep(0)
        spins += 1
        if spins > 1000:
            raise RuntimeError(f"responses missing: {counter[0]} of {target}")


def teardown(protos, loop) -> None:
    """Tell every protocol its connection is gone and let the app Tasks finish (WebSocket)."""
    for proto in protos:
        proto.connection_lost(None)
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    if pending:
        loop.run_until_complete(asyncio.wait(pending, timeout=5))


def measure(variant: str, workload: str, iterations: int) -> float:
    """µs of Python per request, this variant and workload, one fresh loop."""
    loop = new_loop()
    try:
        protos, counter = setup(variant, loop, workload)
        data, per_feed = WORKLOADS[workload]
        loop.run_until_complete(drive(protos, counter, data, per_feed, 5))  # warm-up
        start = time.perf_counter()
        loop.run_until_complete(drive(protos, counter, data, per_feed, iterations))
        elapsed = time.perf_counter() - start
        teardown(protos, loop)
        return elapsed * 1e6 / (iterations * per_feed * len(protos))
    finally:
        loop.close()


def profile(variant: str, workload: str, iterations: int, top: int = 25) -> None:
    loop = new_loop()
    protos, counter = setup(variant, loop, workload)
    data, per_feed = WORKLOADS[workload]
    loop.run_until_complete(drive(protos, counter, data, per_feed, 5))
    prof = cProfile.Profile()
    prof.enable()
    loop.run_until_complete(drive(protos, counter, data, per_feed, iterations))
    prof.disable()
    teardown(protos, loop)
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)


def callgrind(spec: str, n: int) -> None:
    variant, _, workload = spec.partition(":")
    workload = workload or "plaintext"
    counts = []
    for iters in (n, 2 * n):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "cg.out"
            cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-m",
                   "bench.hotpath", "--run-only", f"{variant}:{workload}", "--iterations", str(iters)]
            # a fixed hash seed: the same dict/set layouts in both runs, so the count repeats exactly;
            # no .pyc written, or the first run alone would pay for compiling what changed
            env = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
            res = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
            m = re.search(r"Collected : (\d+)", res.stderr)
            if not m:
                raise SystemExit(f"callgrind failed: {res.stderr[-500:]}")
            counts.append(int(m.group(1)))
    per_feed = WORKLOADS[workload][1]
    conns = WS_CONNS if workload == "ws" else CONNS
    per_req = (counts[1] - counts[0]) / (n * per_feed * conns)
    unit = "message" if workload == "ws" else "request"
    print(f"{variant}:{workload}: {per_req:,.0f} instructions per {unit}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="gworkers,gworkers-h11,limit-asgi,uvicorn")
    ap.add_argument("--workloads", default="plaintext,echo,pipe16")
    ap.add_argument("--iterations", type=int, default=100, help="feeds per connection per repeat")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--profile", metavar="WORKLOAD", help="cProfile the first variant on this workload")
    ap.add_argument("--top", type=int, default=25, help="functions listed by --profile")
    ap.add_argument("--callgrind", metavar="VARIANT[:WORKLOAD]", help="instructions per request (valgrind)")
    ap.add_argument("--run-only", metavar="VARIANT:WORKLOAD", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    variants = args.variants.split(",")
    if args.run_only:
        variant, _, workload = args.run_only.partition(":")
        loop = new_loop()
        protos, counter = setup(variant, loop, workload)
        data, per_feed = WORKLOADS[workload]
        loop.run_until_complete(drive(protos, counter, data, per_feed, args.iterations))
        teardown(protos, loop)
        return 0
    if args.callgrind:
        callgrind(args.callgrind, max(args.iterations // 10, 5))
        return 0
    if args.profile:
        profile(variants[0], args.profile, args.iterations * 3, args.top)
        return 0
    workloads = args.workloads.split(",")
    results: dict = {}
    for _ in range(args.repeats):  # interleaved, so drift hits every variant alike
        for w in workloads:
            for v in variants:
                try:
                    results.setdefault((v, w), []).append(measure(v, w, args.iterations))
                except Exception as exc:  # noqa: BLE001 - a missing peer must not stop the others
                    results[(v, w)] = exc
    print(f"in-process µs per request (median of {args.repeats}; {CONNS} connections, ws: {WS_CONNS},"
          " µs per echoed message)")
    print(f"{'variant':14}" + "".join(f"{w:>12}" for w in workloads))
    for v in variants:
        row = f"{v:14}"
        for w in workloads:
            r = results.get((v, w))
            row += f"{'error':>12}" if isinstance(r, Exception) else f"{statistics.median(r):12.2f}"
        print(row)
    for (v, w), r in results.items():
        if isinstance(r, Exception):
            print(f"{v} {w}: {r!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
