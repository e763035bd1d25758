"""Gunicorn's signals, end to end: the master's (HUP, TTIN/TTOU, USR2, TERM, INT, USR1) and the
arbiter's SIGABRT on a blocked worker, on both worker classes, with real load where it matters."""

from __future__ import annotations

import re
import signal
import threading
from pathlib import Path

import httpx
import pytest

from tests.conftest import read_until_close, wait_until
from tests.contract_apps import Load, read_events, write_hooks
from tests.edge.raw import is_open, read_response

APP = "tests.contract_apps:app"


def booted(server, start: int = 0) -> list[int]:
    return [int(p) for p in re.findall(r"Booting worker with pid: (\d+)", server.log()[start:])]


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return "zombie"


def live_workers(server) -> list[int]:
    return [p for p in server.worker_pids() if alive(p)]


def setup(tmp_path, start_server, worker, args=(), hooks_extra="", app=APP, tls=None):
    events = tmp_path / "events.txt"
    conf = write_hooks(tmp_path, events, hooks_extra)
    env = {"GW_TEST_EVENTS": str(events), "GW_TEST_SHUTDOWN_MARKER": str(events)}
    server = start_server(app=app, worker=worker, args=["-c", str(conf), *args], env=env, tls=tls)
    wait_until(lambda: live_workers(server), message="a worker")
    return server, events


def test_hup_under_load_loses_nothing(tmp_path, start_server, worker, tls_mode):
    server, _ = setup(tmp_path, start_server, worker, ["-w", "2"], tls=tls_mode)
    wait_until(lambda: len(live_workers(server)) == 2, message="two workers")
    old = set(live_workers(server))
    with Load(server) as load:
        wait_until(lambda: load.ok >= 20, message="load running")
        mark = len(server.log())
        server.signal(signal.SIGHUP)
        wait_until(lambda: len(booted(server, mark)) == 2, message="new workers booted")
        new = set(booted(server, mark))
        wait_until(lambda: not any(alive(p) for p in old), message="old workers gone")
        wait_until(lambda: load.served_by(new) >= 20, message="new workers serving")
    assert load.failures == []
    assert load.served_by(old) > 0


def test_ttin_ttou_scale(tmp_path, start_server, worker):
    server, events = setup(tmp_path, start_server, worker, ["-w", "1"])
    wait_until(lambda: len(live_workers(server)) == 1, message="one worker")
    first = live_workers(server)[0]
    server.signal(signal.SIGTTIN)
    wait_until(lambda: len(live_workers(server)) == 2, message="scaled up to two")
    second = (set(live_workers(server)) - {first}).pop()
    with server.client() as client:
        wait_until(lambda: f"post_worker_init {second}" in read_events(events), message="init")
        assert client.get("/pid").status_code == 200
    server.signal(signal.SIGTTOU)
    # TTOU retires the oldest worker, gracefully: it returns, so worker_exit runs
    wait_until(lambda: not alive(first), message="oldest worker gone")
    assert live_workers(server) == [second]
    wait_until(lambda: f"worker_exit {first}" in read_events(events), message="worker_exit")
    with server.client() as client:
        assert client.get("/pid").text == str(second)


