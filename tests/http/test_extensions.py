"""ASGI HTTP extensions against real Gunicorn, both workers, plain and TLS."""

from __future__ import annotations

import hashlib
import socket
import ssl

import h11
import pytest

from tests.conftest import raw_request

APP = "tests.ext_apps:app"


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("files") / "data.bin"
    block = hashlib.sha256(b"seed").digest() * 2048  # 64 KiB of non-repeating-ish bytes
    with open(path, "wb") as f:
        for i in range(48):  # 3 MiB + a tail: several sendfile calls and partial chunks
            f.write(bytes([i]) + block[1:])
        f.write(b"tail" * 1000)
    return path


@pytest.fixture
def ext_server(start_server, worker, tls_mode, big_file):
    return start_server(app=APP, worker=worker, tls=tls_mode, env={"GW_TEST_FILE": str(big_file)})


def test_extensions_advertised(ext_server, tls_files):
    with ext_server.client() as client:
        info = client.get("/extensions").json()
        with_te = client.get("/extensions", headers={"TE": "trailers"}).json()
    for name in ("http.response.pathsend", "http.response.zerocopysend", "http.response.early_hint"):
        assert name in info["names"]
    assert "http.response.trailers" not in info["names"]
    assert "http.response.trailers" in with_te["names"]
    if ext_server.tls:
        tls = info["tls"]
        assert tls["tls_version"] in (0x0303, 0x0304)
        assert isinstance(tls["cipher_suite"], int) and tls["cipher_suite"] > 0
        assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None
        with open(tls_files["cert"]) as f:
            assert tls["server_cert"].strip() in f.read()
    else:
        assert "tls" not in info["names"] and info["tls"] is None


def test_pathsend_exact_bytes(ext_server, big_file):
    expected = big_file.read_bytes()
    with ext_server.client() as client:
        for query in ("", "nolength"):
            response = client.get(f"/pathsend?{query}")
            assert response.status_code == 200
            assert response.content == expected
        # the connection is still usable after a file body
        assert client.get("/extensions").status_code == 200


def test_pathsend_slow_reader(start_server, worker, tls_mode, tmp_path):
    """A file far larger than the socket buffers, read in small pieces: the server must wait
    on flow control (transport paused) rather than buffer the file, and still send it whole."""
    huge = tmp_path / "huge.bin"
    with open(huge, "wb") as f:
        for i in range(384):  # 24 MiB
            f.write(bytes([i % 251]) * 65536)
    expected = huge.read_bytes()
    server = start_server(app=APP, worker=worker, tls=tls_mode, env={"GW_TEST_FILE": str(huge)})
    sock = server.connect(timeout=30)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET /pathsend HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        chunks = []
        while True:
            data = sock.recv(4096)
            if not data:
                break
            chunks.append(data)
    finally:
        sock.close()
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body == expected


def test_zerocopysend_offsets(ext_server, big_file):
    data = big_file.read_bytes()
    expected = data[10:1010] + data[5000:]
    with ext_server.client() as client:
        response = client.get("/zerocopy")
    assert response.status_code == 200
    assert response.content == expected


def test_pathsend_misuse_is_500(ext_server):
    with ext_server.client() as client:
        assert client.get("/pathsend-missing").status_code == 500
        assert client.get("/pathsend-relative").status_code == 500
    log = ext_server.log()
    assert "FileNotFoundError" in log
    assert "needs an absolute path" in log


def _h11_get(server, target, headers):
    sock = server.connect()
    conn = h11.Connection(h11.CLIENT)
    sock.sendall(conn.send(h11.Request(method="GET", target=target,
                                       headers=[("Host", "x"), *headers])))
    sock.sendall(conn.send(h11.EndOfMessage()))
    events = []
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
                continue
            events.append(event)
            if type(event) is h11.EndOfMessage:
                return events
    finally:
        sock.close()


def test_trailers_when_asked(ext_server):
    events = _h11_get(ext_server, "/trailers", [("TE", "trailers")])
    body = b"".join(bytes(e.data) for e in events if type(e) is h11.Data)
    assert body == b"hello world"
    assert events[-1].headers == [(b"x-checksum", b"abc123")]
    # not asked for: the same response, without the trailer fields, still well framed
    events = _h11_get(ext_server, "/trailers", [])
    assert b"".join(bytes(e.data) for e in events if type(e) is h11.Data) == b"hello world"
    assert list(events[-1].headers) == []


def test_trailers_without_declaring_is_app_error(ext_server):
    with ext_server.client() as client:
        response = client.get("/trailers-undeclared", headers={"TE": "trailers"})
    assert response.content == b"x"
    assert "trailers without trailers: True" in ext_server.wait_for_log("without trailers").string


def test_early_hints_before_final(ext_server):
    raw = raw_request(ext_server, b"GET /early-hints HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    first, _, rest = raw.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 103 Early Hints\r\n")
    assert b"link: </style.css>; rel=preload; as=style" in first
    assert b"link: </app.js>; rel=preload" in first
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")
    assert rest.endswith(b"\r\n\r\nfinal")


def test_no_early_hints_for_http10(ext_server):
    raw = raw_request(ext_server, b"GET /early-hints HTTP/1.0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"103" not in raw.split(b"\r\n", 1)[0]
    assert raw.endswith(b"final")


def test_tls_client_certificate_fields(start_server, worker, tls_files, big_file):
    server = start_server(app=APP, worker=worker, tls=tls_files,
                          args=["--ca-certs", tls_files["ca"], "--cert-reqs", "1"],
                          env={"GW_TEST_FILE": str(big_file)})
    ctx = ssl.create_default_context(cafile=tls_files["ca"])
    ctx.load_cert_chain(tls_files["client_cert"])
    import httpx

    with httpx.Client(base_url=server.url, verify=ctx) as client:
        info = client.get("/extensions").json()["tls"]
    assert len(info["client_cert_chain"]) == 1
    assert info["client_cert_chain"][0].startswith("-----BEGIN CERTIFICATE-----")
    from cryptography import x509

    with open(tls_files["client_cert"], "rb") as f:
        presented = x509.load_pem_x509_certificate(f.read().split(b"-----END PRIVATE KEY-----")[-1])
    assert info["client_cert_name"] == presented.subject.rfc4514_string()
    leaf = x509.load_pem_x509_certificate(info["client_cert_chain"][0].encode())
    assert leaf == presented
    assert info["client_cert_error"] is None
