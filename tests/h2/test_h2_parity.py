"""What HTTP/1.1 does that HTTP/2 must do the same way, from the same code: limit_concurrency
(503 on the stream), max_requests counting streams, the proxy-header trust rules and root_path,
the ``tls`` scope extension, and ``gworkers.run(http2=True)``. Both workers, real Gunicorn."""

from __future__ import annotations

import json
import ssl
import sys
import textwrap

import httpx
import pytest
from h2.errors import ErrorCodes

from tests.conftest import WORKERS
from tests.h2.client import H2Client

pytestmark = pytest.mark.parametrize("worker", WORKERS)

ALL = "x-forwarded-for,x-forwarded-proto,x-forwarded-host,x-forwarded-port,x-forwarded-prefix,forwarded"
FORWARDED = [
    (b"x-forwarded-for", b"203.0.113.9, 10.1.2.3"),
    (b"x-forwarded-proto", b"https"),
    (b"x-forwarded-host", b"public.example:8443"),
    (b"x-forwarded-port", b"8443"),
    (b"x-forwarded-prefix", b"/mount"),
]


def scope_over_h2(server, headers: list, path: str = "/p?q=1") -> dict:
    client = H2Client(server)
    sid = client.request(path, headers=headers)
    response = client.response(sid)
    assert response.status == 200
    return json.loads(bytes(response.data))


def test_limit_concurrency_answers_503_on_the_stream(start_h2, worker):
    h2 = start_h2(worker, limit_concurrency=2)
    client = H2Client(h2.server)
    holds = [client.request("/hold"), client.request("/hold")]
    h2.wait_mark("entered", 2)
    over = client.request("/echo", method="POST", body=b"refused", end=True)
    response = client.response(over)
    assert response.status == 503 and response.reset is None
    # other connections are refused the same way, on HTTP/2 and on HTTP/1.1
    other = H2Client(h2.server)
    assert other.response(other.request("/pid")).status == 503
    with httpx.Client(base_url=h2.server.url, timeout=15) as one:
        assert one.get("/pid").status_code == 503
    for sid in holds:
        client.reset(sid)
    h2.wait_mark("http.disconnect", 2)
    # the app calls have returned: the same connection is served again
    again = client.request("/pid")
    client.until(lambda: client.responses[again].ended, message="a stream after the holds")
    assert client.responses[again].status == 200
    assert h2.marks().count("entered") == 2  # the refused streams never reached the app


def test_max_requests_counts_streams(start_h2, worker):
    h2 = start_h2(worker, args=["-w", "1", "--max-requests", "3"])
    client = H2Client(h2.server, raw_after_goaway=True)  # (a drain may send two GOAWAYs)
    pids = []
    for _ in range(3):  # three streams on one connection: the third reaches max_requests
        response = client.response(client.request("/pid"))
        assert response.status == 200
        pids.append(int(bytes(response.data)))
    assert len(set(pids)) == 1
    # the worker drains: GOAWAY naming the last stream it took, then the connection closes
    final = client.final_goaway()
    assert final.error_code == ErrorCodes.NO_ERROR and final.last_stream_id == 5
    client.wait_closed()
    # a new worker serves the next connection
    fresh = H2Client(h2.server)
    response = fresh.response(fresh.request("/pid"))
    assert response.status == 200 and int(bytes(response.data)) != pids[0]


def test_trusted_proxy_headers_and_prefix(start_h2, worker):
    h2 = start_h2(worker, forwarded_headers=ALL, forwarded_allow_ips="127.0.0.1,10.0.0.0/8")
    scope = scope_over_h2(h2.server, FORWARDED)
    assert scope["http_version"] == "2"
    assert scope["client"] == ["203.0.113.9", 0]  # the right-most untrusted hop
    assert scope["scheme"] == "https"
    assert scope["server"] == ["public.example", 8443]
    assert ["host", "public.example:8443"] in scope["headers"]
    assert ["host", "localhost"] not in scope["headers"]
    assert scope["root_path"] == "/mount"
    assert scope["path"] == "/mount/p" and scope["raw_path"] == "/mount/p"


