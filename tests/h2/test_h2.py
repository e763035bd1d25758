"""HTTP/2 on both workers, over TLS (ALPN) and cleartext (h2c), with real clients: httpx's h2
client, curl, h2load, and a raw h2 client for what those cannot show."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import subprocess

import pytest
from h2.errors import ErrorCodes

from tests.conftest import WORKERS, ResponseReader
from tests.h2.client import H2Client

pytestmark = pytest.mark.parametrize("worker", WORKERS)
TLS = pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])


@TLS
def test_get_scope_and_echo(start_h2, worker, tls):
    h2 = start_h2(worker, tls=tls)
    with h2.client() as client:
        response = client.get("/scope-path?x=1", headers={"cookie": "a=1"})
        assert response.http_version == "HTTP/2"
        scope = response.json()
        assert scope["http_version"] == "2"
        assert scope["scheme"] == ("https" if tls else "http")
        assert scope["path"] == "/scope-path" and scope["query_string"] == "x=1"
        names = [name for name, _ in scope["headers"]]
        assert names[0] == "host" and not any(n.startswith(":") for n in names)
        host = dict(scope["headers"])["host"]
        assert host.endswith(f":{h2.server.port}")
        body = bytes(range(256)) * 4096 * 3  # 3 MiB: many windows' worth each way
        echoed = client.post("/echo", content=body)
        assert echoed.status_code == 200 and echoed.content == body

        def chunks():
            for i in range(64):
                yield bytes([i]) * 16384

        streamed = client.post("/echo", content=chunks())
        assert streamed.content == b"".join(chunks())
        assert client.get("/stream?40").content == b"x" * 65536 * 40


@TLS
def test_many_concurrent_streams_on_one_connection(start_h2, worker, tls):
    h2 = start_h2(worker, tls=tls)
    import httpx

    async def main():
        kwargs = {"http2": True, "base_url": h2.server.url, "timeout": 15.0}
        if tls:
            import ssl

            kwargs["verify"] = ssl.create_default_context(cafile=h2.server.tls["ca"])
        else:
            kwargs["http1"] = False
        async with httpx.AsyncClient(**kwargs) as client:
            # /barrier answers only once 50 requests are inside the app at the same time
            responses = await asyncio.gather(*(client.get("/barrier?50") for _ in range(50)))
        return responses

    responses = asyncio.run(main())
    assert [r.text for r in responses] == ["together"] * 50
    assert all(r.http_version == "HTTP/2" for r in responses)


def test_cookies_split_fields_are_joined(start_h2, worker):
    h2 = start_h2(worker)
    client = H2Client(h2.server)
    sid = client.request("/cookies", headers=[(b"cookie", b"a=1"), (b"cookie", b"b=2")])
    assert bytes(client.response(sid).data) == b"a=1; b=2"


@TLS
def test_trailers_and_early_hints(start_h2, worker, tls):
    h2 = start_h2(worker, tls=tls)
    client = H2Client(h2.server)
    sid = client.request("/trailers", headers=[(b"te", b"trailers")])
    response = client.response(sid)
    assert response.status == 200 and bytes(response.data) == b"hello world"
    assert response.trailers == [(b"x-checksum", b"abc123")]
    sid = client.request("/early-hints")
    response = client.response(sid)
    assert [dict(h)[b":status"] for h in response.informational] == [b"103"]
    links = [v for n, v in response.informational[0] if n == b"link"]
    assert links == [b"</style.css>; rel=preload; as=style", b"</app.js>; rel=preload"]
    assert response.status == 200 and bytes(response.data) == b"final"


@TLS
def test_pathsend_and_zerocopysend(start_h2, worker, tls):
    h2 = start_h2(worker, tls=tls)
    payload = h2.file.read_bytes()
    with h2.client() as client:
        response = client.get("/pathsend")
        assert response.http_version == "HTTP/2"
        assert hashlib.sha256(response.content).digest() == hashlib.sha256(payload).digest()
        assert client.get("/pathsend?nolength").content == payload
        assert client.get("/zerocopy").content == payload[10:1010] + payload[5000:]


@TLS
def test_reset_stream_is_http_disconnect(start_h2, worker, tls):
    h2 = start_h2(worker, tls=tls)
    client = H2Client(h2.server)
    sid = client.request("/hold", method="POST", body=b"x", end=False)
    h2.wait_mark("entered")
    client.reset(sid, ErrorCodes.CANCEL)
    h2.wait_mark("http.disconnect")
    # the connection goes on
    sid = client.request("/echo", method="POST", body=b"still here")
    assert bytes(client.response(sid).data) == b"still here"
    assert "Exception" not in h2.server.log()


def test_connection_loss_is_http_disconnect(start_h2, worker):
    h2 = start_h2(worker)
    client = H2Client(h2.server)
    client.request("/hold", method="POST", body=b"x", end=False)
    h2.wait_mark("entered")
    client.close()
    h2.wait_mark("http.disconnect")


def test_slow_reader_bounds_what_is_buffered(start_h2, worker):
    """A client that never opens its window gets the initial 64 KiB; the app's send waits."""
    h2 = start_h2(worker)
    client = H2Client(h2.server, auto_ack=False)
    sid = client.request("/stream-watch?200")  # 200 x 64 KiB
    client.until(lambda: len(client.responses[sid].data) >= 65535, message="first window")
    h2.wait_mark("blocked 0")  # its first 64 KiB send already waits for window
    assert len(client.responses[sid].data) == 65535
    assert "done" not in h2.marks()
    # opening the window lets the rest through
    client.auto_ack = True
    client.conn.increment_flow_control_window(2**30)
    client.conn.increment_flow_control_window(2**30, sid)
    client.flush()
    response = client.response(sid, timeout=60)
    assert len(response.data) == 200 * 65536