def test_binary_upgrade_usr2_winch_term_loses_nothing(tmp_path, start_server, worker):
    pidfile = tmp_path / "gunicorn.pid"
    server, _ = setup(tmp_path, start_server, worker, ["-w", "2", "--pid", str(pidfile)])
    old_master = server.proc.pid
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip() == str(old_master),
               message="pid file")
    wait_until(lambda: len(live_workers(server)) == 2, message="two workers")
    old = set(live_workers(server))
    with Load(server) as load:
        wait_until(lambda: load.ok >= 20, message="load running")
        mark = len(server.log())
        server.signal(signal.SIGUSR2)

        def pid_in(path):
            text = path.read_text().strip() if path.exists() else ""
            return int(text) if text.isdigit() else 0

        # the new master writes <pidfile>.2 until the old one is gone
        new_pid = wait_until(lambda: pid_in(tmp_path / "gunicorn.pid.2"), message="new master")
        assert new_pid != old_master
        wait_until(lambda: len(booted(server, mark)) == 2, message="new master's workers")
        new = set(booted(server, mark))
        wait_until(lambda: load.served_by(new) >= 10, message="new workers serving")
        server.signal(signal.SIGWINCH)
        server.signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0
        wait_until(lambda: not any(alive(p) for p in old), message="old workers gone")
        wait_until(lambda: pid_in(pidfile) == new_pid, message="new master promoted")
        count = load.served_by(new)
        wait_until(lambda: load.served_by(new) >= count + 20, message="new master serving")
    try:
        assert load.failures == []
        assert alive(new_pid)
    finally:
        import os

        os.kill(new_pid, signal.SIGTERM)
        wait_until(lambda: not alive(new_pid), message="new master stopped")


def test_term_drains_in_flight_then_lifespan_then_worker_exit(tmp_path, start_server, worker):
    server, events = setup(tmp_path, start_server, worker, ["-w", "1", "--graceful-timeout", "60"])
    pid = live_workers(server)[0]
    # an idle keep-alive connection: the drain must close it at once
    idle = server.connect()
    idle.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
    first = idle.recv(65536)
    assert first.startswith(b"HTTP/1.1 200") and b"connection: close" not in first.lower()
    result: dict = {}

    def slow():
        with server.client() as client:
            result["response"] = client.get("/slow?3")
        result["events_at_response"] = read_events(events)

    thread = threading.Thread(target=slow)
    thread.start()
    wait_until(lambda: any(e.startswith("started /slow") for e in read_events(events)),
               message="slow request in the app")
    server.signal(signal.SIGTERM)
    idle.settimeout(20)
    assert idle.recv(65536) == b""  # closed by the drain...
    assert not any(e.startswith("finished /slow") for e in read_events(events))  # ...at once
    idle.close()
    thread.join(30)
    response = result["response"]
    assert response.status_code == 200 and response.text == "slow done"
    # written during the drain: the client is told not to reuse the connection
    assert response.headers["connection"] == "close"
    assert server.proc.wait(30) == 0
    lines = read_events(events)
    order = [line for line in lines if not line.startswith(("post_worker_init", "started"))]
    assert order == [f"finished /slow?3 {pid}", f"lifespan shutdown {pid}", f"worker_exit {pid}"]
    assert "SIGKILL" not in server.log()
    assert "at the end of the graceful timeout" not in server.log()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_during_app_import_is_not_lost(tmp_path, start_server, worker, signum):
    """`docker stop` right after start: the worker is still importing the app (its loop does
    not run yet); the signal must still stop it cleanly, well before the arbiter's SIGKILL."""
    (tmp_path / "slowimport.py").write_text(
        "import os, time\n"
        "with open(os.environ['GW_TEST_EVENTS'], 'a') as f:\n"
        "    f.write(f'importing {os.getpid()}\\n')\n"
        "time.sleep(3)\n"
        "from tests.contract_apps import app\n")
    server, events = setup(tmp_path, start_server, worker,
                           ["-w", "1", "--graceful-timeout", "60"], app="slowimport:app")
    line = wait_until(lambda: next((e for e in read_events(events) if e.startswith("importing")),
                                   None), message="app import under way")
    pid = int(line.split()[1])
    server.signal(signum)
    assert server.proc.wait(30) == 0
    lines = read_events(events)
    assert f"worker_exit {pid}" in lines
    assert "SIGKILL" not in server.log()

