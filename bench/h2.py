"""The HTTP/2 scenarios: h2load drives them, curl checks each server's answers first.

Every server speaks cleartext HTTP/2 by prior knowledge (the client preface on a fresh
connection, h2load's default for http:// URLs), each from its own command line
(``Server.h2`` in run.py): all of them can, so no TLS is involved. h2load runs one thread
pinned to CPU 1, like wrk; ``-m`` is the number of concurrent streams per connection (1: one
request in flight per connection, as HTTP/1.1 without pipelining; 100: the usual
SETTINGS_MAX_CONCURRENT_STREAMS, every server's default or above). The echo scenario posts a
4 KiB file (``h2load -d``), well inside the 64 KiB initial stream window, so no server waits
on a WINDOW_UPDATE.

h2load reports req/s over its main duration and the mean time per request (no percentiles);
every request that did not succeed (failed, errored, timed out) or did not answer 2xx counts
as an error.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from .model import Scenario

HOST = "127.0.0.1"
HELLO = b"Hello, world!"

SCENARIOS = [
    Scenario("h2-plaintext", kind="h2", conns=32, depth=1,
             title="HTTP/2 GET / 'Hello, world!', 32 connections x 1 stream"),
    Scenario("h2-plaintext-m100", kind="h2", conns=16, depth=100,
             title="HTTP/2 GET / 'Hello, world!', 16 connections x 100 concurrent streams"),
    Scenario("h2-echo-4k", kind="h2", path="/echo", method="POST", body=4096, conns=32, depth=1,
             title="HTTP/2 POST 4 KiB, echoed, 32 connections x 1 stream"),
    Scenario("h2-echo-4k-m100", kind="h2", path="/echo", method="POST", body=4096, conns=16, depth=100,
             title="HTTP/2 POST 4 KiB, echoed, 16 connections x 100 concurrent streams"),
]


def available() -> bool:
    return shutil.which("h2load") is not None and shutil.which("curl") is not None


def body_file(folder: Path, size: int) -> Path:
    """The request body h2load and curl post (made once per size)."""
    path = folder / f"body-{size}.bin"
    if not path.exists():
        path.write_bytes(b"b" * size)
    return path


def _curl(port: int, sc: Scenario, body: Path | None, timeout: float = 10) -> tuple[int, str, bytes]:
    """One request over h2c by prior knowledge: (status, HTTP version, body). OSError when
    nothing answers (curl exit 7: connection refused)."""
    marker = b"\n--bench-status--"
    argv = ["curl", "-s", "--http2-prior-knowledge", "--max-time", str(timeout), "-o", "-",
            "-w", marker.decode() + "%{http_code} %{http_version}", f"http://{HOST}:{port}{sc.path}"]
    if body is not None:
        argv[1:1] = ["--data-binary", f"@{body}", "-H", "content-type: application/octet-stream"]
    out = subprocess.run(argv, capture_output=True, timeout=timeout + 5, check=False)
    if out.returncode in (7, 52, 56):  # refused, empty reply, reset: not up yet
        raise OSError(f"curl exit {out.returncode}")
    if out.returncode:
        raise RuntimeError(f"curl exit {out.returncode}: {out.stderr[-200:]!r}")
    data, _, tail = out.stdout.rpartition(marker)
    status, version = tail.decode().split()
    return int(status), version, data


def probe(port: int) -> None:
    """Raises OSError while the server does not answer yet, RuntimeError if it answers wrong."""
    status, version, data = _curl(port, Scenario("probe", kind="h2"), None, timeout=2)
    if status != 200 or version != "2" or data != HELLO:
        raise RuntimeError(f"h2c GET / answered {status} HTTP/{version} {data[:60]!r}")


def check(port: int, sc: Scenario, folder: Path) -> None:
    """One real request of the scenario over HTTP/2, checked, before it is measured."""
    body = body_file(folder, sc.body) if sc.body else None
    status, version, data = _curl(port, sc, body)
    want = body.read_bytes() if body else HELLO
    if status != 200 or version != "2" or data != want:
        raise RuntimeError(f"h2c {sc.method} {sc.path}: {status} HTTP/{version} {data[:60]!r}")


def command(port: int, sc: Scenario, seconds: int, folder: Path) -> list[str]:
    argv = ["h2load", "-t1", f"-c{sc.conns}", f"-m{sc.depth}", f"-D{seconds}"]
    if sc.body:
        argv += ["-d", str(body_file(folder, sc.body)), "-H", "content-type: application/octet-stream"]
    return [*argv, f"http://{HOST}:{port}{sc.path}"]


_FINISHED = re.compile(r"^finished in [\d.]+m?s, ([\d.]+) req/s")
_REQUESTS = re.compile(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                       r"(\d+) errored, (\d+) timeout")
_STATUS = re.compile(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_TRAFFIC = re.compile(r"^traffic: \S+ \((\d+)\) total")
_TIME = re.compile(r"^time for request:\s+(\S+)\s+(\S+)\s+(\S+)")
_UNIT_US = {"us": 1, "ms": 1000, "s": 1_000_000}


def _us(text: str) -> float:
    number = re.match(r"[\d.]+", text)
    return float(number.group()) * _UNIT_US[text[number.end():]] if number else 0.0


def parse(text: str, seconds: int) -> dict:
    """h2load's report as the harness's result dict (requests = succeeded ones, in ``seconds``)."""
    found: dict = {}
    for line in text.splitlines():
        line = line.strip()
        for key, pattern in (("finished", _FINISHED), ("requests", _REQUESTS), ("status", _STATUS),
                             ("traffic", _TRAFFIC), ("time", _TIME)):
            m = pattern.match(line)
            if m:
                found[key] = m.groups()
    if "requests" not in found:
        raise RuntimeError(f"no result from h2load: {text[-300:]}")
    # h2load counts errored and timed-out requests among the failed ones
    _total, _started, _done, succeeded, failed, _errored, _timeout = map(int, found["requests"])
    not_2xx = sum(map(int, found.get("status", ("0", "0", "0", "0"))[1:]))
    return {
        "requests": succeeded,
        "us": seconds * 1_000_000,
        "bytes": int(found.get("traffic", ("0",))[0]),
        "errors": failed + not_2xx,
        "p50": _us(found["time"][2]) if "time" in found else 0,  # the mean, in µs
        "p99": 0,
    }


def load(port: int, sc: Scenario, seconds: int, folder: Path, pin: list[str], env: dict) -> dict:
    out = subprocess.run([*pin, *command(port, sc, seconds, folder)], env=env, capture_output=True, text=True,
                         timeout=seconds + 60, check=False)
    return parse(out.stdout + out.stderr, seconds)