def test_unread_upload_pauses_only_its_stream(start_h2, worker):
    h2 = start_h2(worker)
    client = H2Client(h2.server)
    stuck = client.request("/hold-unread", method="POST", body=b"u" * 65535, end=False)
    h2.wait_mark("entered unread")
    # the stream's window is spent and the app does not read: no more window for it
    assert client.conn.local_flow_control_window(stuck) == 0
    # yet another stream on the same connection uploads and is answered
    body = b"v" * 300_000
    other = client.request("/count", method="POST", headers=[(b"content-length", b"300000")],
                           end=False)
    sent = 0
    while sent < len(body):
        window = client.conn.local_flow_control_window(other)
        if window:
            n = min(window, len(body) - sent, client.conn.max_outbound_frame_size)
            client.conn.send_data(other, body[sent:sent + n], end_stream=sent + n == len(body))
            client.flush()
            sent += n
        else:
            client.pump(1.0)
    assert bytes(client.response(other).data) == b"300000"
    assert client.conn.local_flow_control_window(stuck) == 0
    h2.gate.touch()
    assert bytes(client.response(stuck).data) == b"gate open"


def test_max_concurrent_streams_refuses_with_refused_stream(start_h2, worker):
    h2 = start_h2(worker, http2_max_concurrent_streams=2)
    client = H2Client(h2.server)
    first = client.request("/hold", method="POST", body=b"", end=False)
    second = client.request("/hold", method="POST", body=b"", end=False)
    h2.wait_mark("entered", 2)
    third = client.request("/echo")
    response = client.response(third)
    assert response.reset == ErrorCodes.REFUSED_STREAM
    assert h2.marks().count("entered") == 2
    client.reset(first)
    h2.wait_mark("http.disconnect")
    fourth = client.request("/echo", method="POST", body=b"room again")
    assert bytes(client.response(fourth).data) == b"room again"
    client.reset(second)


def test_answered_streams_free_their_place_while_the_app_call_goes_on(start_h2, worker):
    """RFC 9113 5.1.2: a closed stream no longer counts against MAX_CONCURRENT_STREAMS, even
    while its app call goes on after the response; app calls are capped apart (twice the limit:
    the rapid-reset bound), so the client is refused only past that."""
    h2 = start_h2(worker, http2_max_concurrent_streams=2)
    client = H2Client(h2.server)
    for batch in (1, 2):
        sids = [client.request("/answer-then-linger") for _ in range(2)]
        for sid in sids:
            response = client.response(sid)
            assert response.reset is None
            assert bytes(response.data) == b"answered"
        h2.wait_mark("lingering", 2 * batch)
    # four app calls still running (two per stream limit): the next stream is refused
    over = client.response(client.request("/echo"))
    assert over.reset == ErrorCodes.REFUSED_STREAM
    h2.gate.touch()
    h2.wait_mark("lingered", 4)
    room = client.response(client.request("/echo", method="POST", body=b"room again"))
    assert bytes(room.data) == b"room again"


def test_access_log_and_hooks_say_http_2(start_h2, worker, tmp_path):
    hooks = tmp_path / "hooks.py"
    hooks.write_text(
        "def pre_request(worker, req):\n"
        "    worker.log.info('pre_request %s %s %s', req.method, req.path, req.version)\n"
        "def post_request(worker, req, environ, resp):\n"
        "    worker.log.info('post_request %s %s', req.path, resp.status)\n"
    )
    h2 = start_h2(worker, args=["--access-logfile", "-", "-c", str(hooks)])
    with h2.client() as client:
        assert client.get("/logged").status_code == 200
    server = h2.server
    server.wait_for_log(r'"GET /logged HTTP/2\.0" 200')
    server.wait_for_log(r"pre_request GET /logged \(2, 0\)")
    server.wait_for_log(r"post_request /logged 200 OK")