def test_untrusted_peer_proxy_headers_untouched(start_h2, worker):
    h2 = start_h2(worker, forwarded_headers=ALL, forwarded_allow_ips="10.9.9.9")
    scope = scope_over_h2(h2.server, [*FORWARDED, (b"forwarded", b"for=198.51.100.1;proto=https")])
    assert scope["client"][0] == "127.0.0.1"
    assert scope["scheme"] == "http"
    assert scope["server"][0] == "127.0.0.1"
    assert ["host", "localhost"] in scope["headers"]
    assert scope["root_path"] == "" and scope["path"] == "/p"
    for name, value in FORWARDED:
        assert [name.decode(), value.decode()] in scope["headers"]


def test_root_path(start_h2, worker):
    h2 = start_h2(worker, root_path="/api")
    scope = scope_over_h2(h2.server, [], path="/p%20q?x=1")
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/p q" and scope["raw_path"] == "/api/p%20q"
    assert scope["query_string"] == "x=1"


def test_tls_scope_extension(start_h2, worker, tls_files):
    h2 = start_h2(worker, tls=True, args=["--ca-certs", tls_files["ca"], "--cert-reqs", "1"])
    ctx = ssl.create_default_context(cafile=tls_files["ca"])
    ctx.load_cert_chain(tls_files["client_cert"])
    with httpx.Client(base_url=h2.server.url, http2=True, verify=ctx, timeout=15) as client:
        response = client.get("/extensions")
    assert response.http_version == "HTTP/2"
    info = response.json()
    assert "tls" in info["names"]
    tls = info["tls"]
    assert tls["tls_version"] in (0x0303, 0x0304)
    assert isinstance(tls["cipher_suite"], int) and tls["cipher_suite"] > 0
    with open(tls_files["cert"]) as f:
        assert tls["server_cert"].strip() in f.read()
    assert len(tls["client_cert_chain"]) == 1
    assert tls["client_cert_chain"][0].startswith("-----BEGIN CERTIFICATE-----")
    assert tls["client_cert_name"] and tls["client_cert_error"] is None
    # cleartext h2 has no tls extension
    plain = start_h2(worker)
    with plain.client() as client:
        info = client.get("/extensions").json()
    assert "tls" not in info["names"] and info["tls"] is None


def _run_script(tmp_path, options: str) -> list[str]:
    path = tmp_path / "serve.py"
    path.write_text(textwrap.dedent(f"""
        import gworkers
        gworkers.run("tests.h2.apps:app", port=0, {options})
    """))
    return [sys.executable, str(path)]


def test_run_http2_keyword(start_cli, tmp_path, tls_files, worker):
    """``gworkers.run(http2=True)``: h2c by prior knowledge beside HTTP/1.1 without TLS, ALPN
    h2 with it; on both worker classes."""
    cls = f"worker_class={worker!r}"
    server = start_cli([], argv0=_run_script(tmp_path, f"http2=True, {cls}"), cwd=tmp_path)
    with httpx.Client(base_url=server.url, http1=False, http2=True, timeout=15) as client:
        response = client.post("/echo", content=b"prior knowledge")
        assert response.http_version == "HTTP/2" and response.text == "prior knowledge"
        assert client.get("/scope").json()["http_version"] == "2"
    with httpx.Client(base_url=server.url, timeout=15) as client:
        assert client.post("/echo", content=b"one-one").http_version == "HTTP/1.1"
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    options = (f"http2=True, {cls}, ssl_certfile={tls_files['cert']!r}, "
               f"ssl_keyfile={tls_files['key']!r}")
    secure = start_cli([], argv0=_run_script(tls_dir, options), cwd=tls_dir, tls=tls_files)
    verify = ssl.create_default_context(cafile=tls_files["ca"])
    with httpx.Client(base_url=secure.url, http2=True, verify=verify, timeout=15) as client:
        response = client.get("/scope")
        assert response.http_version == "HTTP/2"
        assert response.json()["scheme"] == "https"
