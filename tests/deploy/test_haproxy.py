"""HAProxy in front, speaking the PROXY protocol to Gunicorn + gworkers (both workers).

Debian's haproxy runs in the foreground (``haproxy -db -f conf``) with a config written into the
test's tmp dir: TCP frontends on loopback (IPv4 and IPv6), a TLS-terminating one, HTTP-mode
ones and unix-socket ones, each relaying to the worker with ``send-proxy`` (v1),
``send-proxy-v2`` (with a CRC32C TLV), or ``send-proxy-v2-ssl``; the v2 backend health-checks
the worker with PROXY headers too; an h2c backend (``proto h2``) speaks HTTP/2 after its
header. The client connects from 127.0.0.2 (or ::1), so the address
and port the app sees can only have come from HAProxy's header.
"""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path

import httpx
import pytest

from tests.conftest import wait_until
from tests.deploy.support import (
    PortTaken,
    Program,
    connects,
    free_port,
    request,
    require,
    retry_bind,
    short_dir,
)
from tests.edge.raw import marker_lines

# HTTP: the edge app (scope as JSON, a marker line per call); WebSocket: ws_apps (/scope sends
# the scope as JSON)
APP_MODULE = """\
from tests.edge_apps import app as http_app
from tests.ws_apps import app as ws_app


async def app(scope, receive, send):
    if scope["type"] == "websocket":
        return await ws_app(scope, receive, send)
    return await http_app(scope, receive, send)
"""

CONF = """\
global
    log stdout format raw local0 info
    maxconn 256

defaults
    log global
    option log-health-checks
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout tunnel 30s

frontend tcp_v1
    mode tcp
    bind 127.0.0.1:{p_v1}
    bind [::1]:{p_v1_6}
    bind unix@{sock_dir}/v1.sock
    default_backend be_v1

frontend tcp_v2
    mode tcp
    bind 127.0.0.1:{p_v2}
    bind [::1]:{p_v2_6}
    bind unix@{sock_dir}/v2.sock
    default_backend be_v2

frontend tls_v2
    mode tcp
    bind 127.0.0.1:{p_tls} ssl crt {pem}
    default_backend be_v2_ssl

frontend http_v2
    mode http
    bind 127.0.0.1:{p_http}
    default_backend be_http

frontend h2c_v2
    mode http
    bind 127.0.0.1:{p_h2} proto h2
    default_backend be_h2c

backend be_v1
    mode tcp
    server app {app} send-proxy

backend be_v2
    mode tcp
    option httpchk GET /health
    server app {app} send-proxy-v2 proxy-v2-options crc32c check check-send-proxy inter 200ms

backend be_v2_ssl
    mode tcp
    server app {app} send-proxy-v2-ssl

backend be_http
    mode http
    server app {app} send-proxy-v2

backend be_h2c
    mode http
    server app {app} send-proxy-v2 proto h2
"""

PORTS = ("p_v1", "p_v1_6", "p_v2", "p_v2_6", "p_tls", "p_http", "p_h2")


def free_port6() -> int:
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        return s.getsockname()[1]


class HAProxy:
    def __init__(self, tmp, sock_dir: str, app: tuple[str, int], pem: str) -> None:
        self.tmp = tmp
        self.sock_dir = sock_dir
        self.app = app
        self.pem = pem
        self.ports: dict[str, int] = {}
        self.proc: Program | None = None

    def start(self) -> None:
        binary = require("haproxy")

        def start() -> Program:
            self.ports = {name: free_port6() if name.endswith("_6") else free_port()
                          for name in PORTS}
            conf = self.tmp / "haproxy.cfg"
            conf.write_text(CONF.format(sock_dir=self.sock_dir, pem=self.pem,
                                        app=f"{self.app[0]}:{self.app[1]}", **self.ports))
            proc = Program([binary, "-db", "-f", str(conf)], self.tmp / "haproxy.log")

            def up() -> bool:
                if not proc.alive() and "cannot bind" in proc.log():
                    proc.stop()
                    raise PortTaken(proc.log())
                return connects(("127.0.0.1", self.ports["p_http"]))

            proc.wait_for(up, "haproxy listening")
            return proc

        self.proc = retry_bind(start)

    def log(self) -> str:
        return self.proc.log() if self.proc is not None else ""

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


@pytest.fixture
def stack(start_server, config_worker, worker, tmp_path, tls_files):
    """Gunicorn (proxy_protocol on, the edge app) behind HAProxy; yields the HAProxy."""
    # HTTP/2 on (h2c by prior knowledge beside HTTP/1.1) for the h2c backend; every other
    # backend speaks HTTP/1.1 or raw TCP to the same port
    path, env = config_worker(worker, http_protocols="h2,h1", http2_cleartext="prior-knowledge")
    # (its directory is on the server's PYTHONPATH)
    (tmp_path / "haproxy_app.py").write_text(APP_MODULE)
    marker = tmp_path / "marker.txt"
    env["GW_EDGE_MARKER"] = str(marker)
    server = start_server(app="haproxy_app:app", worker=path, env=env,
                          args=["--proxy-protocol", "--log-level", "debug"])
    pem = tmp_path / "haproxy.pem"
    pem.write_bytes(Path(tls_files["cert"]).read_bytes() + Path(tls_files["key"]).read_bytes())
    with short_dir() as sock_dir:
        haproxy = HAProxy(tmp_path, sock_dir, (server.host, server.port), str(pem))
        haproxy.gunicorn = server
        haproxy.marker = marker
        try:
            haproxy.start()
            yield haproxy
        finally:
            haproxy.stop()


