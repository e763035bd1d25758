"""nginx (Debian's nginx-light) around an HTTP/2 worker, both workers:

* in front, speaking HTTP/2 over TLS to the client and HTTP/1.1 to us (``proxy_pass``): the way
  most deployments run;
* ``grpc_pass``: nginx speaking h2c (prior knowledge) to us, with a gRPC-shaped bidirectional
  streaming POST through it -- each answer arrives before the next message is sent, and the
  trailers (grpc-status) come through.

Each test writes its own nginx.conf under its tmp dir (pid, logs and temp paths there), listens
on unix sockets, and starts nginx in the foreground.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from tests.conftest import WORKERS
from tests.deploy.support import connects, start_nginx_program
from tests.h2.client import H2Client

pytestmark = pytest.mark.parametrize("worker", WORKERS)


def start_nginx(tmp: Path, server: str) -> str:
    """nginx with one ``server`` block; returns the unix socket it listens on."""
    prefix = tmp / "nginx"
    prefix.mkdir()
    listen = str(prefix / "front.sock")
    block = "server {\n" + server.replace("FRONT", listen) + "\n    }"
    proc = start_nginx_program(prefix, block)
    start_nginx.running.append(proc)  # type: ignore[attr-defined]
    proc.wait_for(lambda: connects(listen), "nginx listening")
    return listen


start_nginx.running = []  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _stop_nginx():
    yield
    while start_nginx.running:  # type: ignore[attr-defined]
        start_nginx.running.pop().stop()  # type: ignore[attr-defined]


def backend(start_server, config_worker, tmp_path, worker, **kwargs):
    worker_class, env = config_worker(worker, **kwargs)
    sock = tmp_path / "gunicorn.sock"
    server = start_server(app="tests.h2.apps:app", worker=worker_class, env=env,
                          bind=f"unix:{sock}")
    return server, sock


def test_nginx_in_front_speaks_http2_to_clients(start_server, config_worker, tmp_path, worker,
                                                 tls_files):
    _, sock = backend(start_server, config_worker, tmp_path, worker)
    front = start_nginx(tmp_path, f"""
        listen unix:FRONT ssl http2;
        ssl_certificate {tls_files['cert']};
        ssl_certificate_key {tls_files['key']};
        location / {{
            proxy_pass http://unix:{sock}:;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_request_buffering off;
            proxy_buffering off;
        }}""")
    verify = ssl.create_default_context(cafile=tls_files["ca"])
    transport = httpx.HTTPTransport(uds=front, http2=True, verify=verify)
    with httpx.Client(base_url="https://localhost", transport=transport, timeout=15) as client:
        body = bytes(range(256)) * 4096  # 1 MiB through nginx's HTTP/2 and back
        response = client.post("/echo", content=body)
        assert response.http_version == "HTTP/2"
        assert response.content == body
        scope = client.get("/scope").json()
        assert scope["http_version"] == "1.1"  # nginx speaks HTTP/1.1 to the upstream
        assert client.get("/stream?8").content == b"x" * 65536 * 8


def test_grpc_pass_streams_over_h2c(start_server, config_worker, tmp_path, worker):
    _, sock = backend(start_server, config_worker, tmp_path, worker,
                      http_protocols="h2,h1", http2_cleartext="prior-knowledge")
    front = start_nginx(tmp_path, f"""
        listen unix:FRONT http2;
        location / {{
            grpc_pass grpc://unix:{sock};
        }}""")
    client = H2Client(SimpleNamespace(uds=front, tls=None))
    sid = client.request("/grpc.Echo/Stream", method="POST", end=False, headers=[
        (b"content-type", b"application/grpc"), (b"te", b"trailers")])
    response = client.responses[sid]
    expected = b""
    for word in (b"hello", b"streaming", b"world"):
        client.send_body(sid, b"\0" + len(word).to_bytes(4, "big") + word, end=False)
        expected += b"\0" + len(word).to_bytes(4, "big") + word.upper()
        # the answer to this message comes back before the next one is sent: both directions
        # stream through nginx and the worker, nothing waits for the end of the body
        client.until(lambda e=expected: bytes(response.data) == e, message=f"answer to {word}")
    client.send_body(sid, b"", end=True)
    client.response(sid)
    assert response.status == 200 and response.reset is None
    assert response.header(b"x-http-version") == b"2"  # nginx spoke HTTP/2 to the worker
    assert bytes(response.data) == expected
    trailers = dict(response.trailers)
    assert trailers[b"grpc-status"] == b"0" and trailers[b"x-messages"] == b"3"
