"""Load clients wrk cannot be: websocket echo and idle keep-alive connections.

    python -m bench.clients ws --port P [--conns 32 --size 64 --duration 5]
    python -m bench.clients idle --port P [--conns 1000]

``ws``: N connections, each upgrades then plays ping-pong with one pre-masked text frame
(hand-written framing, so the client costs far less per message than the servers); every
echo is compared with what was sent. ``idle``: N keep-alive connections each make one GET,
then sit idle; the client prints ``READY <n>`` and waits for a line on stdin (the harness
reads the server's memory meanwhile), then prints ``ALIVE <n>`` (connections the server kept)
and exits. Both print one ``RESULT <json>`` line at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import sys
import time

MASK = b"\x0f\x1e\x2d\x3c"


def masked_text_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    else:
        head = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    key = (MASK * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return head + MASK + body


class Echo(asyncio.Protocol):
    """One websocket connection in strict ping-pong."""

    def __init__(self, run: dict, frame: bytes, expect: bytes, upgraded: asyncio.Future) -> None:
        self.run = run
        self.frame = frame
        self.expect = expect  # the unmasked frame the server must send back
        self.upgraded = upgraded
        self.buf = b""
        self.open = False
        self.sent = 0

    def connection_made(self, transport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16))
        transport.write(
            b"GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.upgraded.set_exception(ConnectionError(buf[:40].decode("latin-1")))
                self.transport.close()
                return
            self.open = True
            buf = buf[end + 4 :]
            self.upgraded.set_result(None)
        size = len(self.expect)
        run = self.run
        while len(buf) >= size:
            if buf[:size] != self.expect:
                run["bad"] += 1
                self.transport.close()
                return
            buf = buf[size:]
            now = time.perf_counter_ns()
            if run["on"]:
                run["count"] += 1
                if run["count"] % 8 == 0:
                    run["rtt"].append(now - self.sent)
            self.sent = now
            self.transport.write(self.frame)
        self.buf = buf

    def go(self) -> None:
        self.sent = time.perf_counter_ns()
        self.transport.write(self.frame)

    def connection_lost(self, exc) -> None:
        if self.run["on"]:
            self.run["lost"] += 1
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("closed before the upgrade"))


async def ws(args) -> dict:
    loop = asyncio.get_running_loop()
    payload = b"m" * args.size
    frame = masked_text_frame(payload)
    expect = bytes((0x81, len(payload))) + payload if args.size < 126 else None
    if expect is None:
        expect = bytes((0x81, 126)) + len(payload).to_bytes(2, "big") + payload
    run = {"on": False, "count": 0, "bad": 0, "lost": 0, "rtt": []}
    conns = []
    for _ in range(args.conns):
        fut = loop.create_future()
        _, proto = await loop.create_connection(lambda f=fut: Echo(run, frame, expect, f), args.host, args.port)
        await asyncio.wait_for(fut, 10)
        conns.append(proto)
    for proto in conns:
        proto.go()
    await asyncio.sleep(0.3)  # warm-up: load generator, not a test
    run["on"] = True
    start = time.perf_counter()
    await asyncio.sleep(args.duration)
    run["on"] = False
    elapsed = time.perf_counter() - start
    rtt = sorted(run["rtt"]) or [0]
    for proto in conns:
        proto.transport.close()
    return {
        "requests": run["count"],
        "us": int(elapsed * 1e6),
        "bytes": run["count"] * args.size,
        "errors": run["bad"] + run["lost"],
        "p50": rtt[len(rtt) // 2] // 1000,
        "p99": rtt[int(len(rtt) * 0.99)] // 1000,
    }


class Idle(asyncio.Protocol):
    def __init__(self, answered: asyncio.Future) -> None:
        self.answered = answered
        self.buf = b""
        self.alive = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.alive = True
        transport.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.buf.endswith(b"Hello, world!") and not self.answered.done():
            self.answered.set_result(self.buf.startswith(b"HTTP/1.1 200"))
            self.buf = b""

    def connection_lost(self, exc) -> None:
        self.alive = False
        if not self.answered.done():
            self.answered.set_result(False)


async def idle(args) -> dict:
    loop = asyncio.get_running_loop()
    protos: list[Idle] = []
    ok = 0

    async def one() -> None:
        nonlocal ok
        fut = loop.create_future()
        try:
            _, proto = await loop.create_connection(lambda: Idle(fut), args.host, args.port)
        except OSError:
            return
        protos.append(proto)
        if await asyncio.wait_for(fut, 30):
            ok += 1

    start = time.perf_counter()
    for i in range(0, args.conns, 250):  # in batches: stay under the listen backlog
        await asyncio.gather(*(one() for _ in range(min(250, args.conns - i))), return_exceptions=True)
    elapsed = time.perf_counter() - start
    print(f"READY {ok}", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    alive = sum(p.alive for p in protos)
    print(f"ALIVE {alive}", flush=True)
    for p in protos:
        p.transport.close()
    return {"requests": ok, "us": int(elapsed * 1e6), "bytes": 0, "errors": args.conns - alive, "p50": 0, "p99": 0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("ws", "idle"))
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, default=None)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--duration", type=float, default=5.0)
    args = ap.parse_args(argv)
    if args.conns is None:
        args.conns = 32 if args.mode == "ws" else 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(ws(args) if args.mode == "ws" else idle(args))
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