def scope_from(address, source=None, tls=None) -> tuple[dict, tuple]:
    """GET /scope through HAProxy; the scope the app saw and the client socket's own address."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET)
        if source:
            sock.bind((source, 0))
    sock.settimeout(15)
    with sock:
        sock.connect(address)
        mine = sock.getsockname()
        with tls.wrap_socket(sock, server_hostname="localhost") if tls else sock as raw:
            raw.sendall(b"GET /scope HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := raw.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), data
    return json.loads(body), mine


def test_send_proxy_v1(stack):
    """TCP4 and TCP6 lines carry the client's address and port; a unix-socket client gets an
    UNKNOWN line, and the worker keeps HAProxy's own connection addresses."""
    scope, mine = scope_from(("127.0.0.1", stack.ports["p_v1"]), source="127.0.0.2")
    assert scope["client"] == ["127.0.0.2", mine[1]]
    assert scope["server"] == ["127.0.0.1", stack.ports["p_v1"]]
    scope, mine = scope_from(("::1", stack.ports["p_v1_6"]))
    assert scope["client"] == ["::1", mine[1]]
    assert scope["server"] == ["::1", stack.ports["p_v1_6"]]
    scope, _ = scope_from(f"{stack.sock_dir}/v1.sock")
    assert scope["client"][0] == "127.0.0.1"  # HAProxy's connection to the worker
    assert scope["server"] == ["127.0.0.1", stack.gunicorn.port]
    assert scope["scheme"] == "http"


def test_send_proxy_v2_with_crc32c_and_health_checks(stack):
    scope, mine = scope_from(("127.0.0.1", stack.ports["p_v2"]), source="127.0.0.2")
    assert scope["client"] == ["127.0.0.2", mine[1]]
    assert scope["server"] == ["127.0.0.1", stack.ports["p_v2"]]
    scope, mine = scope_from(("::1", stack.ports["p_v2_6"]))
    assert scope["client"] == ["::1", mine[1]]
    # a unix-socket client: HAProxy 2.6 sends no address (UNSPEC), the real endpoints stay
    scope, _ = scope_from(f"{stack.sock_dir}/v2.sock")
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ["127.0.0.1", stack.gunicorn.port]
    # HAProxy's health checks come with their own PROXY header (LOCAL) and pass
    wait_until(lambda: marker_lines(stack.marker).count("GET /health") >= 3,
               message="three health checks")
    log = stack.log()
    assert "failed" not in log.lower(), log
    assert "PROXY protocol: closed" not in stack.gunicorn.log()


def test_send_proxy_v2_ssl_gives_https(stack, tls_files):
    """HAProxy terminates TLS and says so in PP2_TYPE_SSL: the app sees https."""
    ctx = ssl.create_default_context(cafile=tls_files["ca"])
    scope, mine = scope_from(("127.0.0.1", stack.ports["p_tls"]), source="127.0.0.2", tls=ctx)
    assert scope["scheme"] == "https"
    assert scope["client"] == ["127.0.0.2", mine[1]]
    assert scope["server"] == ["127.0.0.1", stack.ports["p_tls"]]


def test_http_mode_and_websocket(stack):
    """In HTTP mode HAProxy still opens each server connection with a header; a WebSocket
    upgrade through it sees the real client too."""
    from websockets.sync.client import connect

    resp = request(("127.0.0.1", stack.ports["p_http"]), "/scope", source="127.0.0.2")
    assert resp.status == 200
    assert resp.json()["client"][0] == "127.0.0.2"
    sock = socket.socket()
    sock.bind(("127.0.0.2", 0))
    sock.settimeout(15)
    sock.connect(("127.0.0.1", stack.ports["p_http"]))
    port = sock.getsockname()[1]
    with connect("ws://example.com/scope", sock=sock, open_timeout=15) as ws:
        scope = json.loads(ws.recv(timeout=15))
    assert scope["type"] == "websocket"
    assert scope["client"] == ["127.0.0.2", port]
    assert scope["server"] == ["127.0.0.1", stack.ports["p_http"]]


def test_send_proxy_v2_then_h2c(stack):
    """HAProxy speaking HTTP/2 (h2c, prior knowledge) to the worker after a v2 header, the
    way an h2 backend behind HAProxy is run: each stream carries the client's address."""
    transport = httpx.HTTPTransport(http1=False, http2=True, local_address="127.0.0.2")
    url = f"http://127.0.0.1:{stack.ports['p_h2']}"
    with httpx.Client(base_url=url, transport=transport, timeout=15) as client:
        for _ in range(3):
            response = client.get("/scope")
            assert response.status_code == 200 and response.http_version == "HTTP/2"
            scope = response.json()
            assert scope["http_version"] == "2"  # HTTP/2 on the HAProxy-to-worker leg too
            assert scope["client"][0] == "127.0.0.2"
            assert scope["server"] == ["127.0.0.1", stack.ports["p_h2"]]
