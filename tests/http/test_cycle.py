"""The shared ASGI request/response stream (gworkers/http/stream.py) on both real workers.

Raw sockets where the bytes matter (framing, 100-continue, Content-Length accounting), httpx
where only the result does. Every test runs under ``gworkers.Worker`` and ``gworkers.H11Worker``.
"""

from __future__ import annotations

import json
import socket
from email.utils import parsedate_to_datetime

import pytest

from tests.conftest import ResponseReader, wait_until, write_worker_module

GET = b"GET %b HTTP/1.1\r\nHost: t\r\n\r\n"


def get(path: bytes, version: bytes = b"1.1", extra: bytes = b"") -> bytes:
    return b"GET %b HTTP/%b\r\nHost: t\r\n%b\r\n" % (path, version, extra)


# ---------------------------------------------------------------------------- request bodies
def test_content_length_body(start_server, worker):
    server = start_server(worker=worker)
    with server.connect() as sock:
        reader = ResponseReader(sock)
        body = bytes(range(256)) * 1000
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
        sock.sendall(body)
        response = reader.read()
        assert response.status == 200
        assert response.body == body


def test_chunked_body_with_extensions_and_trailers(start_server, worker):
    server = start_server(worker=worker)
    with server.connect() as sock:
        reader = ResponseReader(sock)
        # fed in small pieces: the parser must reassemble across reads
        request = (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: yes\r\n\r\n")
        for i in range(0, len(request), 7):
            sock.sendall(request[i:i + 7])
        response = reader.read()
        assert response.body == b"hello world"
        # the connection is reusable afterwards: the body was framed exactly
        sock.sendall(GET % b"/pid")
        assert reader.read().status == 200


# ---------------------------------------------------------------------------- response framing
def test_chunked_response_when_no_length(start_server, worker):
    server = start_server(worker=worker)
    with server.connect() as sock:
        sock.sendall(GET % b"/chunked")
        reader = ResponseReader(sock)
        response = reader.read()
        assert response.framing == "chunked"
        assert response.header(b"content-length") is None
        assert response.body == b"one,two,three"
        assert response.header(b"connection") is None  # still keep-alive
        sock.sendall(GET % b"/pid")
        assert reader.read().status == 200


def test_app_transfer_encoding_ignored(start_server, worker):
    server = start_server(worker=worker)
    with server.connect() as sock:
        sock.sendall(GET % b"/te-app")
        response = ResponseReader(sock).read()
        assert response.header(b"transfer-encoding") is None
        assert response.header(b"content-length") == b"2"
        assert response.body == b"ok"


@pytest.mark.parametrize(("request_line", "status"), [
    (b"HEAD /chunked", 200), (b"HEAD /echo", 200), (b"GET /status/204", 204),
    (b"GET /status/304", 304),
])
def test_no_body_responses(start_server, worker, request_line, status):
    """HEAD, 204 and 304 carry no body; the next response on the connection proves it."""
    server = start_server(worker=worker)
    with server.connect() as sock:
        sock.sendall(request_line + b" HTTP/1.1\r\nHost: t\r\n\r\n" + GET % b"/pid")
        reader = ResponseReader(sock)
        response = reader.read(method=request_line.split()[0])
        assert response.status == status
        if status == 204:
            assert response.header(b"content-length") is None
            assert response.header(b"transfer-encoding") is None
        if request_line == b"HEAD /echo":
            # a HEAD answer keeps the Content-Length the GET would have
            assert response.header(b"content-length") == b"0"
        # the next bytes are the next response's status line, not a stray body
        nxt = reader.read()
        assert nxt.status == 200 and nxt.body.isdigit()


def test_content_length_short_closes(start_server, worker):
    """App declares 10 bytes and sends 5: what was sent goes out, then the connection closes."""
    server = start_server(worker=worker)
    with server.connect() as sock:
        sock.sendall(GET % b"/cl-short" + GET % b"/pid")
        reader = ResponseReader(sock)
        head = reader._until(b"\r\n\r\n")
        assert b"content-length: 10\r\n" in head.lower()
        rest = b""
        while reader._more():
            pass
        rest = reader.buf
        # the 5 bytes, then close: the pipelined /pid is never answered on this connection
        assert rest == b"short"
        assert reader.eof


def test_content_length_long_truncated(start_server, worker):
    """App declares 3 bytes and sends 7: exactly 3 go out, then the connection closes."""
    server = start_server(worker=worker)
    with server.connect() as sock:
        sock.sendall(GET % b"/cl-long" + GET % b"/pid")
        reader = ResponseReader(sock)
        response = reader.read()
        assert response.header(b"content-length") == b"3"
        assert response.body == b"too"
        assert reader.closed()
    assert "longer than its Content-Length" in server.log()


# ---------------------------------------------------------------------------- 100-continue
def test_expect_continue_sent_when_app_reads(start_server, worker):
    server = start_server(worker=worker)
    with server.connect() as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        reader = ResponseReader(sock)
        interim = reader.read()
        assert interim.status_line == b"HTTP/1.1 100 Continue"
        sock.sendall(b"hello")
        response = reader.read()
        assert response.status == 200 and response.body == b"hello"
        # keep-alive survives the exchange
        sock.sendall(GET % b"/pid")
        assert reader.read().status == 200


def test_expect_continue_not_sent_when_app_does_not_read(start_server, worker):
    server = start_server(worker=worker)
    with server.connect() as sock:
        sock.sendall(b"POST /noread HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        reader = ResponseReader(sock)
        response = reader.read()
        # no 100 Continue: the final answer comes first, and the unsent body cannot be framed
        assert response.status == 200 and response.body == b"did not read"
        assert response.header(b"connection") == b"close"
        assert reader.closed()


def test_no_continue_for_http10(start_server, worker):
    server = start_server(worker=worker)
    with server.connect() as sock:
        sock.sendall(b"POST /echo HTTP/1.0\r\nHost: t\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\n\r\nhello")
        reader = ResponseReader(sock)
        response = reader.read()
        assert response.status == 200 and response.body == b"hello"
        assert response.status_line.startswith(b"HTTP/1.1 200")


# ---------------------------------------------------------------------------- app failures
def test_app_raises_before_start_is_500(start_server, worker):
    server = start_server(worker=worker)
    with server.connect() as sock:
        sock.sendall(GET % b"/raise")
        reader = ResponseReader(sock)
        response = reader.read()
        assert response.status == 500
        assert response.header(b"connection") == b"close"
        assert reader.closed()
    log = server.log()
    assert "Exception in ASGI application" in log
    assert "Traceback" in log and "RuntimeError: boom before start" in log


def test_app_raises_after_start_closes(start_server, worker):
    server = start_server(worker=worker)
    with server.connect() as sock:
        sock.sendall(GET % b"/raise-after")
        reader = ResponseReader(sock)
        head = reader._until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        while reader._more():
            pass
        # the chunk that was sent, never the terminating chunk: the client sees a broken body
        assert reader.buf == b"7\r\npartial\r\n"
    assert "RuntimeError: boom after start" in server.log()


def test_app_returns_without_response_is_500(start_server, worker):
    server = start_server(worker=worker)
    with server.client() as client:
        response = client.get("/no-response")
    assert response.status_code == 500
    assert "returned without completing the response" in server.log()


def test_invalid_response_header_is_500(start_server, worker):
    server = start_server(worker=worker)
    with server.connect() as sock:
        sock.sendall(GET % b"/bad-header")
        reader = ResponseReader(sock)
        response = reader.read()
        assert response.status == 500
        assert b"set-cookie" not in response.names()
        assert b"x-evil" not in response.names()
        assert reader.closed()
    assert "invalid character in response header" in server.log()


# ---------------------------------------------------------------------------- disconnect
def test_disconnect_before_response(start_server, worker, tls_mode, tmp_path):
    marker = tmp_path / "disconnect.txt"
    server = start_server(worker=worker, tls=tls_mode,
                          env={"GW_TEST_DISCONNECT_MARKER": str(marker)})
    sock = server.connect()
    sock.sendall(b"POST /wait-disconnect HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody")
    sock.close()
    wait_until(lambda: marker.exists() and marker.read_text(), message="disconnect marker")
    assert marker.read_text() == "http.disconnect\n"


def test_disconnect_during_response(start_server, worker, tls_mode, tmp_path):
    marker = tmp_path / "disconnect.txt"
    server = start_server(worker=worker, tls=tls_mode,
                          env={"GW_TEST_DISCONNECT_MARKER": str(marker)})
    sock = server.connect()
    sock.sendall(GET % b"/disconnect")
    reader = ResponseReader(sock)
    reader._until(b"waiting")  # the response has started
    sock.close()
    wait_until(lambda: marker.exists() and marker.read_text(), message="disconnect marker")
    assert marker.read_text() == "http.disconnect\n"


def test_send_after_disconnect_raises_oserror(start_server, worker, tmp_path):
    marker = tmp_path / "disconnect.txt"
    server = start_server(worker=worker, env={"GW_TEST_DISCONNECT_MARKER": str(marker)})
    sock = server.connect()
    sock.sendall(GET % b"/send-after-disconnect")
    ResponseReader(sock)._until(b"started")
    sock.close()
    wait_until(lambda: marker.exists() and marker.read_text(), message="disconnect marker")
    assert marker.read_text() == "OSError ClientDisconnected\n"
    assert "Exception in ASGI application" not in server.log()


# ---------------------------------------------------------------------------- Server and Date
def test_server_and_date_headers(start_server, worker):
    server = start_server(worker=worker)
    with server.client() as client:
        first = client.get("/pid")
        assert first.headers["server"] == "gworkers"
        d1 = parsedate_to_datetime(first.headers["date"])
        second = wait_until(lambda: (r := client.get("/pid")).headers["date"]
                            != first.headers["date"] and r, message="a new Date")
        d2 = parsedate_to_datetime(second.headers["date"])
        assert d2 > d1
        assert first.headers["date"].endswith(" GMT")


DATE_COUNTER = """
import time
from gworkers import Worker
from gworkers.http import fields

CALLS = [0]
_real = fields.http_date

def counted():
    CALLS[0] += 1
    return _real()

fields.http_date = counted

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = str(CALLS[0]).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})
"""


def test_date_is_cached_not_per_request(start_server, worker, tmp_path):
    """The Date header is formatted once a second by the server tick, not per request."""
    import time

    env = write_worker_module(tmp_path, "datecount", DATE_COUNTER)
    server = start_server(app="datecount:app", worker=worker, env=env)
    with server.client() as client:
        start = time.monotonic()
        before = int(client.get("/").text)
        for _ in range(50):
            response = client.get("/")
            assert response.headers["date"]
        after = int(response.text)
        elapsed = time.monotonic() - start
    # at most one formatting per tick (1 s), however many requests were served
    assert after - before <= elapsed + 2


SETTINGS_WORKER = """
from gworkers import Worker, H11Worker

class Quiet(Worker):
    CONFIG_KWARGS = {"server_header": False, "date_header": False,
                     "headers": ["X-Frame-Options: DENY", ("x-team", "web")]}

class QuietH11(H11Worker):
    CONFIG_KWARGS = Quiet.CONFIG_KWARGS
"""


def test_header_settings(start_server, worker, tmp_path):
    env = write_worker_module(tmp_path, "quietworker", SETTINGS_WORKER)
    cls = "quietworker.Quiet" if worker == "gworkers.Worker" else "quietworker.QuietH11"
    server = start_server(worker=cls, env=env)
    with server.client() as client:
        response = client.get("/pid")
        assert "server" not in response.headers
        assert "date" not in response.headers
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-team"] == "web"
        # errors the server writes itself carry them too
        assert client.get("/raise").headers["x-team"] == "web"


def test_app_header_overrides_default(start_server, worker):
    server = start_server(worker=worker)
    # an app that sets its own Server header replaces ours rather than doubling it
    with server.client() as client:
        assert client.get("/server-header").headers.get_list("server") == ["mine"]


# ---------------------------------------------------------------------------- scope
def test_scope_fields(start_server, worker, tls_mode):
    server = start_server(worker=worker, tls=tls_mode)
    with server.connect() as sock:
        sock.sendall(b"GET /caf%C3%A9/a%2Fb%20c?q=%C3%A9&x=1 HTTP/1.1\r\nHost: example.com\r\n"
                     b"X-Mixed-Case: Value With Spaces\r\nAccept: a\r\nAccept: b\r\n\r\n")
        reader = ResponseReader(sock)
        scope = json.loads(reader.read().body)
        assert scope["path"] == "/café/a/b c"
        assert scope["raw_path"] == "/caf%C3%A9/a%2Fb%20c"
        assert scope["query_string"] == "q=%C3%A9&x=1"
        assert scope["method"] == "GET"
        assert scope["http_version"] == "1.1"
        assert scope["scheme"] == ("https" if tls_mode else "http")
        assert scope["root_path"] == ""
        assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
        assert scope["server"] == ["127.0.0.1", server.port]
        assert scope["client"][0] == "127.0.0.1"
        assert scope["client"][1] == sock.getsockname()[1]
        # names lowercased, values untouched, repeated fields kept apart and in order
        assert scope["headers"] == [["host", "example.com"],
                                    ["x-mixed-case", "Value With Spaces"],
                                    ["accept", "a"], ["accept", "b"]]
        assert scope["state"] == ["started"]
        assert isinstance(scope["extensions"], list)
        sock.sendall(GET % b"/types")
        assert all(json.loads(reader.read().body).values())


def test_state_copied_per_request(start_server, worker):
    server = start_server(worker=worker)
    with server.client() as client:
        assert client.get("/state-mutate").json() == ["started"]
        # the previous request's changes are not seen by the next one
        assert client.get("/state-mutate").json() == ["started"]
        assert client.get("/").json()["state"] == ["started"]


ROOT_WORKER = """
from gworkers import Worker, H11Worker

class Mounted(Worker):
    CONFIG_KWARGS = {"root_path": "/api"}

class MountedH11(H11Worker):
    CONFIG_KWARGS = {"root_path": "/api"}
"""


def test_root_path(start_server, worker, tmp_path):
    env = write_worker_module(tmp_path, "rootworker", ROOT_WORKER)
    cls = "rootworker.Mounted" if worker == "gworkers.Worker" else "rootworker.MountedH11"
    server = start_server(worker=cls, env=env)
    with server.client() as client:
        scope = client.get("/items%20x?a=1").json()
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/items x"
    assert scope["raw_path"] == "/api/items%20x"


# ---------------------------------------------------------------------------- HTTP/1.0
def test_http10_close_delimited_body(start_server, worker):
    server = start_server(worker=worker)
    with server.connect() as sock:
        sock.sendall(get(b"/chunked", b"1.0"))
        reader = ResponseReader(sock)
        response = reader.read()
        assert response.framing == "close"
        assert response.header(b"transfer-encoding") is None
        assert response.body == b"one,two,three"


def test_http10_keep_alive_only_when_asked(start_server, worker):
    server = start_server(worker=worker)
    with server.connect() as sock:
        sock.sendall(get(b"/pid", b"1.0", b"Connection: keep-alive\r\n"))
        reader = ResponseReader(sock)
        response = reader.read()
        assert response.header(b"connection") == b"keep-alive"
        sock.sendall(get(b"/pid", b"1.0"))
        response = reader.read()
        assert response.status == 200
        assert response.header(b"connection") == b"close"
        assert reader.closed()


# ---------------------------------------------------------------------------- flow control
def test_slow_reader_app_pauses_upload(start_server, worker):
    """A large upload to an app that reads slowly: the worker reads no further ahead than a
    high-water mark, so its peak memory does not grow with the body."""
    from tests.conftest import proc_status

    server = start_server(worker=worker)
    with server.client() as client:
        pid = int(client.get("/pid").text)
    base = proc_status(pid, "VmHWM")
    size = 48 * 1024 * 1024
    piece = b"u" * (1024 * 1024)

    def body():
        for _ in range(size // len(piece)):
            yield piece

    with server.client(timeout=120) as client:
        response = client.post("/count?0.01", content=body())
    assert response.text == str(size)
    grown_mib = (proc_status(pid, "VmHWM") - base) / 1024
    assert grown_mib < 24, f"peak RSS grew by {grown_mib:.0f} MiB for a {size >> 20} MiB upload"


def test_send_waits_for_slow_client(start_server, worker, tmp_path):
    """A client that does not read a 50 MiB response: the app's send() waits, RSS stays low."""
    from tests.conftest import proc_status

    marker = tmp_path / "stream.txt"
    server = start_server(worker=worker, env={"GW_TEST_STREAM_MARKER": str(marker)})
    with server.client() as client:
        pid = int(client.get("/pid").text)
    base = proc_status(pid, "VmHWM")
    sock = server.connect(timeout=60)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    with sock:
        sock.sendall(GET % b"/stream-watch?800")
        text = wait_until(lambda: marker.exists() and marker.read_text(), message="stream marker")
        # the app's send had to wait before the body was all produced
        assert text.startswith("blocked "), text
        blocked_at = int(text.split()[1])
        assert blocked_at < 400
        assert (proc_status(pid, "VmRSS") - base) / 1024 < 30
        reader = ResponseReader(sock)
        response = reader.read()
        assert len(response.body) == 800 * 65536
    assert marker.read_text().endswith("done\n")
    grown_mib = (proc_status(pid, "VmHWM") - base) / 1024
    assert grown_mib < 30, f"peak RSS grew by {grown_mib:.0f} MiB for a 50 MiB response"
