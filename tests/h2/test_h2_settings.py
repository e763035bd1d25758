"""How HTTP/2 is turned on: ``gworkers-run --http2`` (uvicorn's flag), Gunicorn's own
``--http-protocols``/``--http2-cleartext`` settings, and what stays off by default."""

from __future__ import annotations

import ssl

import httpx
import pytest

from tests.conftest import WORKERS
from tests.h2.client import open_socket


def test_cli_http2_flag_serves_h2c_and_http1(start_cli):
    server = start_cli(["tests.h2.apps:app", "--port", "0", "--http2"])
    with httpx.Client(base_url=server.url, http1=False, http2=True, timeout=15) as client:
        response = client.post("/echo", content=b"prior knowledge")
        assert response.http_version == "HTTP/2" and response.text == "prior knowledge"
    with httpx.Client(base_url=server.url, timeout=15) as client:
        assert client.post("/echo", content=b"one-one").http_version == "HTTP/1.1"


def test_cli_http2_flag_with_tls_offers_h2_in_alpn(start_cli, tls_files):
    server = start_cli(["tests.h2.apps:app", "--port", "0", "--http2",
                        "--ssl-certfile", tls_files["cert"], "--ssl-keyfile", tls_files["key"]],
                       tls=tls_files)
    verify = ssl.create_default_context(cafile=tls_files["ca"])
    with httpx.Client(base_url=server.url, http2=True, verify=verify, timeout=15) as client:
        assert client.get("/echo").http_version == "HTTP/2"
    sock = open_socket(server, alpn="http/1.1")  # a client without h2 still gets HTTP/1.1
    assert sock.selected_alpn_protocol() == "http/1.1"
    sock.close()


@pytest.mark.parametrize("worker", WORKERS)
def test_gunicorn_settings_turn_http2_on(start_server, worker, tls_files):
    server = start_server(app="tests.h2.apps:app", worker=worker,
                          args=["--http-protocols", "h2,h1", "--http2-cleartext",
                                "prior-knowledge"])
    with httpx.Client(base_url=server.url, http1=False, http2=True, timeout=15) as client:
        assert client.get("/echo").http_version == "HTTP/2"
    tls = start_server(app="tests.h2.apps:app", worker=worker, tls=tls_files,
                       args=["--http-protocols", "h2,h1"])
    sock = open_socket(tls, alpn="h2")
    assert sock.selected_alpn_protocol() == "h2"
    sock.close()


@pytest.mark.parametrize("worker", WORKERS)
def test_off_by_default(start_server, worker, tls_files):
    server = start_server(app="tests.h2.apps:app", worker=worker, tls=tls_files)
    sock = open_socket(server, alpn="h2")
    assert sock.selected_alpn_protocol() is None  # h2 is not offered: no protocol agreed
    sock.close()
    plain = start_server(app="tests.h2.apps:app", worker=worker)
    with httpx.Client(base_url=plain.url, http1=False, http2=True, timeout=15) as client:
        with pytest.raises(httpx.HTTPError):
            client.get("/echo")  # the preface is not HTTP/1.1: refused, never HTTP/2
