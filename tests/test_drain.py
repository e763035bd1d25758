"""The drain, end to end on both workers: listeners closed at once, app calls awaited.

A draining worker closes every listening descriptor it holds, so a new client is refused (the
master is stopping) or served by a live worker (HUP), never left in a backlog nobody accepts
from. It then waits for every app call still running (work after the response, or after the
client left) before lifespan shutdown, and cancels what is left at the end of its budget with one
warning line.
"""

from __future__ import annotations

import re
import signal
import socket
import ssl
import struct
import threading

import pytest

from tests.conftest import wait_until
from tests.contract_apps import read_events
from tests.test_workers_signals import alive, booted, live_workers, setup

DRAINING = r"\[{pid}\] \[INFO\] gworkers: draining: listeners closed"


def new_client_outcome(server) -> str:
    """What a new client meets: "refused", "reset", "closed" (accepted, then closed without
    an answer), "answered", or "silent" (accepted, and nothing within the socket's timeout)."""
    try:
        sock = server.connect(timeout=30)
    except ConnectionRefusedError:
        return "refused"
    with sock:
        try:
            sock.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = sock.recv(65536)
        except ConnectionResetError:
            return "reset"
        except TimeoutError:
            return "silent"
    return "answered" if data else "closed"


def for_pid(lines: list[str], pid: int) -> list[str]:
    return [line for line in lines if line.endswith(f" {pid}")]


# ---------------------------------------------------------------------- listeners


def test_term_refuses_new_clients_while_a_request_drains(tmp_path, start_server, worker):
    server, events = setup(tmp_path, start_server, worker, ["-w", "1", "--graceful-timeout", "60"])
    pid = live_workers(server)[0]
    result: dict = {}

    def slow():
        with server.client() as client:
            result["response"] = client.get("/slow?3")

    thread = threading.Thread(target=slow)
    thread.start()
    wait_until(lambda: any(e.startswith("started /slow") for e in read_events(events)),
               message="slow request in the app")
    mark = len(server.log())
    server.signal(signal.SIGTERM)
    server.wait_for_log(DRAINING.format(pid=pid), start=mark)
    outcome = new_client_outcome(server)
    # told at once: the 3 s request is still running when the new client hears back
    finished = any(e.startswith("finished /slow") for e in read_events(events))
    assert (outcome, finished) == ("refused", False)
    thread.join(30)
    assert result["response"].status_code == 200
    assert result["response"].text == "slow done"
    assert server.proc.wait(30) == 0
    assert f"worker_exit {pid}" in read_events(events)


def test_hup_new_clients_go_to_the_new_workers_while_old_ones_drain(tmp_path, start_server,
                                                                     worker):
    server, events = setup(tmp_path, start_server, worker, ["-w", "2", "--graceful-timeout", "60"])
    wait_until(lambda: len(live_workers(server)) == 2, message="two workers")
    old = set(live_workers(server))
    with server.connect(timeout=30) as held:
        held.sendall(b"GET /hold?a HTTP/1.1\r\nHost: x\r\n\r\n")
        line = wait_until(lambda: next((e for e in read_events(events)
                                        if e.startswith("started /hold?a ")), None),
                          message="held")
        busy = int(line.rsplit(" ", 1)[1])
        mark = len(server.log())
        server.signal(signal.SIGHUP)
        # every old worker has begun its drain (closed its listeners), the busy one and the
        # idle one the arbiter stops once the new workers are up
        for pid in old:
            server.wait_for_log(DRAINING.format(pid=pid), start=mark)
        wait_until(lambda: len(booted(server, mark)) == 2, message="new workers booted")
        new = set(booted(server, mark))
        # the busy old worker still drains; every new client is served, by a new worker
        with server.client(headers={"connection": "close"}) as client:
            for _ in range(20):
                response = client.get("/pid")
                assert response.status_code == 200
                assert int(response.text) in new
        assert alive(busy)
        (tmp_path / "release-a").write_text("")
        answer = b""
        while b"held a" not in answer:
            chunk = held.recv(65536)
            assert chunk, answer
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200") and b"connection: close" in answer.lower()
    wait_until(lambda: not any(alive(p) for p in old), message="old workers gone")


# ---------------------------------------------------------------------- app calls


