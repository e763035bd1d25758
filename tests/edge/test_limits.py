"""Size limits, concurrency cap and request-smuggling cases against real Gunicorn, both workers.

A refused request never reaches the app: ``tests.edge_apps`` records every call in a marker file.
"""

from __future__ import annotations

import pytest

from tests.conftest import wait_until
from tests.edge.raw import is_open, marker_lines, read_response, read_until_close

APP = "tests.edge_apps:app"


def start(start_server, config_worker, worker, tmp_path, args=(), **kwargs):
    path, env = config_worker(worker, **kwargs)
    env["GW_EDGE_MARKER"] = str(tmp_path / "calls")
    env["GW_EDGE_RELEASE"] = str(tmp_path / "release")
    return start_server(app=APP, worker=path, args=list(args), env=env)


def exchange(server, data: bytes) -> bytes:
    with server.connect(timeout=15) as sock:
        sock.sendall(data)
        return read_until_close(sock)


@pytest.fixture
def limited(start_server, config_worker, worker, tmp_path):
    return start(start_server, config_worker, worker, tmp_path,
                 args=["--limit-request-line", "100", "--limit-request-fields", "5",
                       "--limit-request-field_size", "200"],
                 limit_request_body=1000)


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(6)) + b"\r\n",
     431),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 300 + b"\r\n\r\n", 431),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n", 413),
], ids=["line-414", "fields-431", "field-size-431", "content-length-413"])
def test_size_limits_answer_before_the_app(limited, tmp_path, request_bytes, status):
    answer = exchange(limited, request_bytes)
    assert answer.startswith(b"HTTP/1.1 %d " % status)
    assert b"connection: close" in answer.lower()
    assert marker_lines(tmp_path / "calls") == []


def test_body_at_the_limit_is_served(limited, tmp_path):
    with limited.connect(timeout=15) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000)
        assert read_response(sock)[2] == b"1000"
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (b"x" * 600, b"y" * 400))
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + body + b"0\r\n\r\n")
        assert read_response(sock)[2] == b"1000"


def test_chunked_body_past_the_limit_gets_413(limited, tmp_path):
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (b"x" * 600, b"y" * 401))
    answer = exchange(limited, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      + body + b"0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert answer.count(b"HTTP/1.1") == 1


def test_chunked_body_past_the_limit_after_the_response_disconnects(limited, tmp_path):
    """The app answered without reading: the rest of the body is discarded, within the limit."""
    with limited.connect(timeout=15) as sock:
        sock.sendall(b"POST /noread HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        status, _, _ = read_response(sock)  # /noread is answered by the JSON default
        assert status == 200
        sock.sendall(b"3e8\r\n" + b"x" * 1000 + b"\r\n" + b"1\r\nx\r\n")
        assert read_until_close(sock) == b""  # closed, no second answer


# Each is followed by a second request that must never reach the app.
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
SMUGGLING = {
    "cl-and-te": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two-cl": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n",
    "cl-plus-sign": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
    "cl-minus-sign": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    "te-obs-fold": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"
                   b"0\r\n\r\n",
    "te-chunked-identity": b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                           b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    "chunk-size-not-hex": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"zz\r\nhello\r\n0\r\n\r\n",
    "chunk-size-0x": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"0x5\r\nhello\r\n0\r\n\r\n",
    "chunk-size-negative": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"-5\r\nhello\r\n0\r\n\r\n",
    "chunk-size-overflow": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"1" + b"0" * 20 + b"\r\nhello\r\n0\r\n\r\n",
    "chunk-data-too-long": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"2\r\nhello\r\n0\r\n\r\n",
    "bare-lf": b"GET / HTTP/1.1\nHost: x\n\n",
    "bare-lf-in-header": b"GET / HTTP/1.1\r\nHost: x\nX-a: b\r\n\r\n",
    "bare-cr": b"GET / HTTP/1.1\rHost: x\r\n\r\n",
    "bare-cr-in-header": b"GET / HTTP/1.1\r\nHost: x\rX-a: b\r\n\r\n",
    "nul-in-header": b"GET / HTTP/1.1\r\nHost: x\r\nX-a: a\x00b\r\n\r\n",
    "space-before-colon": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello",
}


@pytest.mark.parametrize("case", sorted(SMUGGLING))
def test_smuggling_gets_400_and_no_second_request(start_server, config_worker, worker, tmp_path,
                                                   case):
    server = start(start_server, config_worker, worker, tmp_path)
    answer = exchange(server, SMUGGLING[case] + SMUGGLED)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert answer.count(b"HTTP/1.1 ") == 1
    assert b"connection: close" in answer.lower()
    assert "GET /smuggled" not in marker_lines(tmp_path / "calls")


def test_concurrency_cap_is_exactly_n(start_server, config_worker, worker, tmp_path):
    server = start(start_server, config_worker, worker, tmp_path, limit_concurrency=2)
    calls = tmp_path / "calls"
    hold = b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"
    socks = [server.connect(timeout=15) for _ in range(6)]
    try:
        a, b, c, d, e, f = socks
        a.sendall(hold)
        b.sendall(hold)
        wait_until(lambda: marker_lines(calls).count("GET /hold") == 2, message="two holds")
        # the third request in progress is refused, without calling the app
        c.sendall(b"GET /third HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = read_response(c)
        assert status == 503
        assert headers["connection"] == "close"
        assert read_until_close(c) == b""
        # so is a WebSocket handshake
        d.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        assert read_response(d)[0] == 503
        (tmp_path / "release").touch()
        assert read_response(a)[0] == 200
        assert read_response(b)[0] == 200
        assert "GET /third" not in marker_lines(calls)
        assert "GET /ws" not in marker_lines(calls) and "WS /ws" not in marker_lines(calls)
        # a and b are now idle keep-alive connections: they do not count
        (tmp_path / "release").unlink()
        e.sendall(hold)
        f.sendall(hold)
        wait_until(lambda: marker_lines(calls).count("GET /hold") == 4, message="two more holds")
        a.sendall(b"GET /over HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(a)[0] == 503
        (tmp_path / "release").touch()
        assert read_response(e)[0] == 200
        assert read_response(f)[0] == 200
        b.sendall(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(b)[0] == 200
        assert is_open(e)
    finally:
        for sock in socks:
            sock.close()


def test_head_size_cap_on_both_parsers(start_server, config_worker, worker, tmp_path):
    """``h11_max_incomplete_event_size`` bounds the whole head, sent at once or in pieces."""
    server = start(start_server, config_worker, worker, tmp_path, h11_max_incomplete_event_size=2000,
                   limit_request_fields=0)
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%02d: %s\r\n" % (i, b"v" * 90)
                                                      for i in range(40)) + b"\r\n"
    assert exchange(server, head).startswith(b"HTTP/1.1 431 ")
    with server.connect(timeout=15) as sock:
        for i in range(0, len(head), 500):
            try:
                sock.sendall(head[i : i + 500])
            except OSError:
                break
        assert read_until_close(sock).startswith(b"HTTP/1.1 431 ")
    assert marker_lines(tmp_path / "calls") == []
