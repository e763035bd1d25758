"""PROXY protocol v1 and v2 against real Gunicorn, both workers, over raw sockets.

The headers are built by the encoder in test_proxy_protocol_parser.py (from HAProxy's spec);
tests/deploy/test_haproxy.py puts a real HAProxy in front. The app (tests.edge_apps) answers
its scope as JSON and writes one marker line per call, so a refused connection can be shown
never to have reached it.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.conftest import read_until_close, wait_until
from tests.edge.raw import marker_lines, read_response
from tests.edge.test_proxy_protocol_parser import SSL_TLV, inet, inet6, unix, v2

APP = "tests.edge_apps:app"
GET = b"GET /scope HTTP/1.1\r\nHost: origin.test\r\n\r\n"
GET_CLOSE = b"GET /scope HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n"
V1_TCP4 = b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 443\r\n"
REAL = "real"  # the connection's own endpoints
# Gunicorn's flag, as both 23 (a store_true bool) and 24.1+ (an optional MODE, auto when bare)
# read it: never followed by a value (24.1+ would take the app name for one)
PROXY_ON = ["--proxy-protocol", "--log-level", "debug"]


def gunicorn_proxy_protocol_modes() -> bool:
    """Whether the installed Gunicorn's proxy_protocol takes off|v1|v2|auto (24.1+; a bool
    before)."""
    from gunicorn import config

    return hasattr(config, "validate_proxy_protocol")


@pytest.fixture
def start(start_server, config_worker, worker, tmp_path):
    """``start(args=[], bind=..., **CONFIG_KWARGS)``: the edge app with a marker file."""

    def run(args=(), bind="127.0.0.1:0", **kwargs):
        path, env = config_worker(worker, **kwargs)
        marker = tmp_path / f"marker-{time.monotonic_ns()}.txt"
        env["GW_EDGE_MARKER"] = str(marker)
        server = start_server(app=APP, worker=path, bind=bind, args=list(args), env=env)
        server.marker = marker
        return server

    return run


def scope_after(server, header: bytes, request: bytes = GET_CLOSE) -> tuple[dict, tuple]:
    """The scope the app saw after ``header``, and the socket's own ``(client, server)``."""
    with server.connect(timeout=15) as sock:
        endpoints = (sock.getsockname(), sock.getpeername())
        sock.sendall(header + request)
        status, _, body = read_response(sock)
        assert status == 200, body
    if isinstance(endpoints[0], tuple):
        endpoints = (list(endpoints[0][:2]), list(endpoints[1][:2]))
    return json.loads(body), endpoints


def closed_silently(server, data: bytes) -> bytes:
    """Send ``data``; return what the server sent before closing (it must close)."""
    with server.connect(timeout=15) as sock:
        sock.sendall(data)
        return read_until_close(sock)


# --------------------------------------------------------------------------- accepted headers
def test_v1_tcp4_sets_client_and_server_for_every_request(start):
    server = start(args=PROXY_ON)
    with server.connect(timeout=15) as sock:
        sock.sendall(V1_TCP4 + GET)
        first = json.loads(read_response(sock)[2])
        sock.sendall(GET)  # keep-alive: the header was for the connection
        second = json.loads(read_response(sock)[2])
    for scope in (first, second):
        assert scope["client"] == ["203.0.113.7", 56324]
        assert scope["server"] == ["198.51.100.1", 443]
        assert scope["scheme"] == "http"


V2_CASES = {
    "inet": (v2(fam=0x11, addresses=inet("203.0.113.7", "198.51.100.1", 56324, 8443)),
             ["203.0.113.7", 56324], ["198.51.100.1", 8443], "http"),
    "inet6": (v2(fam=0x21, addresses=inet6("2001:db8::7", "2001:db8::1", 4000, 443)),
              ["2001:db8::7", 4000], ["2001:db8::1", 443], "http"),
    "unix": (v2(fam=0x31, addresses=unix(b"/run/client.sock", b"/run/haproxy.sock")),
             None, ["/run/haproxy.sock", None], "http"),
    "unspec": (v2(fam=0x00, addresses=b"ignored"), REAL, REAL, "http"),
    "local": (v2(command=0, fam=0x00), REAL, REAL, "http"),
    "local-with-addresses": (v2(command=0, fam=0x11, addresses=inet("1.1.1.1", "2.2.2.2", 1, 2)),
                             REAL, REAL, "http"),
    "tlvs-tls": (v2(addresses=inet("203.0.113.7", "198.51.100.1", 5, 443),
                    tlvs=SSL_TLV + b"\x02\x00\x0bexample.com", crc=True),
                 ["203.0.113.7", 5], ["198.51.100.1", 443], "https"),
    "v1-tcp6": (b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 443\r\n",
                ["2001:db8::7", 4000], ["2001:db8::1", 443], "http"),
    "v1-unknown": (b"PROXY UNKNOWN\r\n", REAL, REAL, "http"),
    "v1-unknown-long": (b"PROXY UNKNOWN ::1 ::1 1 2\r\n", REAL, REAL, "http"),
}