@pytest.mark.parametrize("trigger", ["term", "hup", "max_requests"])
def test_drain_waits_for_app_work_after_the_response(tmp_path, start_server, worker, trigger):
    args = ["-w", "1", "--graceful-timeout", "60"]
    if trigger == "max_requests":
        args += ["--max-requests", "1", "--max-requests-jitter", "0"]
    server, events = setup(tmp_path, start_server, worker, args)
    pid = live_workers(server)[0]
    with server.client() as client:
        response = client.get("/after?2")  # answered at once; the app works 2 s more
    assert response.text == "sent"
    wait_until(lambda: f"working /after?2 {pid}" in read_events(events), message="working")
    if trigger == "term":
        server.signal(signal.SIGTERM)
    elif trigger == "hup":
        server.signal(signal.SIGHUP)
    wait_until(lambda: f"worker_exit {pid}" in read_events(events), message="worker_exit")
    order = [line for line in for_pid(read_events(events), pid)
             if not line.startswith(("post_worker_init", "working"))]
    assert order == [f"finished /after?2 {pid}", f"lifespan shutdown {pid}", f"worker_exit {pid}"]
    log = server.log()
    assert "Exception in ASGI application" not in log and "CancelledError" not in log
    assert "at the end of the graceful timeout" not in log


def test_drain_waits_for_an_app_call_whose_client_left(tmp_path, start_server, worker):
    server, events = setup(tmp_path, start_server, worker, ["-w", "1", "--graceful-timeout", "60"])
    pid = live_workers(server)[0]
    with server.connect(timeout=30) as sock:
        sock.sendall(b"GET /outlive?2 HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while b"partial" not in received:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
        # gone for good: a reset, so the connection is lost at once (a FIN alone would leave
        # it open until the app ends its response)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # the app noticed and works on
    wait_until(lambda: f"client left /outlive {pid}" in read_events(events), message="left")
    server.signal(signal.SIGTERM)
    assert server.proc.wait(30) == 0
    order = [line for line in for_pid(read_events(events), pid)
             if not line.startswith(("post_worker_init", "client left"))]
    assert order == [f"finished /outlive {pid}", f"lifespan shutdown {pid}", f"worker_exit {pid}"]
    assert "at the end of the graceful timeout" not in server.log()


def test_app_calls_past_the_budget_are_cancelled_with_one_warning(tmp_path, start_server,
                                                                  worker):
    server, events = setup(tmp_path, start_server, worker, ["-w", "1", "--graceful-timeout", "3"])
    pid = live_workers(server)[0]
    with server.client() as client:
        assert client.get("/after?hold").text == "sent"  # works on until release-after: never
    wait_until(lambda: f"working /after?hold {pid}" in read_events(events), message="working")
    server.signal(signal.SIGTERM)
    assert server.proc.wait(30) == 0
    lines = for_pid(read_events(events), pid)
    assert f"finished /after?hold {pid}" not in lines
    # cancelled, then lifespan shutdown and worker_exit still ran, before the arbiter's SIGKILL
    assert lines[-2:] == [f"lifespan shutdown {pid}", f"worker_exit {pid}"]
    log = server.log()
    warnings = re.findall(rf"\[{pid}\] \[WARNING\] (.*)", log)
    assert len(warnings) == 1, warnings
    assert re.match(r"gworkers: 0 connection\(s\) cut and 1 app call\(s\) cancelled at the end "
                    r"of the graceful timeout", warnings[0]), warnings
    assert "Exception in ASGI application" not in log and "Traceback" not in log
    assert "SIGKILL" not in log



# ---------------------------------------------------------------------- failed TLS handshakes


def test_failed_tls_handshakes_do_not_hold_up_the_drain(tmp_path, start_server, worker,
                                                        tls_files):
    """asyncio drops a connection whose TLS handshake failed without telling its protocol; the
    drain must not count it as open until the end of its budget (it did on PyPy, where nothing
    collects the protocol by itself)."""
    server, _ = setup(tmp_path, start_server, worker,
                      ["-w", "1", "--graceful-timeout", "60", "--ca-certs", tls_files["ca"],
                       "--cert-reqs", "2"], tls=tls_files)
    pid = live_workers(server)[0]
    for _ in range(3):  # no client certificate: the server refuses the handshake
        with pytest.raises((ssl.SSLError, OSError, RuntimeError)):  # (RuntimeError: PyPy's ssl)
            with server.connect() as sock:
                sock.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
                if not sock.recv(1):
                    raise ConnectionError("closed")
    server.signal(signal.SIGTERM)
    assert server.proc.wait(60) == 0
    log = server.log()
    assert f"[{pid}] [INFO] gworkers: draining: listeners closed; 0 connection(s) open" in log
    assert "at the end of the graceful timeout" not in log
