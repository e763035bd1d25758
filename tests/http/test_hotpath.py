"""What the fast path must not change: pipelined answers in order, held back only while the
next request's Task has not run yet, and response headers checked even when cached."""

from __future__ import annotations

import json

import pytest

from gworkers.errors import AppProtocolError
from gworkers.http import fields as wire
from gworkers.http.h1.wire import field_lines


def read_responses(sock, count: int) -> list[tuple[bytes, bytes]]:
    """Read ``count`` Content-Length-framed responses: (head, body) each."""
    buf = b""
    out = []
    while len(out) < count:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end]
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            if len(buf) >= end + 4 + length:
                out.append((head, buf[end + 4 : end + 4 + length]))
                buf = buf[end + 4 + length :]
                continue
        data = sock.recv(65536)
        if not data:
            raise AssertionError(f"connection closed after {len(out)} responses")
        buf += data
    return out


def test_pipelined_burst_answered_in_order(start_server, worker):
    server = start_server(worker=worker)
    sock = server.connect()
    burst = b"".join(b"GET /?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(40))
    sock.sendall(burst)
    responses = read_responses(sock, 40)
    for i, (head, body) in enumerate(responses):
        assert head.startswith(b"HTTP/1.1 200 ")
        assert json.loads(body)["query_string"] == f"n={i}"
    sock.close()


def test_pipelined_answer_not_held_by_a_slow_next_request(start_server, worker):
    server = start_server(worker=worker)
    sock = server.connect(timeout=20)
    # the second request's app runs until the client leaves: an answer held behind it would
    # never come
    sock.sendall(b"GET /?first HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"GET /wait-disconnect HTTP/1.1\r\nHost: x\r\n\r\n")
    [(head, body)] = read_responses(sock, 1)
    assert head.startswith(b"HTTP/1.1 200 ")
    assert json.loads(body)["query_string"] == "first"
    sock.close()


def test_header_info_checks_then_caches():
    cache: dict = {}
    names = {b"server", b"date"}
    kind, name, length = wire.header_info((b"Content-Length", b"12"), names, cache)
    assert (kind, name, length) == (wire.LENGTH, b"content-length", 12)
    assert field_lines([(b"Content-Length", b"12")]) == b"Content-Length: 12\r\n"
    assert cache[(b"Content-Length", b"12")][0] == wire.LENGTH
    assert wire.header_info((b"Server", b"me"), names, cache)[0] == wire.DEFAULT
    # a list pair is checked and used, but cannot be a dict key
    assert wire.header_info([b"x-a", b"b"], names, cache)[1] == b"x-a"
    assert field_lines([[b"x-a", b"b"]]) == b"x-a: b\r\n"
    assert len(cache) == 2
    for bad in [(b"x-evil", b"a\r\nset-cookie: 1"), (b"bad name", b"v"), (b"x", "str"),
                (b"a", b"b", b"c"), (b"content-length", b"12a")]:
        with pytest.raises(AppProtocolError):
            wire.header_info(bad, names, cache)
    assert len(cache) == 2


def test_content_length_bodies_split_and_pipelined(start_server, worker):
    """Bodies counted by Content-Length: split anywhere, followed by the next request."""
    server = start_server(worker=worker)
    sock = server.connect()
    stream = (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
              b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
              b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
              b"GET /?last HTTP/1.1\r\nHost: x\r\n\r\n")
    for cut in (3, 40, 52, 57, 60, 120, 171, len(stream)):
        sock.sendall(stream[:cut])
        stream = stream[cut:]
        if not stream:
            break
    responses = read_responses(sock, 4)
    assert [body for _, body in responses[:3]] == [b"hello", b"", b"hello world"]
    assert json.loads(responses[3][1])["query_string"] == "last"
    sock.close()