@pytest.mark.parametrize("case", list(V2_CASES))
def test_headers_set_the_scope(start, case):
    header, client, server_addr, scheme = V2_CASES[case]
    server = start(proxy_protocol="auto")
    scope, (real_client, real_server) = scope_after(server, header)
    assert scope["client"] == (real_client if client == REAL else client)
    assert scope["server"] == (real_server if server_addr == REAL else server_addr)
    assert scope["scheme"] == scheme
    assert marker_lines(server.marker) == ["GET /scope"]


def test_header_and_request_in_pieces(start):
    """The header split over several writes, the request starting in the header's last one."""
    server = start(proxy_protocol="auto")
    data = v2(addresses=inet("203.0.113.7", "198.51.100.1", 1, 2)) + GET_CLOSE
    cuts = [0, 1, 5, 12, 13, 16, 27, 30, 40, len(data)]
    with server.connect(timeout=15) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for start_at, end in zip(cuts, cuts[1:], strict=False):
            sock.sendall(data[start_at:end])
        status, _, body = read_response(sock)
    assert status == 200 and json.loads(body)["client"] == ["203.0.113.7", 1]


def test_unix_socket_peer_must_send_a_header(start, tmp_path):
    """A unix-socket peer has no address to check: like Gunicorn, it is allowed (and so must
    send the header), whatever proxy_allow_ips says."""
    server = start(bind=f"unix:{tmp_path}/g.sock", proxy_protocol="v1",
                   proxy_allow_ips="10.9.9.9")
    scope, _ = scope_after(server, V1_TCP4)
    assert scope["client"] == ["203.0.113.7", 56324]
    assert closed_silently(server, GET_CLOSE) == b""


def test_ipv6_peer_allowed_by_default(start):
    server = start(bind="[::1]:0", proxy_protocol="auto")
    scope, _ = scope_after(server, V1_TCP4)
    assert scope["client"] == ["203.0.113.7", 56324]


# --------------------------------------------------------------------------- refused
MALFORMED = {
    "no-header": GET_CLOSE,
    "v1-bad-port": b"PROXY TCP4 203.0.113.7 198.51.100.1 056324 443\r\n" + GET_CLOSE,
    "v1-bare-lf": b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 443\n" + GET_CLOSE,
    "v2-bad-crc": v2(addresses=inet("1.2.3.4", "5.6.7.8", 1, 2), tlvs=b"\x03\x00\x04\x00\x00\x00\x01")
    + GET_CLOSE,
    "v2-bad-command": v2(command=3, addresses=inet("1.2.3.4", "5.6.7.8", 1, 2)) + GET_CLOSE,
    "tls-hello": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\0" * 64,
}


def test_missing_or_malformed_header_closes_without_an_answer(start):
    server = start(args=PROXY_ON)
    for name, data in MALFORMED.items():
        assert closed_silently(server, data) == b"", name
    assert marker_lines(server.marker) == []  # the app never ran
    log = server.log()
    # one warning naming the setting, then debug lines; never an ERROR
    assert log.count("[WARNING] gworkers: PROXY protocol:") == 1
    assert "proxy_protocol = auto: every connection from proxy_allow_ips" in log
    assert log.count("PROXY protocol: closed a connection") == len(MALFORMED)
    assert "[ERROR]" not in log
    # and the server still serves
    scope, _ = scope_after(server, V1_TCP4)
    assert scope["client"] == ["203.0.113.7", 56324]


def test_partial_header_then_silence_is_closed_without_408(start):
    server = start(proxy_protocol="auto", timeout_request_header=1)
    for partial in (V1_TCP4[:20], v2(addresses=inet("1.2.3.4", "5.6.7.8", 1, 2))[:20]):
        assert closed_silently(server, partial) == b""
    assert marker_lines(server.marker) == []