def test_limits_body_and_headers(start_h2, worker):
    h2 = start_h2(worker, limit_request_body=1000, limit_request_fields=10)
    client = H2Client(h2.server)
    # a declared length past the limit: 413 before the app runs
    sid = client.request("/echo", method="POST", headers=[(b"content-length", b"5000")],
                         end=False)
    assert client.response(sid).status == 413
    # an undeclared body that grows past it: 413 too
    sid = client.request("/hold-unread", method="POST", end=False)
    client.send_body(sid, b"z" * 3000, end=False)
    assert client.response(sid).status == 413
    # too many header fields: 431
    sid = client.request("/echo", headers=[(b"x-%d" % i, b"v") for i in range(20)])
    assert client.response(sid).status == 431
    # within the limits: served
    sid = client.request("/echo", method="POST", body=b"ok")
    assert bytes(client.response(sid).data) == b"ok"
    h2.gate.touch()  # the app holding the refused upload ends (else the drain waits for it)


@pytest.mark.parametrize("headers", [
    [(b"connection", b"close")],
    [(b"te", b"gzip")],
    [(b"Upper", b"case")],
    [(b"x-bad", b"a\nb")],
], ids=["connection", "te", "uppercase", "newline"])
def test_malformed_request_is_a_stream_error(start_h2, worker, headers):
    h2 = start_h2(worker)
    client = H2Client(h2.server)
    sid = client.request("/echo", headers=headers)
    assert client.response(sid).reset == ErrorCodes.PROTOCOL_ERROR
    sid = client.request("/echo", method="POST", body=b"next")  # the connection goes on
    assert bytes(client.response(sid).data) == b"next"


@pytest.mark.parametrize("mode", ["both", "prior-knowledge"])
def test_http1_still_served_on_the_h2c_port(start_h2, worker, mode):
    h2 = start_h2(worker, http2_cleartext=mode)
    with h2.server.client() as client:  # plain HTTP/1.1
        response = client.post("/echo", content=b"one-one")
        assert response.http_version == "HTTP/1.1" and response.text == "one-one"
    # later reads of the same connection are HTTP/1.1 too (uvloop keeps the data_received it
    # looked up first: the negotiating class must not see them): the body waits for the 100,
    # so it is a second read, then a second request on the same connection
    with h2.server.connect(timeout=15) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        reader = ResponseReader(sock)
        assert reader.read().status == 100
        sock.sendall(b"hello")
        response = reader.read(b"POST")
        assert (response.status, response.body) == (200, b"hello")
        sock.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reader.read().status == 200


@pytest.mark.parametrize("settings", [
    b"AAUAAABk",  # SETTINGS_MAX_FRAME_SIZE 100: below the 16384 allowed (RFC 9113 6.5.2)
    b"AAT_____",  # SETTINGS_INITIAL_WINDOW_SIZE 2^32-1: past 2^31-1
    b"AAMAAA",  # 4 bytes: not whole 6-byte settings
], ids=["frame-size", "window", "truncated"])
def test_upgrade_with_settings_out_of_range_is_served_on_http1(start_h2, worker, settings):
    """An ``Upgrade: h2c`` whose HTTP2-Settings could only be answered with GOAWAY is not
    taken: the request is answered on HTTP/1.1 (a server may ignore an upgrade)."""
    h2 = start_h2(worker, http2_cleartext="both")
    with h2.server.connect(timeout=15) as sock:
        sock.sendall(b"GET /upgraded HTTP/1.1\r\nHost: localhost\r\n"
                     b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                     b"HTTP2-Settings: " + settings + b"\r\n\r\n")
        response = ResponseReader(sock).read()
        assert response.status == 200
        assert json.loads(response.body)["http_version"] == "1.1"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@TLS
def test_curl(start_h2, worker, tls, tls_files):
    h2 = start_h2(worker, tls=tls)
    base = ["curl", "-sS", "--max-time", "20", "-w", "\\n%{http_version}"]
    if tls:
        modes = [["--http2", "--cacert", tls_files["ca"]]]
    else:
        modes = [["--http2-prior-knowledge"], ["--http2"]]  # the second asks Upgrade: h2c
    for mode in modes:
        out = subprocess.run([*base, *mode, "--data-binary", "curl body",
                              f"{h2.server.url}/echo"], capture_output=True, check=True).stdout
        assert out.decode().split("\n") == ["curl body", "2"]
        out = subprocess.run([*base, *mode, f"{h2.server.url}/upgraded?q=1"],
                             capture_output=True, check=True).stdout
        body, version = out.decode().rsplit("\n", 1)
        assert version == "2"
        assert json.loads(body)["http_version"] == "2"
    if not tls:
        # the upgraded request really went through 101 and was answered as stream 1
        out = subprocess.run([*base, "--http2", "-v", f"{h2.server.url}/upgraded"],
                             capture_output=True).stderr.decode()
        assert "101 Switching Protocols" in out


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load (nghttp2-client) is missing")
@TLS
def test_h2load(start_h2, worker, tls):
    h2 = start_h2(worker, tls=tls)
    out = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "32",
                          f"{h2.server.url}/echo"], capture_output=True, check=True,
                         timeout=60).stdout.decode()
    assert re.search(r"requests: 2000 total, 2000 started, 2000 done, 2000 succeeded", out), out
    assert "status codes: 2000 2xx" in out
    if tls:
        assert "Application protocol: h2" in out