def test_silent_new_connection_does_not_hold_the_drain(tmp_path, start_server, worker):
    """A connection that never sends a request (a browser's preconnect) is closed by the drain
    after a moment, even with a long keep-alive: it does not hold the worker's exit."""
    server, events = setup(tmp_path, start_server, worker,
                           ["-w", "1", "--keep-alive", "75", "--graceful-timeout", "60"])
    pid = live_workers(server)[0]
    silent = server.connect(timeout=30)
    with server.client() as client:  # the worker has accepted the silent one by now
        assert client.get("/pid").status_code == 200
    server.signal(signal.SIGTERM)
    assert server.proc.wait(30) == 0
    assert silent.recv(1) == b""  # closed cleanly, nothing sent
    silent.close()
    assert f"worker_exit {pid}" in read_events(events)
    assert "at the end of the graceful timeout" not in server.log()

def test_master_int_quick_exit_runs_worker_int(tmp_path, start_server, worker):
    server, events = setup(tmp_path, start_server, worker, ["-w", "1", "--graceful-timeout", "60"])
    pid = live_workers(server)[0]
    errors: list = []

    def slow():
        try:
            with server.client() as client:
                client.get("/slow?50")
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=slow, daemon=True)
    thread.start()
    wait_until(lambda: any(e.startswith("started /slow") for e in read_events(events)),
               message="slow request in the app")
    server.signal(signal.SIGINT)
    # quick: the master is done long before the 50 s request or the 60 s graceful timeout
    assert server.proc.wait(20) == 0
    thread.join(20)
    assert errors, "the in-flight request was cut"
    lines = read_events(events)
    assert f"worker_int {pid}" in lines
    assert f"worker_exit {pid}" in lines
    assert lines.index(f"worker_int {pid}") < lines.index(f"worker_exit {pid}")
    assert not any(e.startswith("finished /slow") for e in lines)
    assert "SIGKILL" not in server.log()


def test_blocked_loop_abort_logs_stack_and_runs_worker_abort(tmp_path, start_server, worker):
    server, events = setup(tmp_path, start_server, worker, ["-w", "1", "--timeout", "3"])
    pid = live_workers(server)[0]
    with server.client(timeout=60) as client:
        try:
            client.get("/block?60")
        except httpx.HTTPError:
            pass  # the worker is aborted under the request
    server.wait_for_log(rf"WORKER TIMEOUT \(pid:{pid}\)")
    # the stack of the stuck loop, down to the blocking call in the app, at CRITICAL
    server.wait_for_log(rf"\[CRITICAL\] Worker timed out \(pid: {pid}\); the event loop was "
                        r"blocked here:\n(?:.*\n)*?.*tests/apps.py.*\n\s+time\.sleep")
    wait_until(lambda: f"worker_abort {pid}" in read_events(events), message="worker_abort")
    wait_until(lambda: not alive(pid), message="aborted worker gone")
    # it returned through Gunicorn's exit path (worker_exit ran), and a new worker serves
    wait_until(lambda: f"worker_exit {pid}" in read_events(events), message="worker_exit")
    # the stack says it all: no app error, no asyncio complaint about the abandoned request
    assert "Exception in ASGI application" not in server.log()
    assert "never retrieved" not in server.log()
    with server.client() as client:
        wait_until(lambda: live_workers(server), message="replacement worker")
        assert client.get("/pid").status_code == 200


def test_usr1_reopens_the_access_log(tmp_path, start_server, worker):
    access = tmp_path / "access.log"
    server, _ = setup(tmp_path, start_server, worker, ["-w", "1", "--access-logfile", str(access)])
    with server.client() as client:
        client.get("/pid?before")
        wait_until(lambda: access.exists() and "/pid?before" in access.read_text(), message="log")
        access.rename(tmp_path / "access.log.1")
        server.signal(signal.SIGUSR1)
        # the worker reopens on USR1 too; requests after it land in a new file
        wait_until(lambda: client.get("/pid?after") and access.exists()
                   and "/pid?after" in access.read_text(), message="reopened access log")
    assert "/pid?before" in (tmp_path / "access.log.1").read_text()
    assert "/pid?before" not in access.read_text()


