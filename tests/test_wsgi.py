"""WSGI apps under the ASGI server (gworkers/wsgi.py): PEP 3333 environ, a streaming
wsgi.input, streamed responses. Real Gunicorn, both workers."""

from __future__ import annotations

import hashlib
import json

from tests.conftest import ResponseReader, proc_status

WSGI = "tests.apps:wsgi_app"
FLASK = "tests.flask_app:app"


def test_environ_per_pep3333(start_server, worker, tls_mode):
    server = start_server(app=WSGI, worker=worker, tls=tls_mode)
    with server.connect() as sock:
        sock.sendall(b"POST /environ?a=1&b=%C3%A9 HTTP/1.1\r\nHost: example.com:8080\r\n"
                     b"Content-Type: text/plain\r\nContent-Length: 0\r\nX-Custom: one\r\n"
                     b"X-Custom: two\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n")
        reader = ResponseReader(sock)
        environ = json.loads(reader.read().body)
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["SCRIPT_NAME"] == ""
    assert environ["PATH_INFO"] == "/environ"
    assert environ["QUERY_STRING"] == "a=1&b=%C3%A9"
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["CONTENT_LENGTH"] == "0"
    assert "HTTP_CONTENT_TYPE" not in environ and "HTTP_CONTENT_LENGTH" not in environ
    assert environ["SERVER_NAME"] == "127.0.0.1"
    assert environ["SERVER_PORT"] == str(server.port)  # a string, as PEP 3333 asks
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["HTTP_HOST"] == "example.com:8080"
    assert environ["HTTP_X_CUSTOM"] == "one,two"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert environ["wsgi.url_scheme"] == ("https" if tls_mode else "http")
    with server.client() as client:
        types = client.get("/types").json()
        assert types["input_terminated"], types
        assert all(types.values())


def test_path_info_is_latin1_of_raw_bytes(start_server, worker):
    server = start_server(app=WSGI, worker=worker)
    with server.client() as client:
        # UTF-8 and a byte that is not UTF-8: PATH_INFO carries the bytes, as latin-1
        assert client.get("/caf%C3%A9").text == "wsgi /caf\u00c3\u00a9"
        assert client.get("/x%FFy").content == "wsgi /x\u00ffy".encode()


def test_large_chunked_upload_streams(start_server, worker):
    """A 48 MiB chunked upload read in 4 KiB pieces: correct, and never buffered whole."""
    server = start_server(app=WSGI, worker=worker)
    with server.client() as client:
        client.get("/")
    pid = server.worker_pids()[0]
    base = proc_status(pid, "VmHWM")
    piece = bytes(range(256)) * 4096  # 1 MiB
    count = 48
    digest = hashlib.sha256()
    for _ in range(count):
        digest.update(piece)

    def body():
        for _ in range(count):
            yield piece

    with server.client(timeout=120) as client:
        response = client.post("/read-pieces", content=body())
    assert response.text == f"{count * len(piece)} {digest.hexdigest()}"
    grown_mib = (proc_status(pid, "VmHWM") - base) / 1024
    assert grown_mib < 24, f"peak RSS grew by {grown_mib:.0f} MiB for a 48 MiB upload"


def test_input_lines_and_echo(start_server, worker):
    server = start_server(app=WSGI, worker=worker)
    with server.client() as client:
        lines = client.post("/lines", content=iter([b"one\ntw", b"o\n", b"", b"three"])).json()
        assert lines == ["one\n", "two\n", "three"]
        assert client.post("/echo", content=b"x" * 100_000).content == b"x" * 100_000


def test_streamed_responses(start_server, worker):
    server = start_server(app=WSGI, worker=worker)
    with server.connect() as sock:
        reader = ResponseReader(sock)
        sock.sendall(b"GET /generator HTTP/1.1\r\nHost: t\r\n\r\n")
        response = reader.read()
        assert response.framing == "chunked" and response.body == b"gen-erated"
        sock.sendall(b"GET /write HTTP/1.1\r\nHost: t\r\n\r\n")
        assert reader.read().body == b"written,returned"


def test_wsgi_app_error_is_500(start_server, worker):
    server = start_server(app=WSGI, worker=worker)
    with server.client() as client:
        assert client.get("/raise").status_code == 500
        assert client.get("/ok").text == "wsgi /ok"
    assert "RuntimeError: wsgi boom" in server.log()


def _pieces(total: int, size: int = 256 * 1024):
    """``total`` bytes that differ along the way (a dropped or repeated piece changes the
    digest), in pieces of ``size``: httpx sends a generator as a chunked body."""
    data = hashlib.sha256(b"seed").digest() * (total // 32 + 1)
    data = data[:total]
    return data, [data[i : i + size] for i in range(0, total, size)]


def _summary(data: bytes) -> str:
    return f"{len(data)} {hashlib.sha256(data).hexdigest()}"


def test_flask_reads_chunked_uploads(start_server, worker):
    """Werkzeug reads a body without Content-Length only when ``wsgi.input_terminated`` says
    the input ends at the body's end; without it a chunked upload arrived as 0 bytes and 200."""
    server = start_server(app=FLASK, worker=worker)
    data, pieces = _pieces(6 * 1024 * 1024 + 12345)
    with server.client(timeout=60) as client:
        for path in ("/data", "/stream"):
            response = client.post(path, content=iter(pieces))
            assert response.request.headers.get("transfer-encoding") == "chunked"
            assert "content-length" not in response.request.headers
            assert (response.status_code, response.text) == (200, _summary(data)), path
        # a multipart form upload, chunked: parsed by Werkzeug's form parser
        boundary = b"gworkers-boundary"
        form = [b"--%b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\n"
                b"Content-Type: application/octet-stream\r\n\r\n" % boundary,
                *pieces, b"\r\n--%b--\r\n" % boundary]
        response = client.post("/upload", content=iter(form),
                               headers={"content-type": f"multipart/form-data; boundary={boundary.decode()}"})
        assert (response.status_code, response.text) == (200, _summary(data))
        # the same body with a Content-Length still reads the same
        response = client.post("/data", content=data)
        assert response.text == _summary(data)


def test_chunked_upload_raw_socket(start_server, worker):
    """A chunked upload written by hand (odd chunk sizes, an extension, a trailer) through
    Flask, and a plain WSGI app that reads wsgi.input to its end."""
    data, _ = _pieces(3 * 1024 * 1024 + 7)
    sizes = [1, 4095, 65536, 1 << 20]
    framed, at, i = [], 0, 0
    while at < len(data):
        piece = data[at : at + sizes[i % len(sizes)]]
        framed.append(b"%x;n=%d\r\n%b\r\n" % (len(piece), i, piece))
        at += len(piece)
        i += 1
    body = b"".join(framed) + b"0\r\nx-sum: 1\r\n\r\n"
    for app, path in ((FLASK, "/data"), (WSGI, "/read-pieces")):
        server = start_server(app=app, worker=worker)
        with server.connect(timeout=60) as sock:
            sock.sendall(b"POST %b HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                         % path.encode() + body)
            response = ResponseReader(sock).read()
        assert (response.status, response.body.decode()) == (200, _summary(data)), app
