"""Small tests behind the sentences of docs/server-behavior.md that the other edge test files do
not cover: headers, flow control, 100-continue, HEAD, pipelining, graceful shutdown."""

from __future__ import annotations

import json
import signal

from tests.conftest import wait_until
from tests.edge.raw import marker_lines, read_response, read_until_close

APP = "tests.edge_apps:app"


def start(start_server, worker, tmp_path, **kwargs):
    env = {"GW_EDGE_MARKER": str(tmp_path / "calls"), "GW_EDGE_RELEASE": str(tmp_path / "release")}
    return start_server(app=APP, worker=worker, env=env, **kwargs)


def test_request_headers_lowercased_in_order(start_server, worker, tmp_path):
    server = start(start_server, worker, tmp_path)
    with server.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Dup: 1\r\nx-dup: 2\r\nX-Space:   v w  \r\n\r\n")
        status, headers, body = read_response(sock)
    assert status == 200
    got = [tuple(h) for h in json.loads(body)["headers"]]
    assert got == [("host", "x"), ("x-dup", "1"), ("x-dup", "2"), ("x-space", "v w")]
    assert headers["server"] == "gworkers"
    assert "date" in headers


def test_unread_body_pauses_reading(start_server, worker, tmp_path):
    """The app holds without reading: the server stops reading, so the client's send blocks."""
    server = start(start_server, worker, tmp_path)
    total = 48 * 1024 * 1024  # well past what the kernel buffers on loopback
    with server.connect() as sock:
        sock.sendall(b"POST /hold HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total)
        wait_until(lambda: "POST /hold" in marker_lines(tmp_path / "calls"), message="app call")
        sock.settimeout(2)
        sent = 0
        chunk = b"x" * 65536
        try:
            while sent < total:
                sent += sock.send(chunk)
        except TimeoutError:
            pass
        assert sent < total  # blocked long before the body was all taken
        (tmp_path / "release").touch()
        sock.settimeout(15)
        status, _, body = read_response(sock)
        assert (status, body) == (200, b"held")
        # the rest of the body is read and discarded, then the connection serves again
        sock.sendall(b"x" * (total - sent) + b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = read_response(sock)
    assert status == 200 and json.loads(body)["path"] == "/next"


def test_continue_sent_when_the_app_reads(start_server, worker, tmp_path):
    server = start(start_server, worker, tmp_path)
    with server.connect() as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        buf = bytearray()
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(4096)
        assert bytes(buf).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        del buf[: buf.index(b"\r\n\r\n") + 4]
        sock.sendall(b"hello")
        status, _, body = read_response(sock, buf)
    assert (status, body) == (200, b"5")


def test_no_continue_when_the_app_answers_without_reading(start_server, worker, tmp_path):
    server = start(start_server, worker, tmp_path)
    with server.connect() as sock:
        sock.sendall(b"POST /noread HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        status, headers, _ = read_response(sock)
        assert status == 200
        assert headers["connection"] == "close"
        assert read_until_close(sock) == b""


def test_head_keeps_length_sends_no_body(start_server, worker, tmp_path):
    server = start(start_server, worker, tmp_path)
    with server.connect() as sock:
        sock.sendall(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = bytearray()
        while buf.count(b"\r\n\r\n") < 2:
            buf += sock.recv(65536)
        head_end = buf.index(b"\r\n\r\n") + 4
        head = bytes(buf[:head_end]).lower()
        assert head.startswith(b"http/1.1 200")
        assert b"content-length: " in head and b"content-length: 0\r\n" not in head
        status, _, body = read_response(sock, buf[head_end:])  # the next bytes are the GET's
    assert status == 200 and json.loads(body)["path"] == "/g"


def test_pipelined_requests_answered_in_order(start_server, worker, tmp_path):
    server = start(start_server, worker, tmp_path)
    with server.connect() as sock:
        sock.sendall(b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5)))
        buf = bytearray()
        paths = [json.loads(read_response(sock, buf)[2])["path"] for _ in range(5)]
    assert paths == ["/0", "/1", "/2", "/3", "/4"]


def test_graceful_shutdown(start_server, worker, tmp_path):
    server = start(start_server, worker, tmp_path)
    with server.connect(timeout=20) as idle, server.connect(timeout=20) as busy:
        idle.sendall(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(idle)[0] == 200
        busy.sendall(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: "GET /hold" in marker_lines(tmp_path / "calls"), message="hold")
        server.signal(signal.SIGTERM)
        assert read_until_close(idle) == b""  # idle keep-alive connection: closed at once
        (tmp_path / "release").touch()
        status, headers, body = read_response(busy)
        assert (status, body) == (200, b"held")
        assert headers["connection"] == "close"
    assert server.wait() == 0


def test_pipelined_broken_request_answered_after_the_good_ones(start_server, worker, tmp_path):
    server = start(start_server, worker, tmp_path)
    with server.connect() as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGET /bad HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nGET /never HTTP/1.1\r\n"
                     b"Host: x\r\n\r\n")
        buf = bytearray()
        assert read_response(sock, buf)[0] == 200
        status, headers, _ = read_response(sock, buf)
        assert (status, headers["connection"]) == (400, "close")
        assert buf == b"" and read_until_close(sock) == b""
    assert marker_lines(tmp_path / "calls") == ["GET /ok"]