def test_max_requests_recycles_without_failures(tmp_path, start_server, worker):
    server, events = setup(tmp_path, start_server, worker,
                           ["-w", "2", "--max-requests", "25", "--max-requests-jitter", "0"])
    with Load(server) as load:
        wait_until(lambda: len(booted(server)) >= 6, timeout=60, message="workers recycled")
        served = load.ok
        wait_until(lambda: load.ok >= served + 10, message="serving after the recycle")
    assert load.failures == []
    log = server.log()
    assert log.count("Autorestarting worker after current request.") >= 4
    # the workers that left: not necessarily the first four booted, since one worker (and its
    # successors) may take most of the load and be recycled again while its sibling serves on
    recycled = [pid for pid in booted(server) if not alive(pid)]
    assert len(recycled) >= 4
    lines = read_events(events)
    # each recycled worker drained and returned: Gunicorn ran worker_exit in it
    for pid in recycled:
        assert f"worker_exit {pid}" in lines
    assert not re.search(r"Worker \(pid:\d+\) (was sent|exited with code [^0])", log)


def test_worker_connections_pauses_only_while_every_connection_is_busy(tmp_path, start_server,
                                                                       worker):
    server, events = setup(tmp_path, start_server, worker,
                           ["-w", "1", "--worker-connections", "2", "--keep-alive", "300"])
    pid = live_workers(server)[0]
    held = server.connect(timeout=30)
    held.sendall(b"GET /hold?a HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_until(lambda: f"started /hold?a {pid}" in read_events(events), message="held")
    with ws_connect(server) as ws:  # the second connection: the cap, and both are busy
        ws.send("0")
        assert ws.recv(timeout=20) == "0"
        waiting = server.connect(timeout=30)  # completes in the kernel backlog, is not accepted
        waiting.sendall(b"GET /mark?c HTTP/1.1\r\nHost: x\r\n\r\n")
        for n in range(1, 4):  # the worker keeps serving the connections it has...
            ws.send(str(n))
            assert ws.recv(timeout=20) == str(n)
        # ...but has not taken the third one
        assert f"started /mark?c {pid}" not in read_events(events)
        (tmp_path / "release-a").write_text("")
        response = b""
        while b"held a" not in response:
            response += held.recv(65536)
        assert response.startswith(b"HTTP/1.1 200")
        # held is now an idle keep-alive connection: the worker accepts again, and the waiting
        # client takes held's place
        answer = waiting.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200")  # served, not refused with a 503
        assert f"started /mark?c {pid}" in read_events(events)
        assert read_until_close(held) == b""  # closed without a word: it had no request
        ws.send("still")
        assert ws.recv(timeout=20) == "still"  # a busy connection is never the one closed
    for sock in (held, waiting):
        sock.close()
    warnings = re.findall(r"\[WARNING\] (gworkers: worker_connections .*)", server.log())
    assert warnings == ["gworkers: worker_connections (2) reached: idle connections are closed "
                        "to admit new ones, and accepting pauses while every connection is busy"]


@pytest.mark.parametrize("idle_kind", ["silent", "keepalive"])
def test_worker_connections_closes_idle_connections_for_a_real_request(
        tmp_path, start_server, config_worker, worker, idle_kind):
    """20 idle connections (never sent a byte, or idle keep-alive) against a cap of 10: the
    oldest idle ones make room, and a real request is served."""
    path, env = config_worker(worker, timeout_request_header=300)
    events = tmp_path / "events.txt"
    env["GW_TEST_EVENTS"] = str(events)
    server = start_server(app=APP, worker=path, env=env,
                          args=["-w", "1", "--worker-connections", "10", "--keep-alive", "300"])
    idle = []
    try:
        for n in range(20):
            sock = server.connect(timeout=30)
            idle.append(sock)
            if idle_kind == "keepalive":
                sock.sendall(b"GET /mark?k%d HTTP/1.1\r\nHost: x\r\n\r\n" % n)
                assert read_response(sock)[0] == 200
        with server.client() as client:
            response = client.get("/mark?real")
        assert response.status_code == 200
        wait_until(lambda: not is_open(idle[0]), message="the oldest idle connection closed")
        assert is_open(idle[-1])  # the newest is kept
    finally:
        for sock in idle:
            sock.close()
    log = server.log()
    assert len(re.findall(r"\[WARNING\] gworkers: worker_connections \(10\) reached", log)) == 1
    assert "[ERROR]" not in log


def test_worker_connections_leaves_clients_to_a_sibling(tmp_path, start_server, worker):
    server, events = setup(tmp_path, start_server, worker,
                           ["-w", "2", "--worker-connections", "1"])
    wait_until(lambda: len(live_workers(server)) == 2, message="two workers")
    held = server.connect(timeout=30)
    held.sendall(b"GET /hold?a HTTP/1.1\r\nHost: x\r\n\r\n")
    line = wait_until(lambda: next((e for e in read_events(events)
                                    if e.startswith("started /hold?a ")), None), message="held")
    busy = int(line.rsplit(" ", 1)[1])
    # the busy worker is at its cap and takes no connection: its sibling serves every one
    with server.client(headers={"connection": "close"}) as client:
        for _ in range(5):
            response = client.get("/pid")
            assert response.status_code == 200
            assert int(response.text) != busy
    (tmp_path / "release-a").write_text("")
    assert held.recv(65536).startswith(b"HTTP/1.1 200")
    held.close()

# ---------------------------------------------------------------------- WebSockets in the drain
def ws_connect(server, path="/ws"):
    from websockets.sync.client import connect

    return connect(f"ws://{server.host}:{server.port}{path}", open_timeout=20, close_timeout=20)


def close_code(ws) -> int | None:
    """Read until the server closes; the code of the close frame it sent."""
    from websockets.exceptions import ConnectionClosed

    try:
        while True:
            ws.recv(timeout=30)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None


def test_term_closes_websockets_with_1012_then_lifespan_and_worker_exit(
        tmp_path, start_server, worker):
    server, events = setup(tmp_path, start_server, worker, ["-w", "1", "--graceful-timeout", "60"])
    pid = live_workers(server)[0]
    with ws_connect(server) as ws:
        ws.send("hello")
        assert ws.recv(timeout=20) == "hello"
        server.signal(signal.SIGTERM)
        assert close_code(ws) == 1012  # service restart: come back soon
    assert server.proc.wait(30) == 0
    lines = [line for line in read_events(events) if not line.startswith("post_worker_init")]
    assert lines == [f"lifespan shutdown {pid}", f"worker_exit {pid}"]


def test_master_int_still_sends_websocket_close_frames(tmp_path, start_server, worker):
    server, events = setup(tmp_path, start_server, worker, ["-w", "1", "--graceful-timeout", "60"])
    pid = live_workers(server)[0]
    with ws_connect(server) as ws:
        ws.send("hello")
        assert ws.recv(timeout=20) == "hello"
        server.signal(signal.SIGINT)
        assert close_code(ws) == 1012
    assert server.proc.wait(20) == 0
    assert f"worker_int {pid}" in read_events(events)
    assert f"worker_exit {pid}" in read_events(events)


def test_max_requests_counts_and_closes_websockets(tmp_path, start_server, worker):
    server, events = setup(tmp_path, start_server, worker,
                           ["-w", "1", "--max-requests", "3", "--max-requests-jitter", "0"])
    pid = live_workers(server)[0]
    with ws_connect(server) as ws:  # request 1
        ws.send("one")
        assert ws.recv(timeout=20) == "one"
        with server.client(headers={"connection": "close"}) as client:
            assert client.get("/pid").text == str(pid)  # request 2
            assert client.get("/pid").text == str(pid)  # request 3: the worker recycles
        assert close_code(ws) == 1012
    wait_until(lambda: f"worker_exit {pid}" in read_events(events), message="worker_exit")
    with server.client() as client:
        wait_until(lambda: client.get("/pid").text not in ("", str(pid)), message="new worker")
