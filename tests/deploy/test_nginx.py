"""deploy/nginx: nginx in front of Gunicorn + gworkers over a unix socket, both really started.

nginx listens on 127.0.0.1; clients connect from 127.0.0.2 so that the address the app sees can
only have come from nginx's X-Forwarded-For, never from the socket (a unix socket has none).
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from tests.deploy.nginx_stack import NginxStack, issue_cert
from tests.deploy.support import open_socket, request, short_dir

CLIENT = "127.0.0.2"


@pytest.fixture
def stack(tmp_path, tls_files, start_server, worker):
    with short_dir() as sock_dir:
        s = NginxStack(tmp_path, Path(sock_dir), tls_files["ca"])
        s.gunicorn = start_server(app="main:app", worker=worker, args=s.gunicorn_args(),
                                  env={"WEB_CONCURRENCY": "1"}, bind=f"unix:{s.socket_path}")
        cert, key = issue_cert(tls_files, tmp_path, "example.com")
        s.start_nginx(cert, key)
        try:
            yield s
        finally:
            s.stop()


def test_client_address_and_scheme_reach_the_app(stack):
    r = request(stack.https, "/x?y=1", tls=stack.tls(), source=CLIENT)
    assert r.status == 200, r.body
    scope = r.json()
    assert scope["client"][0] == CLIENT
    assert scope["scheme"] == "https"
    assert scope["path"] == "/x"
    headers = dict(scope["headers"])
    assert headers["host"] == "example.com"
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-for"] == CLIENT
    # a forged X-Forwarded-For from the client is kept in the chain but cannot win
    r = request(stack.https, "/", tls=stack.tls(), source=CLIENT,
                headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "http"})
    scope = r.json()
    assert dict(scope["headers"])["x-forwarded-for"] == f"203.0.113.9, {CLIENT}"
    assert scope["client"][0] == CLIENT
    assert scope["scheme"] == "https"
    # headers nginx does not set are cleared, or the (trusted) worker would apply them
    forged = {"Forwarded": "for=203.0.113.9;proto=http;host=evil.example",
              "X-Forwarded-Host": "evil.example", "X-Forwarded-Port": "1",
              "X-Forwarded-Prefix": "/evil"}
    r = request(stack.https, "/x", tls=stack.tls(), source=CLIENT, headers=forged)
    scope = r.json()
    assert scope["client"][0] == CLIENT
    assert scope["scheme"] == "https"
    assert scope["root_path"] == "" and scope["path"] == "/x"
    assert "evil.example" not in str(scope["server"])
    assert not {"forwarded", "x-forwarded-host", "x-forwarded-prefix"} & set(dict(scope["headers"]))


def test_plain_http_redirects_and_unknown_hosts_get_nothing(stack):
    r = request(stack.http, "/a?b=1", source=CLIENT)
    assert r.status == 301
    assert r.headers["location"] == "https://example.com/a?b=1"
    # catch-all server: no answer at all for a Host we do not serve
    with open_socket(stack.http, CLIENT) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(100) == b""
    # and no TLS handshake (hence no certificate) for an unknown server name
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with open_socket(stack.https, CLIENT) as raw, pytest.raises(ssl.SSLError):
        ctx.wrap_socket(raw, server_hostname="unknown.invalid")


def test_static_body_limit_and_streaming(stack):
    r = request(stack.https, "/static/hello.txt", tls=stack.tls(), source=CLIENT)
    assert (r.status, r.body) == (200, b"static hello\n")
    assert r.headers["cache-control"] == "max-age=604800"
    # client_max_body_size: refused by nginx from the declared length, body never sent
    r = request(stack.https, "/echo", method="POST", tls=stack.tls(), source=CLIENT,
                headers={"Content-Length": str(11 * 1024 * 1024)}, body=b"")
    assert r.status == 413
    body = b"z" * (1024 * 1024)
    r = request(stack.https, "/echo", method="POST", tls=stack.tls(), source=CLIENT, body=body)
    assert (r.status, r.body) == (200, body)
    # proxy_buffering off: the first chunk of a response still in progress reaches the client
    sock = stack.tls().wrap_socket(open_socket(stack.https, CLIENT), server_hostname="example.com")
    with sock:
        sock.sendall(b"GET /disconnect HTTP/1.1\r\nHost: example.com\r\n\r\n")
        received = b""
        while b"waiting" not in received:
            chunk = sock.recv(4096)  # the socket's timeout bounds the wait
            assert chunk, received
            received += chunk
        assert received.startswith(b"HTTP/1.1 200")


def test_cache_control_passes_through(stack):
    r = request(stack.https, "/cache", tls=stack.tls(), source=CLIENT)
    assert r.status == 200
    assert r.headers["cache-control"] == "public, max-age=60, stale-while-revalidate=30"
    assert r.headers["etag"] == '"v1"'


def test_websocket_echo_through_nginx(stack):
    from websockets.sync.client import connect

    raw = open_socket(stack.https, CLIENT)
    with connect(f"wss://example.com:{stack.https_port}/ws", sock=raw, ssl=stack.tls(),
                 open_timeout=15, close_timeout=5) as ws:
        ws.send("hello through nginx")
        assert ws.recv(timeout=15) == "hello through nginx"
        ws.send(b"\x00\x01binary")
        assert ws.recv(timeout=15) == b"\x00\x01binary"


def test_untrusted_forwarded_headers_sent_straight_to_the_worker(tmp_path, start_server, worker):
    """The recipe's gunicorn.conf.py over TCP: only loopback (127.0.0.1) is a trusted proxy."""
    with short_dir() as d:
        s = NginxStack(tmp_path, Path(d), "")
        server = start_server(app="main:app", worker=worker, args=s.gunicorn_args(),
                              env={"WEB_CONCURRENCY": "1"}, bind="127.0.0.1:0")
        forged = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
        scope = request((server.host, server.port), headers=forged, source=CLIENT).json()
        assert scope["client"][0] == CLIENT
        assert scope["scheme"] == "http"
        # the same headers from the trusted address are applied (so the check above can fail)
        scope = request((server.host, server.port), headers=forged, source="127.0.0.1").json()
        assert scope["client"][0] == "203.0.113.9"
        assert scope["scheme"] == "https"
