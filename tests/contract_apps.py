"""App, hook files and a load generator for the Gunicorn-contract tests (signals, hooks, logs).

The app reports what it does to an events file (``GW_TEST_EVENTS``) so tests can wait on a
condition ("the request reached the app") instead of sleeping; tests/apps.py's lifespan writes its
shutdown line to ``GW_TEST_SHUTDOWN_MARKER``, which these tests point at the same file, so one file
shows the order of requests, lifespan shutdown and server hooks.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from tests.apps import app as base_app
from tests.apps import respond


def _event(line: str) -> None:
    path = os.environ.get("GW_TEST_EVENTS")
    if path:
        with open(path, "a") as f:
            f.write(f"{line} {os.getpid()}\n")


async def app(scope, receive, send):
    if scope["type"] == "http":
        path = scope["path"]
        query = scope["query_string"].decode()
        if path == "/slow":
            # ?seconds: report arrival, sleep, report completion
            _event(f"started /slow?{query}")
            await asyncio.sleep(float(query or "3"))
            await respond(send, body=b"slow done")
            _event(f"finished /slow?{query}")
            return
        if path == "/hold":
            # ?name: report arrival, answer once the file release-<name> exists next to the events
            events = os.environ["GW_TEST_EVENTS"]
            release = Path(events).with_name(f"release-{query}")
            _event(f"started /hold?{query}")
            while not release.exists():
                await asyncio.sleep(0.02)
            await respond(send, body=b"held " + query.encode())
            return
        if path == "/mark":
            _event(f"started /mark?{query}")
            return await respond(send, body=str(os.getpid()).encode())
        if path == "/after":
            # ?seconds, or ?hold: answer at once, then keep working (as a Starlette
            # BackgroundTask does) and report when that work is done
            await respond(send, body=b"sent")
            _event(f"working /after?{query}")
            if query == "hold":  # until release-after exists: never, unless a test writes it
                release = Path(os.environ["GW_TEST_EVENTS"]).with_name("release-after")
                while not release.exists():
                    await asyncio.sleep(0.02)
            else:
                await asyncio.sleep(float(query or "2"))
            _event(f"finished /after?{query}")
            return
        if path == "/outlive":
            # start a response, wait for the client to leave, then keep working without it
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"partial", "more_body": True})
            while (await receive())["type"] != "http.disconnect":
                pass
            _event("client left /outlive")
            await asyncio.sleep(float(query or "2"))
            _event("finished /outlive")
            return
    return await base_app(scope, receive, send)


def read_events(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


HOOKS = '''
import json, os
EVENTS = {events!r}

def _w(line):
    with open(EVENTS, "a") as f:
        f.write(line + "\\n")

def post_worker_init(worker):
    _w(f"post_worker_init {{os.getpid()}}")

def worker_int(worker):
    _w(f"worker_int {{os.getpid()}}")

def worker_abort(worker):
    _w(f"worker_abort {{os.getpid()}}")

def worker_exit(server, worker):
    _w(f"worker_exit {{os.getpid()}}")
'''


def write_hooks(tmp: Path, events: Path, extra: str = "") -> Path:
    """A Gunicorn config file whose server hooks append "<hook> <pid>" lines to ``events``."""
    path = tmp / "hooks_conf.py"
    path.write_text(HOOKS.format(events=str(events)) + extra)
    return path


class Load:
    """Concurrent GET requests from a small thread pool of httpx clients, until ``stop()``.

    Each request goes on a fresh connection (``Connection: close``): a server may close an idle
    keep-alive connection at any time, and a request crossing that close on the wire is the
    client's to retry (RFC 9112, 9.3.1), so only fresh connections make "zero failed requests"
    a statement about the server. ``max_seconds`` bounds a load the test forgets to stop.
    """

    def __init__(self, server, threads: int = 4, path: str = "/pid", max_seconds: float = 60.0):
        self.server = server
        self.path = path
        self.max_seconds = max_seconds
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failures: list[str] = []
        self.pids: dict[int, int] = {}
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        import time

        import httpx

        end = time.monotonic() + self.max_seconds
        with self.server.client(headers={"connection": "close"}, timeout=20.0) as client:
            while not self.stopping.is_set() and time.monotonic() < end:
                try:
                    response = client.get(self.path)
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                with self.lock:
                    if response.status_code == 200:
                        self.ok += 1
                        pid = int(response.text)
                        self.pids[pid] = self.pids.get(pid, 0) + 1
                    else:
                        self.failures.append(f"status {response.status_code}: {response.text[:200]}")

    def served_by(self, pids) -> int:
        with self.lock:
            return sum(self.pids.get(p, 0) for p in pids)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)