def test_peer_not_allowed_may_not_send_a_header(start):
    """From a peer outside proxy_allow_ips a header is refused (closed, no answer); a plain
    request is served with the real client address."""
    server = start(args=["--proxy-protocol", "--proxy-allow-from", "10.9.9.9"])
    assert closed_silently(server, V1_TCP4 + GET_CLOSE) == b""
    assert closed_silently(server, v2(addresses=inet("1.2.3.4", "5.6.7.8", 1, 2)) + GET_CLOSE) == b""
    # the sniff waits for the bytes that decide: a request starting with P or CR is still HTTP
    with server.connect(timeout=15) as sock:
        sock.sendall(b"P")
        sock.sendall(b"OST /scope HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        status, _, body = read_response(sock)
        assert status == 200
        assert json.loads(body)["client"] == list(sock.getsockname()[:2])
        sock.sendall(b"\r\n" + GET_CLOSE)  # an empty line before a request (RFC 9112 2.2)
        status, _, body = read_response(sock)
        assert status == 200
    assert marker_lines(server.marker) == ["POST /scope", "GET /scope"]
    assert "from a peer not in proxy_allow_ips" in server.log()


def test_off_a_proxy_line_is_a_bad_request(start):
    server = start()
    for data in (V1_TCP4 + GET_CLOSE, v2(addresses=inet("1.2.3.4", "5.6.7.8", 1, 2)) + GET_CLOSE):
        answer = closed_silently(server, data)
        assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert marker_lines(server.marker) == []


@pytest.mark.parametrize("mode", ["v1", "v2"])
def test_one_version_only(start, mode):
    one = V1_TCP4
    two = v2(addresses=inet("203.0.113.7", "198.51.100.1", 56324, 443))
    if gunicorn_proxy_protocol_modes():
        server = start(args=["--proxy-protocol", mode])
    else:  # Gunicorn 23: a bool; the version comes from CONFIG_KWARGS
        server = start(args=PROXY_ON, proxy_protocol=mode)
    accepted, refused = (one, two) if mode == "v1" else (two, one)
    scope, _ = scope_after(server, accepted)
    assert scope["client"] == ["203.0.113.7", 56324]
    assert closed_silently(server, refused + GET_CLOSE) == b""


def test_forwarded_headers_are_judged_by_the_proxied_client(start):
    """The proxy vouches that the bytes come from the client it names: X-Forwarded-For is
    believed only when that client is in forwarded_allow_ips, not because the proxy is."""
    server = start(proxy_protocol="auto")
    xff = b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.18.0.9\r\nConnection: close\r\n\r\n"
    scope, _ = scope_after(server, V1_TCP4, xff)
    assert scope["client"] == ["203.0.113.7", 56324]  # an outside client's header: ignored
    scope, _ = scope_after(server, b"PROXY TCP4 127.0.0.1 127.0.0.1 4000 80\r\n", xff)
    assert scope["client"] == ["198.18.0.9", 0]  # a trusted (local) hop: believed
    scope, _ = scope_after(server, b"PROXY UNKNOWN\r\n", xff)
    assert scope["client"] == ["198.18.0.9", 0]  # no address given: the real peer's trust


def test_websocket_over_a_proxy_header(start_ws_server, worker, ws_engine):
    from websockets.sync.client import connect

    server = start_ws_server(worker, ws_engine, proxy_protocol="auto")
    sock = server.connect(timeout=15)
    sock.sendall(v2(addresses=inet("203.0.113.7", "198.51.100.1", 56324, 443), tlvs=SSL_TLV))
    with connect("ws://origin.test/scope", sock=sock, open_timeout=15) as ws:
        scope = json.loads(ws.recv(timeout=15))
    assert scope["client"] == ["203.0.113.7", 56324]
    assert scope["server"] == ["198.51.100.1", 443]
    assert scope["scheme"] == "wss"  # the client spoke TLS to the proxy


def test_tls_served_by_the_worker_refuses_to_boot(start_server, worker, tls_files):
    server = start_server(worker=worker, args=PROXY_ON, tls=tls_files)
    server.wait_for_log(r"proxy_protocol cannot be used with TLS served by the worker")
    assert server.wait(timeout=20) != 0


def test_gworkers_run_options(start_cli):
    # bare, before APP: the flag alone (as Gunicorn's, "auto"), not a mode named like the app
    server = start_cli(["--port", "0", "--proxy-allow-ips", "127.0.0.1", "--proxy-protocol", APP])
    scope, _ = scope_after(server, V1_TCP4)
    assert scope["client"] == ["203.0.113.7", 56324]
    assert closed_silently(server, GET_CLOSE) == b""
    server = start_cli([APP, "--port", "0", "--proxy-protocol", "v2"])
    assert closed_silently(server, V1_TCP4 + GET_CLOSE) == b""
    wait_until(lambda: "proxy_protocol = v2" in server.log(), message="the warning")
