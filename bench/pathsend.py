"""pathsend benchmark: the server sending a file vs the app streaming it vs uvicorn-worker.

    python bench/pathsend.py [--rounds 3] [--duration 5]

Each server runs one Gunicorn worker pinned to CPU 0, wrk on CPU 1; servers are interleaved
per round and every ratio is taken within a round (this machine is noisy).
Cases, for a 1 MiB and a 100 MiB file:
  gworkers-pathsend   gworkers.Worker, app sends http.response.pathsend
  gworkers-stream     gworkers.Worker, app reads the file and sends 64 KiB body messages
  uvw-fileresponse    uvicorn_worker.UvicornWorker serving Starlette's FileResponse
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

APP = '''
import os
FILE = os.environ["BENCH_FILE"]
SIZE = os.path.getsize(FILE)
HEAD = [(b"content-type", b"application/octet-stream"), (b"content-length", b"%d" % SIZE)]

async def pathsend(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEAD})
    await send({"type": "http.response.pathsend", "path": FILE})

async def stream(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEAD})
    with open(FILE, "rb") as f:
        while True:
            chunk = f.read(65536)
            if not chunk:
                break
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})

def _starlette():
    from starlette.applications import Starlette
    from starlette.responses import FileResponse
    from starlette.routing import Route

    async def endpoint(request):
        return FileResponse(FILE)

    return Starlette(routes=[Route("/", endpoint)])

starlette_app = _starlette()
'''

SERVERS = {
    "gworkers-pathsend": ["-k", "gworkers.Worker", "bench_pathsend_app:pathsend"],
    "gworkers-stream": ["-k", "gworkers.Worker", "bench_pathsend_app:stream"],
    "uvw-fileresponse": ["-k", "uvicorn_worker.UvicornWorker", "bench_pathsend_app:starlette_app"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for child in [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (FileNotFoundError, IndexError):
            pass
    return total


def run_one(name: str, size_name: str, workdir: Path, file: Path, duration: float) -> dict:
    port = free_port()
    env = dict(os.environ, BENCH_FILE=str(file),
               PYTHONPATH=os.pathsep.join([str(workdir), str(REPO)]))
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "gunicorn", "-w", "1", "-b",
           f"127.0.0.1:{port}", "--log-level", "warning", *SERVERS[name]]
    log = open(workdir / f"{name}-{size_name}.log", "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=workdir)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    got = 0
                    while chunk := s.recv(1 << 20):
                        got += len(chunk)
                if got >= file.stat().st_size:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not serve: see {log.name}")
            time.sleep(0.1)
        before = cpu_seconds(proc.pid)
        out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c8", f"-d{int(duration)}s",
                              f"http://127.0.0.1:{port}/"], capture_output=True, text=True).stdout
        cpu = cpu_seconds(proc.pid) - before
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        return {"rps": requests / duration, "cpu_per_req_ms": 1000 * cpu / max(requests, 1)}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-pathsend-"))
    (workdir / "bench_pathsend_app.py").write_text(APP)
    files = {}
    for size_name, size in (("1MiB", 1 << 20), ("100MiB", 100 << 20)):
        path = workdir / f"file-{size_name}.bin"
        with open(path, "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(size >> 20):
                f.write(block)
        files[size_name] = path
    results: dict = {}
    for rnd in range(args.rounds):
        for size_name, path in files.items():
            for name in SERVERS:
                r = run_one(name, size_name, workdir, path, args.duration)
                results.setdefault((size_name, name), []).append(r)
                print(f"round {rnd + 1} {size_name:7} {name:18} {r['rps']:9.1f} req/s "
                      f"{r['cpu_per_req_ms']:8.3f} ms CPU/req", flush=True)
    print("\n| file | server | req/s (median) | MB/s | server CPU ms/req | ratio to uvw-fileresponse |")
    print("|---|---|---|---|---|---|")
    for size_name, path in files.items():
        mb = path.stat().st_size / 1e6
        for name in SERVERS:
            rs = results[(size_name, name)]
            ratios = [r["rps"] / b["rps"] for r, b in zip(rs, results[(size_name, "uvw-fileresponse")], strict=True)]
            rps = statistics.median(r["rps"] for r in rs)
            cpu = statistics.median(r["cpu_per_req_ms"] for r in rs)
            print(f"| {size_name} | {name} | {rps:.1f} | {rps * mb:.0f} | {cpu:.2f} | "
                  f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |")


if __name__ == "__main__":
    main()
