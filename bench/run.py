"""Interleaved benchmark: gworkers against its peers and the limit servers, one worker each.

Every server runs pinned to CPU 0 (``taskset -c 0``; its children inherit the pin), the load
generator (wrk, or bench/clients.py for websocket and idle connections) pinned to CPU 1. Rounds
are interleaved -- round 1 runs A B C ..., round 2 runs A B C ... again -- and every ratio is
computed inside one round and then the median over rounds is reported, because on a shared
machine the same server measured twice minutes apart can differ by 30%.

    python -m bench                               # full run, 6 rounds
    python -m bench --smoke                       # ~10 s: 1 round, gworkers and gworkers-h11
    python -m bench --servers gworkers,uvw,granian --scenarios plaintext,json --rounds 8
    python -m bench --list
    python -m bench --servers gworkers,hypercorn,granian,gunicorn-asgi --scenarios h2-plaintext,h2-echo-4k-m100

HTTP/2 scenarios (``h2-*``, bench/h2.py) run h2load against each server's HTTP/2 command
(``Server.h2``: the same server with h2c by prior knowledge on), started apart from the HTTP/1.1
one so the HTTP/1.1 figures are those of the server as configured by default.

Results: the table on stdout, and runs.jsonl + table.md in --out (default /tmp/bench-out/<time>).
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from . import h2
from .model import Run, Scenario, Server
from .report import table, versions

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent  # servers run here, so "bench.apps:app" and our checkout import first
HOST = "127.0.0.1"
APP = "bench.apps:app"
TICK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
LIMIT_SERVER = "{python} -m bench.limit --backlog 4096 --host {host} --port {port}"  # see bench/limit.py

_GUNICORN = "{python} -m gunicorn -w 1 -b {host}:{port} --log-level warning --backlog 4096 " \
            "--keep-alive 120 --worker-connections 20000 --timeout 120"
_H2C = " --http-protocols h2,h1 --http2-cleartext prior-knowledge"  # Gunicorn's settings, ours too
_GRANIAN = "{python} -m granian --interface asgi --workers 1 --runtime-threads 1 --loop uvloop " \
           "--no-access-log --log-level warning --backlog 4096 --host {host} --port {port}"
_UVICORN = "{python} -m uvicorn --loop uvloop --no-access-log --log-level warning --timeout-keep-alive 120 " \
           "--backlog 4096 --host {host} --port {port}"


SERVERS: dict[str, Server] = {
    "gworkers": Server(f"{_GUNICORN} -k gworkers.Worker {{app}}", note="uvloop + httptools + websockets",
                       h2=f"{_GUNICORN} -k gworkers.Worker{_H2C} {{app}}"),
    "gworkers-h11": Server(f"{_GUNICORN} -k gworkers.H11Worker {{app}}", note="asyncio + h11 + wsproto",
                           h2=f"{_GUNICORN} -k gworkers.H11Worker{_H2C} {{app}}"),
    "uvw": Server(f"{_GUNICORN} -k uvicorn_worker.UvicornWorker {{app}}",
                  note="uvicorn-worker (uvloop, httptools, websockets-sansio): the baseline"),
    "uvw-h11": Server(f"{_GUNICORN} -k uvicorn_worker.UvicornH11Worker {{app}}", note="asyncio + h11 + wsproto"),
    "gunicorn-asgi": Server(f"{_GUNICORN} -k asgi --asgi-loop uvloop {{app}}",
                            note="Gunicorn's own -k asgi, uvloop, parser auto (gunicorn_h1c when installed); "
                                 "HTTP/2 with the h2 package",
                            h2=f"{_GUNICORN} -k asgi --asgi-loop uvloop{_H2C} {{app}}"),
    "uvicorn": Server(f"{_UVICORN} --http httptools {{app}}",
                      note="standalone; --ws auto = websockets-sansio; HTTP/2 needs --http zttp (Zig core)",
                      h2=f"{_UVICORN} --http zttp --http2 {{app}}"),
    "granian": Server(f"{_GRANIAN} {{app}}", note="Rust HTTP, one runtime thread; HTTP/2 only with --http 2",
                      h2=f"{_GRANIAN} --http 2 {{app}}"),
    "hypercorn": Server("{python} -m hypercorn -w 1 -k uvloop --backlog 4096 --keep-alive 120 --log-level warning "
                        "-b {host}:{port} {app}", note="h11 + h2 packages, uvloop; h2c by prior knowledge as is",
                        h2="{python} -m hypercorn -w 1 -k uvloop --backlog 4096 --keep-alive 120 "
                           "--log-level warning -b {host}:{port} {app}"),
    "limit-asgi": Server(f"{LIMIT_SERVER} --mode asgi {{app}}",
                         ws=False, note="cheapest ASGI dispatch: eager step, one write, coalesced writes"),
    "limit-raw": Server(f"{LIMIT_SERVER} --mode raw",
                        ws=False, only=("plaintext", "c256", "pipe16"), note="canned bytes, no ASGI"),
    "limit-ws": Server(f"{LIMIT_SERVER} --mode ws",
                       only=("ws-echo",), note="raw websocket echo, no ASGI"),
}
DEFAULT_SERVERS = ["gworkers", "gworkers-h11", "uvw", "uvw-h11", "gunicorn-asgi", "uvicorn", "granian", "hypercorn",
                   "limit-asgi", "limit-raw", "limit-ws"]
BASELINE = "uvw"
REFERENCES = ["uvw-h11", "granian", "limit-asgi"]  # ratio columns besides the baseline
WS_REFERENCES = ["uvicorn", "gunicorn-asgi", "limit-ws"]
H2_REFERENCES = ["granian", "hypercorn", "gunicorn-asgi"]  # issue 16's targets (no baseline: uvw has no HTTP/2)


SCENARIOS = [
    Scenario("plaintext", title="GET / 'Hello, world!', 64 connections"),
    Scenario("json", path="/json", short=True, title="GET /json, serialised per request, 64 connections"),
    Scenario("echo-4k", path="/echo", method="POST", body=4096, title="POST 4 KiB, echoed, 64 connections"),
    Scenario("stream-1m", path="/stream", short=True, title="1 MiB as 16 x 64 KiB chunks (chunked), 64 connections"),
    Scenario("pipe16", depth=16, short=True, title="plaintext pipelined 16 deep, 64 connections"),
    Scenario("c256", conns=256, short=True, title="plaintext, 256 connections"),
    Scenario("ws-echo", kind="ws", path="/ws", conns=32, title="websocket echo, 64 B text, 32 connections, ping-pong"),
    Scenario("idle", kind="idle", conns=1000, title="idle keep-alive connections: worker RSS per connection"),
    *h2.SCENARIOS,
]


# ------------------------------------------------------------------------------------ /proc


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def session_pids(sid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and int(fields[3]) == sid:
                pids.append(int(entry))
    return pids


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    out = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            out[pid] = int(fields[11]) + int(fields[12])
    return out


def status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cores() -> dict[str, tuple[int, int]]:
    """cpuN -> (busy, total) jiffies; idle, iowait and steal do not count as busy."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *vals = line.split()
                v = [int(x) for x in vals[:8]]
                out[name] = (sum(v) - v[3] - v[4] - v[7], sum(v))
    return out


