"""Timeouts against real Gunicorn, both workers: deadlines that trickled bytes do not move.

Short timeouts come from a CONFIG_KWARGS subclass (the ``config_worker`` fixture). Nothing here
measures time: each test waits for the server's answer (or close) on a socket whose own timeout
is only the failure bound.
"""

from __future__ import annotations

import resource
import socket

import pytest

from tests.edge.raw import is_open, marker_lines, read_response, read_until_close

APP = "tests.edge_apps:app"


def start(start_server, config_worker, worker, tmp_path, args=(), **kwargs):
    path, env = config_worker(worker, **kwargs)
    env["GW_EDGE_MARKER"] = str(tmp_path / "calls")
    return start_server(app=APP, worker=path, args=list(args), env=env)


def trickle(sock: socket.socket, data: bytes, step: float = 0.2, limit: int = 200) -> bytes:
    """Send ``data`` cyclically one byte at a time, paced by a short recv wait; stop when the
    server answers or closes. Returns what the server sent."""
    sock.settimeout(step)
    for i in range(limit):
        try:
            sock.send(data[i % len(data) : i % len(data) + 1])
        except OSError:
            break
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return b""
        sock.settimeout(10)
        return chunk + (read_until_close(sock) if chunk else b"")
    raise AssertionError("the server let a trickling client go on")


def test_silent_connection_closed_at_header_deadline(start_server, config_worker, worker, tmp_path):
    server = start(start_server, config_worker, worker, tmp_path, timeout_request_header=1)
    with server.connect(timeout=15) as sock:
        assert read_until_close(sock) == b""  # closed, and no 408: no request had begun
    assert marker_lines(tmp_path / "calls") == []


def test_trickled_head_gets_408(start_server, config_worker, worker, tmp_path):
    server = start(start_server, config_worker, worker, tmp_path, timeout_request_header=1)
    with server.connect(timeout=15) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        answer = trickle(sock, b"abcdefgh")
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in answer.lower()
    assert marker_lines(tmp_path / "calls") == []


def test_keepalive_idle_closed_then_trickled_head_408(start_server, config_worker, worker,
                                                         tmp_path):
    server = start(start_server, config_worker, worker, tmp_path,
                   timeout_keep_alive=1, timeout_request_header=1)
    with server.connect(timeout=15) as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200
        assert read_until_close(sock) == b""  # idle keep-alive: closed silently
    with server.connect(timeout=15) as sock:
        sock.sendall(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200
        sock.sendall(b"GET /c HTTP/1.1\r\n")  # the next head begins, then trickles
        answer = trickle(sock, b"X-Slow: abc\r\n")
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert marker_lines(tmp_path / "calls") == ["GET /a", "GET /b"]


def test_trickled_body_gets_408(start_server, config_worker, worker, tmp_path):
    server = start(start_server, config_worker, worker, tmp_path, timeout_request_body=1)
    with server.connect(timeout=15) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        answer = trickle(sock, b"x")
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert marker_lines(tmp_path / "calls") == ["POST /echo"]


def test_trickled_chunked_body_gets_408(start_server, config_worker, worker, tmp_path):
    server = start(start_server, config_worker, worker, tmp_path, timeout_request_body=1)
    with server.connect(timeout=15) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        answer = trickle(sock, b"1\r\nx\r\n")
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_slow_body_with_progress_is_served(start_server, config_worker, worker, tmp_path):
    """A body that keeps bringing data is not cut off, however long it takes in total."""
    server = start(start_server, config_worker, worker, tmp_path, timeout_request_body=1)
    with server.connect(timeout=15) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 40000\r\n\r\n")
        sock.settimeout(0.1)
        for _ in range(19):  # 2000 bytes every 0.1 s (the recv wait paces it)
            sock.sendall(b"x" * 2000)
            with pytest.raises((TimeoutError, socket.timeout)):
                sock.recv(1)
        sock.settimeout(15)
        sock.sendall(b"x" * 2000)
        status, _, body = read_response(sock)
        assert (status, body) == (200, b"40000")
    assert marker_lines(tmp_path / "calls") == ["POST /echo"]


def test_slowloris_does_not_delay_a_normal_request(start_server, config_worker, worker, tmp_path):
    server = start(start_server, config_worker, worker, tmp_path, timeout_request_header=60)
    slow = []
    try:
        for i in range(100):
            sock = server.connect()
            sock.sendall(b"GET /slow%d HTTP/1.1\r\nHost: x\r\nX-a: " % i)
            slow.append(sock)
        with server.client() as client:
            response = client.get("/normal")
        assert response.status_code == 200
        assert response.json()["path"] == "/normal"
        assert all(is_open(sock) for sock in slow)  # the slow ones still hang
    finally:
        for sock in slow:
            sock.close()
    assert marker_lines(tmp_path / "calls") == ["GET /normal"]


def test_2000_idle_connections_then_a_request(start_server, config_worker, worker, tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is too low")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4200), hard))  # the server inherits it
    server = start(start_server, config_worker, worker, tmp_path,
                   args=["--worker-connections", "4000", "--backlog", "4096"],
                   timeout_request_header=120)
    idle = []
    try:
        for _ in range(2000):
            idle.append(server.connect())
        with server.connect(timeout=30) as sock:
            sock.sendall(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, body = read_response(sock)
        assert status == 200
        assert b'"/after"' in body
        assert is_open(idle[0]) and is_open(idle[-1])
    finally:
        for sock in idle:
            sock.close()


def test_keepalive_zero_closes_after_each_response(start_server, config_worker, worker, tmp_path):
    server = start(start_server, config_worker, worker, tmp_path, args=["--keep-alive", "0"])
    with server.connect(timeout=15) as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = read_response(sock)
        assert (status, headers["connection"]) == (200, "close")
        assert read_until_close(sock) == b""
    assert marker_lines(tmp_path / "calls") == ["GET /a"]


def test_silent_tls_handshake_closed_at_header_deadline(start_server, config_worker, worker,
                                                        tmp_path, tls_files):
    path, env = config_worker(worker, timeout_request_header=1)
    server = start_server(app=APP, worker=path, env=env, tls=tls_files)
    with socket.create_connection((server.host, server.port), timeout=15) as sock:
        assert read_until_close(sock) == b""  # no ClientHello sent: closed, not kept for 60 s
    with server.client() as client:  # TLS itself still works
        assert client.get("/x").status_code == 200


def test_half_closed_partial_head_is_closed(start_server, config_worker, worker, tmp_path):
    """A peer that half-closes inside a head can never finish it: closed at once, not at the
    header deadline (an hour here)."""
    server = start(start_server, config_worker, worker, tmp_path, timeout_request_header=3600)
    with server.connect(timeout=15) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-a: ")
        sock.shutdown(socket.SHUT_WR)
        assert read_until_close(sock) == b""
    with server.connect(timeout=15) as sock:  # a complete request then EOF is still answered
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        assert read_until_close(sock).startswith(b"HTTP/1.1 200 ")