def busy(a: dict, b: dict, cpu: str) -> float:
    if cpu not in a:
        return 0.0
    total = b[cpu][1] - a[cpu][1]
    return 100.0 * (b[cpu][0] - a[cpu][0]) / total if total else 0.0


# ------------------------------------------------------------------------------------ servers


def pin(cpu: str) -> list[str]:
    return ["taskset", "-c", cpu] if PINNING else []


PINNING = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Running:
    """One server process (tree) in its own session, so it can be measured and killed whole."""

    def __init__(self, name: str, cmd: str, env: dict, python: str, logs: Path) -> None:
        self.name = name
        self.port = free_port()
        argv = shlex.split(cmd.format(python=python, host=HOST, port=self.port, app=APP))
        self.log_path = logs / f"{name}.log"
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([*pin("0"), *argv], cwd=ROOT, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, probe, timeout: float = 30.0) -> None:
        """``probe(port)`` raises OSError while the server is not up (``h1_probe``, ``h2.probe``)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with {self.proc.returncode}: {self.tail()}")
            try:
                probe(self.port)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not answering after {timeout:.0f} s: {self.tail()}") from None
                time.sleep(0.05)  # polling a port: the only way to know a server is up

    def tail(self) -> str:
        try:
            return self.log_path.read_bytes()[-300:].decode("utf-8", "replace")
        except OSError:
            return ""

    def pids(self) -> list[int]:
        return session_pids(self.proc.pid)

    def stop(self) -> None:
        for pid in [self.proc.pid, *self.pids()]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        self.log.close()


def h1_probe(port: int) -> None:
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    conn.request("GET", "/")
    body = conn.getresponse().read()
    conn.close()
    if body != b"Hello, world!":
        raise RuntimeError(f"GET / answered {body[:60]!r}")


def check(port: int, sc: Scenario) -> None:
    """One real request of the scenario, checked, before it is measured."""
    if sc.kind != "wrk":
        return
    body = b"b" * sc.body if sc.body else None
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    conn.request(sc.method, sc.path, body=body)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    want = {"/": lambda d: d == b"Hello, world!", "/json": lambda d: json.loads(d) == {"message": "Hello, world!"},
            "/echo": lambda d: d == body, "/stream": lambda d: len(d) == 1 << 20}[sc.path]
    if resp.status != 200 or not want(data):
        raise RuntimeError(f"{sc.method} {sc.path}: {resp.status} {data[:60]!r}")


# ------------------------------------------------------------------------------------ runs


def result_line(text: str) -> dict:
    for line in text.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"no result from the load generator: {text[-300:]}")


def load(srv: Running, sc: Scenario, seconds: int, python: str, env: dict, folder: Path) -> dict:
    if sc.kind == "h2":
        return h2.load(srv.port, sc, seconds, folder, pin("1"), env)
    if sc.kind == "ws":
        cmd = [*pin("1"), python, "-m", "bench.clients", "ws", "--port", str(srv.port), "--conns", str(sc.conns),
               "--duration", str(seconds)]
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=seconds + 60)
        return result_line(out.stdout + out.stderr)
    wenv = dict(env, BENCH_METHOD=sc.method, BENCH_BODY=str(sc.body), BENCH_DEPTH=str(sc.depth))
    cmd = [*pin("1"), "wrk", "-t1", f"-c{sc.conns}", f"-d{seconds}s", "--timeout", "10s", "-s",
           str(HERE / "wrk.lua"), f"http://{HOST}:{srv.port}{sc.path}"]
    out = subprocess.run(cmd, env=wenv, capture_output=True, text=True, timeout=seconds + 60)
    return result_line(out.stdout + out.stderr)


def measured(rnd: int, srv: Running, sc: Scenario, seconds: int, python: str, env: dict, folder: Path) -> Run:
    pids = srv.pids()
    c0, t0 = cores(), cpu_ticks(pids)
    res = load(srv, sc, seconds, python, env, folder)
    c1, t1 = cores(), cpu_ticks(srv.pids())
    used = {pid: t1[pid] - t0.get(pid, 0) for pid in t1}
    worker = max(used, key=used.get) if used else srv.proc.pid
    secs = res["us"] / 1e6
    n = res["requests"]
    return Run(rnd, srv.name, sc.name, ok=n > 0, rps=n / secs if secs else 0.0, p50_ms=res["p50"] / 1000,
               p99_ms=res["p99"] / 1000, errors=res["errors"],
               cpu_us=1e6 * sum(used.values()) / TICK / n if n else 0.0,
               core0=busy(c0, c1, "cpu0"), core1=busy(c0, c1, "cpu1"),
               rss_mib=status_kib(worker, "VmHWM:") / 1024, extra={"mb_per_s": res["bytes"] / secs / 1e6})


def idle_run(rnd: int, srv: Running, sc: Scenario, python: str, env: dict) -> Run:
    """Open sc.conns keep-alive connections, one request each, and weigh the worker meanwhile."""
    pids = srv.pids()
    t0 = cpu_ticks(pids)
    cmd = [*pin("1"), python, "-m", "bench.clients", "idle", "--port", str(srv.port), "--conns", str(sc.conns)]
    client = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    # the worker is the server process holding the most memory (gunicorn's arbiter holds less)
    before = {pid: status_kib(pid, "VmRSS:") for pid in pids}
    ready = client.stdout.readline()
    after = {pid: status_kib(pid, "VmRSS:") for pid in srv.pids()}
    t1 = cpu_ticks(srv.pids())
    used = {pid: t1[pid] - t0.get(pid, 0) for pid in t1}
    worker = max(used, key=used.get) if used else srv.proc.pid
    client.stdin.write("\n")
    client.stdin.flush()
    rest = client.communicate(timeout=60)[0]
    if not ready.startswith("READY"):
        raise RuntimeError(f"idle client: {ready} {rest[-300:]}")
    answered = int(ready.split()[1])
    alive = int(next((ln.split()[1] for ln in rest.splitlines() if ln.startswith("ALIVE")), "0"))
    grown = after.get(worker, 0) - before.get(worker, 0)
    return Run(rnd, srv.name, sc.name, ok=answered == sc.conns, rps=answered, errors=sc.conns - alive,
               kib_per_conn=grown / sc.conns, alive=alive, rss_mib=after.get(worker, 0) / 1024)


def one_start(rnd: int, name: str, cmd: str, scenarios: list[Scenario], args, env: dict, out: Path) -> list[Run]:
    """Start the server once, measure each scenario on it in turn, stop it."""
    http2 = scenarios[0].kind == "h2"
    srv = Running(name + ("-h2" if http2 else ""), cmd, env, args.python, out / "logs")
    runs = []
    try:
        srv.wait_ready(h2.probe if http2 else h1_probe)
        for sc in scenarios:
            try:
                if http2:
                    h2.check(srv.port, sc, out)
                else:
                    check(srv.port, sc)
                if sc.kind == "idle":
                    run = idle_run(rnd, srv, sc, args.python, env)
                else:
                    run = measured(rnd, srv, sc, args.short if sc.short else args.duration, args.python, env, out)
                run.server = name
            except Exception as exc:  # noqa: BLE001 - one failure must not stop the run
                run = Run(rnd, name, sc.name, ok=False, error=str(exc)[:300])
            runs.append(run)
            lat = f"mean {run.p50_ms:6.2f} ms" if http2 else f"p99 {run.p99_ms:6.2f} ms"
            print(f"r{rnd} {name:14} {sc.name:17} {run.rps:>10,.0f}  {lat}  "
                  f"cpu {run.cpu_us:6.1f} us/op  core1 {run.core1:3.0f}%  rss {run.rss_mib:5.1f} MiB"
                  + (f"  {run.kib_per_conn:.1f} KiB/conn, {run.alive} kept" if sc.kind == "idle" else "")
                  + (f"  errors {run.errors}" if run.errors else "")
                  + ("" if run.ok else f"  FAILED {run.error}"), flush=True)
    except Exception as exc:  # noqa: BLE001
        runs += [Run(rnd, name, sc.name, ok=False, error=str(exc)[:300]) for sc in scenarios[len(runs):]]
        print(f"r{rnd} {name}: FAILED {exc}", flush=True)
    finally:
        srv.stop()
    return runs


# ------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", help=f"comma list (default: {','.join(DEFAULT_SERVERS)})")
    ap.add_argument("--scenarios", help="comma list (default: all)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--duration", type=int, default=4, help="seconds per main run (plaintext, echo-4k, ws-echo)")
    ap.add_argument("--short", type=int, default=3, help="seconds per secondary run")
    ap.add_argument("--idle-conns", type=int, default=1000)
    ap.add_argument("--baseline", default=BASELINE)
    ap.add_argument("--python", default=sys.executable, help="interpreter that has the servers installed")
    ap.add_argument("--out", help="results folder (default /tmp/bench-out/<time>)")
    ap.add_argument("--smoke", action="store_true", help="1 round, 1 s runs, gworkers and gworkers-h11, one h2 scenario if h2load is there (~15 s)")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args(argv)

    if args.list:
        for name, s in SERVERS.items():
            print(f"{name:14} {s.cmd}\n{'':14} {s.note}" + (f"\n{'':14} HTTP/2: {s.h2}" if s.h2 else ""))
        for sc in SCENARIOS:
            print(f"{sc.name:17} {sc.title}")
        return 0
    if args.smoke:
        args.rounds, args.duration, args.short = 1, 1, 1
        args.servers = args.servers or "gworkers,gworkers-h11"
        smoke = "plaintext,echo-4k,pipe16,idle" + (",h2-plaintext-m100" if h2.available() else "")
        args.scenarios = args.scenarios or smoke
        args.idle_conns = min(args.idle_conns, 100)
    names = args.servers.split(",") if args.servers else DEFAULT_SERVERS
    wanted = args.scenarios.split(",") if args.scenarios else [sc.name for sc in SCENARIOS]
    unknown = [n for n in names if n not in SERVERS] + [s for s in wanted if s not in {x.name for x in SCENARIOS}]
    if unknown:
        ap.error(f"unknown server or scenario: {', '.join(unknown)} (see --list)")
    scenarios = [sc for sc in SCENARIOS if sc.name in wanted]
    if shutil.which("wrk") is None and any(sc.kind == "wrk" for sc in scenarios):
        ap.error("wrk is not installed (bench/run.sh installs it: apt-get install wrk)")
    if not h2.available() and any(sc.kind == "h2" for sc in scenarios):
        ap.error("h2load or curl is not installed (bench/run.sh installs them: apt-get install nghttp2-client curl)")
    for sc in scenarios:
        if sc.kind == "idle":
            sc.conns = args.idle_conns

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the servers inherit it
    out = Path(args.out or f"/tmp/bench-out/{datetime.datetime.now():%Y%m%d-%H%M%S}")
    (out / "logs").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    env["PATH"] = str(Path(args.python).parent) + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONASYNCIODEBUG", None)
    env.pop("WEB_CONCURRENCY", None)

    started = datetime.datetime.now(datetime.UTC)
    ver = versions(args.python)
    print(f"# {len(names)} servers x {len(scenarios)} scenarios x {args.rounds} rounds -> {out}", flush=True)
    runs: list[Run] = []
    raw = open(out / "runs.jsonl", "w")  # noqa: SIM115 - closed below
    try:
        for rnd in range(1, args.rounds + 1):
            for name in names:
                server = SERVERS[name]
                mine = [sc for sc in scenarios if (not server.only or sc.name in server.only)
                        and (sc.kind != "ws" or server.ws) and (sc.kind != "h2" or server.h2)]
                # HTTP/1.1 and HTTP/2 scenarios each from their own start of the server
                for cmd, group in ((server.cmd, [sc for sc in mine if sc.kind != "h2"]),
                                   (server.h2, [sc for sc in mine if sc.kind == "h2"])):
                    if group:
                        for run in one_start(rnd, name, cmd, group, args, env, out):
                            runs.append(run)
                            raw.write(json.dumps(asdict(run)) + "\n")
                            raw.flush()
    finally:
        raw.close()
    minutes = (datetime.datetime.now(datetime.UTC) - started).total_seconds() / 60
    head = (f"## Results {started:%Y-%m-%d %H:%M} UTC ({args.rounds} rounds, {minutes:.1f} min, "
            f"{args.duration} s main runs / {args.short} s secondary; server on CPU 0, client on CPU 1"
            f"{'' if PINNING else ' (NOT pinned: fewer than 2 CPUs or no taskset)'})\n\n"
            f"Versions: {ver}.\n\nRatios: median over rounds of (server / reference in the same round); "
            f"the range in brackets is min-max of those. srv CPU µs/op: CPU time of the server's process "
            f"tree per request or message.\n")
    refs = {"wrk": [args.baseline, *REFERENCES], "ws": [args.baseline, *WS_REFERENCES], "h2": H2_REFERENCES}
    text = head + table(runs, scenarios, names, refs)
    (out / "table.md").write_text(text)
    print("\n" + text, flush=True)
    return 0 if any(r.ok for r in runs) else 1
