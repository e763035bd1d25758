"""WebSockets against real Gunicorn: both worker classes x both engines (the ``ws_server``
fixture), with the websockets client library, wsproto over a raw socket, and hand-built frames.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import time
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import wait_until

from .frames import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    FrameReader,
    close_frame,
    dechunk,
    frame,
    handshake_bytes,
    open_ws,
    read_all,
    read_head,
)

MiB = 1024 * 1024


def url(server, path: str) -> str:
    return f"ws://{server.host}:{server.port}{path}"


def tag() -> str:
    return uuid.uuid4().hex[:12]


def marker_lines(server, prefix: str) -> list[str]:
    return [ln for ln in server.marker.read_text().splitlines() if ln.startswith(prefix + " ")]


def wait_marker(server, prefix: str) -> str:
    return wait_until(lambda: marker_lines(server, prefix), message=f"marker {prefix}")[-1]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


# --------------------------------------------------------------------------- messages
def test_echo_text_and_binary(ws_server):
    async def go():
        async with connect(url(ws_server, "/echo")) as ws:
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
            await ws.send(b"\x00\x01binary")
            assert await ws.recv() == b"\x00\x01binary"
            await ws.send("")
            assert await ws.recv() == ""

    run(go())


def test_scope(ws_server):
    async def go():
        async with connect(url(ws_server, "/scope/a%20b?x=1&y=2")) as ws:
            return json.loads(await ws.recv())

    scope = run(go())
    assert scope["type"] == "websocket"
    assert scope["scheme"] == "ws"
    assert scope["http_version"] == "1.1"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["path"] == "/scope/a b"
    assert scope["raw_path"] == "/scope/a%20b"
    assert scope["query_string"] == "x=1&y=2"
    assert scope["root_path"] == ""
    assert scope["subprotocols"] == []
    assert "websocket.http.response" in scope["extensions"]
    assert not [e for e in scope["extensions"] if e.startswith("http.")]
    assert "method" not in scope
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ["127.0.0.1", ws_server.port]
    names = [n for n, _ in scope["headers"]]
    assert "sec-websocket-key" in names and "upgrade" in names


def test_one_mib_messages(ws_server):
    text = "é" * (MiB // 2)  # 1 MiB of UTF-8
    data = os.urandom(MiB)

    async def go():
        async with connect(url(ws_server, "/echo"), max_size=4 * MiB) as ws:
            await ws.send(text)
            assert await ws.recv() == text
            await ws.send(data)
            assert await ws.recv() == data

    run(go())


def test_permessage_deflate_negotiated_and_used(ws_server):
    """wsproto drives a raw socket offering client_max_window_bits=9; bytes on the wire show
    both directions were compressed."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Request
    from wsproto.extensions import PerMessageDeflate

    client = WSConnection(ConnectionType.CLIENT)
    sock = ws_server.connect()
    try:
        sock.sendall(client.send(Request(host="localhost", target="/echo",
                                         extensions=[PerMessageDeflate(client_max_window_bits=9)])))
        payload = b"compress me please " * (MiB // 19)
        received = bytearray()
        wire_in = 0
        accepted = None
        while True:
            data = sock.recv(65536)
            assert data, "server closed early"
            wire_in += len(data)
            client.receive_data(data)
            for event in client.events():
                if isinstance(event, AcceptConnection):
                    accepted = event
                    out = client.send(BytesMessage(data=payload))
                    assert len(out) < len(payload) // 20  # our side compressed
                    sock.sendall(out)
                elif isinstance(event, BytesMessage):
                    received += event.data
            if len(received) >= len(payload):
                break
        assert accepted is not None
        names = [e.name for e in accepted.extensions]
        assert names == ["permessage-deflate"]
        assert bytes(received) == payload
        assert wire_in < len(payload) // 20  # the server's echo came compressed
        sock.sendall(client.send(CloseConnection(code=1000)))
    finally:
        sock.close()


def test_deflate_offer_with_client_max_window_bits_header(ws_server):
    """The response names permessage-deflate and never a window the client did not allow."""
    sock = ws_server.connect()
    try:
        sock.sendall(handshake_bytes(
            "/echo", "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10\r\n"))
        status, headers, _ = read_head(sock)
    finally:
        sock.close()
    assert status == 101
    ext = headers["sec-websocket-extensions"]
    assert ext.startswith("permessage-deflate")
    for param in ext.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name == "client_max_window_bits":
            assert 8 <= int(value) <= 10


def test_compressed_message_inflating_past_max_size_is_1009(ws_server):
    """A few KiB of deflate that inflate to 3 MiB (over the 2 MiB limit): refused with 1009,
    without the worker inflating it all first."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Request
    from wsproto.extensions import PerMessageDeflate

    client = WSConnection(ConnectionType.CLIENT)
    sock = ws_server.connect()
    code = None
    try:
        sock.sendall(client.send(Request(host="localhost", target="/echo",
                                         extensions=[PerMessageDeflate()])))
        while code is None:
            data = sock.recv(65536)
            assert data, "closed without a close frame"
            client.receive_data(data)
            for event in client.events():
                if isinstance(event, AcceptConnection):
                    assert event.extensions, "deflate not negotiated"
                    out = client.send(BytesMessage(data=bytes(3 * MiB)))
                    assert len(out) < 64 * 1024
                    sock.sendall(out)
                elif isinstance(event, CloseConnection):
                    code = event.code
    finally:
        sock.close()
    assert code == 1009


def test_frames_sent_with_the_handshake_are_kept(ws_server):
    sock = ws_server.connect()
    try:
        sock.sendall(handshake_bytes("/echo") + frame(TEXT, b"early bird"))
        status, _, rest = read_head(sock)
        assert status == 101
        got = FrameReader(sock, rest).next_skipping_pings()
    finally:
        sock.close()
    assert got == (TEXT, True, 0, b"early bird")


def test_subprotocols_and_accept_headers(ws_server):
    async def go():
        async with connect(url(ws_server, "/subprotocol"), subprotocols=["a", "b"]) as ws:
            assert ws.subprotocol == "b"
            assert ws.response.headers["x-extra"] == "yes"
            return json.loads(await ws.recv())

    assert run(go()) == ["a", "b"]


def test_no_subprotocol_when_none_chosen(ws_server):
    async def go():
        async with connect(url(ws_server, "/subprotocol"), subprotocols=["c"]) as ws:
            assert ws.subprotocol is None
            assert "sec-websocket-protocol" not in ws.response.headers
            return json.loads(await ws.recv())

    assert run(go()) == ["c"]


# --------------------------------------------------------------------------- handshake answers
def http_answer(server, data: bytes) -> tuple[int, dict, bytes]:
    sock = server.connect()
    try:
        sock.sendall(data)
        status, headers, rest = read_head(sock)
        body = rest + read_all(sock)
    finally:
        sock.close()
    return status, headers, body


def test_denial_response(ws_server):
    status, headers, body = http_answer(ws_server, handshake_bytes("/deny"))
    assert status == 401
    assert headers["x-denied"] == "yes"
    assert headers.get("transfer-encoding") == "chunked"
    assert dechunk(body) == b"go away"
    assert "upgrade" not in headers


def test_close_before_accept_is_403(ws_server):
    status, headers, _ = http_answer(ws_server, handshake_bytes("/close-before-accept"))
    assert status == 403
    assert headers["connection"] == "close"


def test_app_failing_before_accept_is_500(ws_server):
    status, _, _ = http_answer(ws_server, handshake_bytes("/raise-before-accept"))
    assert status == 500
    wait_until(lambda: "answered 500" in ws_server.log(), message="error logged")


@pytest.mark.parametrize(
    ("key", "version", "status"),
    [
        (None, "8", 426),
        (None, "14", 426),
        ("", "13", 400),  # missing key
        ("not-base64!!", "13", 400),
        ("c2hvcnQ=", "13", 400),  # base64 of 5 bytes, not 16
        (None, None, 400),  # missing version
    ],
)
def test_bad_handshakes(ws_server, key, version, status):
    path = f"/echo/{tag()}"
    got, headers, _ = http_answer(ws_server, handshake_bytes(path, key=key, version=version))
    assert got == status
    if status == 426:
        assert headers["sec-websocket-version"] == "13"
    assert not marker_lines(ws_server, path)  # the app was never called


def test_http_request_on_websocket_app_still_served(ws_server):
    with ws_server.client() as client:
        response = client.get("/plain")
    assert response.status_code == 200 and response.text == "http /plain"


# --------------------------------------------------------------------------- close codes
def closed_with(server, path: str, client_action=None) -> ConnectionClosed:
    async def go():
        async with connect(url(server, path)) as ws:
            if client_action:
                await client_action(ws)
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            return info.value

    return run(go())


def test_app_close_code_and_reason(ws_server):
    path = f"/close-code/{tag()}"
    exc = closed_with(ws_server, path)
    assert exc.rcvd.code == 4001 and exc.rcvd.reason == "bye"
    # the app's receive after its close sees the disconnect
    assert wait_marker(ws_server, path) == f"{path} websocket.disconnect 4001"


def test_app_raises_after_accept_is_1011(ws_server):
    exc = closed_with(ws_server, "/raise")
    assert exc.rcvd.code == 1011


def test_app_returns_without_close_is_1000(ws_server):
    exc = closed_with(ws_server, "/return")
    assert exc.rcvd.code == 1000


def test_close_frame_precedes_tcp_close(ws_server):
    """Raw socket: on both 1011 and 1000 the close frame arrives, then EOF."""
    for path, expected in (("/raise", 1011), ("/return", 1000)):
        sock, rest = open_ws(ws_server, path)
        try:
            code, _, eof = FrameReader(sock, rest).until_close()
        finally:
            sock.close()
        assert (code, eof) == (expected, True)


def test_client_close_code_and_reason_reach_app(ws_server):
    path = f"/disconnect/{tag()}"

    async def go():
        async with connect(url(ws_server, path)) as ws:
            await ws.close(code=4002, reason="ciao")

    run(go())
    assert wait_marker(ws_server, path) == f'{path} 4002 "ciao"'


def test_empty_close_frame_is_1005(ws_server):
    path = f"/disconnect/{tag()}"
    sock, rest = open_ws(ws_server, path)
    try:
        sock.sendall(frame(CLOSE, b""))
        code, _, eof = FrameReader(sock, rest).until_close()
    finally:
        sock.close()
    assert eof
    assert wait_marker(ws_server, path) == f'{path} 1005 ""'


def test_dropped_connection_is_1006(ws_server):
    path = f"/disconnect/{tag()}"
    sock, _ = open_ws(ws_server, path)
    sock.close()
    assert wait_marker(ws_server, path) == f'{path} 1006 ""'


def test_send_after_client_left_raises_oserror(ws_server):
    path = f"/send-after-close/{tag()}"

    async def go():
        async with connect(url(ws_server, path)) as ws:
            await ws.close()

    run(go())
    assert wait_marker(ws_server, path) == f"{path} ClientDisconnected OSError"


# --------------------------------------------------------------------------- protocol errors
def _over_max_size_single() -> bytes:
    return frame(BINARY, b"x" * (3 * MiB))


def _over_max_size_fragmented() -> bytes:
    part = b"y" * MiB
    return frame(BINARY, part, fin=False) + frame(CONT, part, fin=False) + frame(CONT, part)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param(frame(TEXT, b"ok \xff\xfe"), 1007, id="invalid-utf8"),
        pytest.param(frame(TEXT, "é".encode()[:1], fin=False) + frame(CONT, b"\x41"), 1007,
                     id="invalid-utf8-across-fragments"),
        pytest.param(frame(TEXT, b"hello", mask=False), 1002, id="unmasked"),
        pytest.param(frame(TEXT, b"hello", rsv=2), 1002, id="reserved-bits"),
        pytest.param(frame(PING, b"p" * 126), 1002, id="oversized-control"),
        pytest.param(frame(PING, b"p", fin=False), 1002, id="fragmented-control"),
        pytest.param(frame(0x3, b"?"), 1002, id="reserved-opcode"),
        pytest.param(frame(CONT, b"orphan"), 1002, id="orphan-continuation"),
        pytest.param(close_frame(999), 1002, id="invalid-close-code"),
        pytest.param(_over_max_size_single(), 1009, id="over-max-size"),
        pytest.param(frame(TEXT, ("é" * (1100 * 1024)).encode()), 1009,
                     id="over-max-size-in-bytes-not-characters"),
        pytest.param(_over_max_size_fragmented(), 1009, id="over-max-size-fragmented"),
    ],
)
def test_protocol_errors_close_with_code(ws_server, data, code):
    path = f"/disconnect/{tag()}"
    sock, rest = open_ws(ws_server, path)
    try:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may stop reading once it has seen enough
        got, _, eof = FrameReader(sock, rest).until_close()
    finally:
        sock.close()
    assert got == code
    assert eof, "the server must close the TCP connection after failing the WebSocket"
    assert wait_marker(ws_server, path).split()[1] == str(code)


def test_fragmented_message_with_pings_between(ws_server):
    sock, rest = open_ws(ws_server, "/echo")
    try:
        word = "héllo wörld".encode()
        sock.sendall(frame(TEXT, word[:2], fin=False) + frame(PING, b"p1")
                     + frame(CONT, word[2:7], fin=False) + frame(PING, b"p2")
                     + frame(CONT, word[7:]))
        reader = FrameReader(sock, rest)
        got = [reader.next() for _ in range(3)]
        sock.sendall(close_frame(1000))
        code, _, eof = reader.until_close()
    finally:
        sock.close()
    assert got[0] == (PONG, True, 0, b"p1")
    assert got[1] == (PONG, True, 0, b"p2")
    assert got[2] == (TEXT, True, 0, word)
    assert code == 1000 and eof


def test_ping_pong(ws_server):
    async def go():
        async with connect(url(ws_server, "/echo")) as ws:
            waiter = await ws.ping(b"are you there")
            latency = await waiter
            assert latency >= 0
            await ws.send("still open")
            assert await ws.recv() == "still open"

    run(go())


# --------------------------------------------------------------------------- load and memory
def test_500_concurrent_connections(ws_server):
    path = f"/echo/{tag()}"

    async def one(i: int) -> None:
        async with connect(url(ws_server, path), compression=None, open_timeout=60) as ws:
            for j in range(3):
                await ws.send(f"{i}-{j}")
                assert await ws.recv() == f"{i}-{j}"

    async def go():
        await asyncio.gather(*(one(i) for i in range(500)))

    run(go())
    # every session saw its client's normal close
    lines = wait_until(lambda: len(marker_lines(ws_server, path)) == 500 and marker_lines(ws_server, path),
                       message="500 disconnects")
    assert set(lines) == {f"{path} 1000"}


def test_full_queue_pauses_reading(ws_server):
    """The app stops receiving: past ws_max_queue messages the worker stops reading the socket,
    so the client's sends block instead of the worker buffering without bound."""
    (pid,) = ws_server.worker_pids()
    path = f"/slow-reader/{tag()}"
    sock, rest = open_ws(ws_server, path)
    before = rss_kib(pid)
    sent = 0
    try:
        sock.sendall(frame(TEXT, b"first"))
        wait_marker(ws_server, path)
        message = frame(BINARY, b"z" * 65536)
        sock.settimeout(2)  # a deadline for noticing the block, not a synchronisation
        with pytest.raises(TimeoutError):
            while sent < 256 * MiB:
                sock.sendall(message)
                sent += len(message)
        grown = rss_kib(pid) - before
    finally:
        sock.close()
    assert sent < 64 * MiB, f"the worker read {sent // MiB} MiB the app did not ask for"
    assert grown < 64 * 1024


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_non_reading_client_keeps_worker_memory_bounded(ws_server):
    """The app sends 200 MiB to a client that does not read: its send must wait on the
    transport, so the worker's RSS stays flat and the app stalls; then the client reads it all."""
    (pid,) = ws_server.worker_pids()
    path = f"/flood/{tag()}"
    before = rss_kib(pid)
    sock = ws_server.connect()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
    try:
        sock.sendall(handshake_bytes(path))
        status, _, rest = read_head(sock)
        assert status == 101

        def progress() -> int:
            lines = marker_lines(ws_server, path)
            return int(lines[-1].split()[1]) if lines else 0

        wait_until(lambda: progress() >= 2, message="the app started sending")
        # Observe the stalled app for a while: without backpressure it would have buffered
        # everything (200 MiB) within this window.
        peak = 0
        seen = []
        for _ in range(40):
            peak = max(peak, rss_kib(pid))
            seen.append(progress())
            time.sleep(0.05)  # an observation window, not synchronisation
        print(f"stalled at {seen[-1]} MiB, RSS +{(peak - before) // 1024} MiB")
        assert seen[-1] < 200, "the app was never held back"
        assert peak - before < 64 * 1024, f"worker RSS grew by {(peak - before) // 1024} MiB"
        # now read everything: 200 binary frames of 1 MiB, then the close frame
        reader = FrameReader(sock, rest)
        total = 0
        while True:
            got = reader.next()
            assert got is not None, f"EOF after {total} bytes"
            if got[0] == CLOSE:
                assert struct.unpack("!H", got[3][:2])[0] == 1000
                break
            assert got[0] == BINARY
            total += len(got[3])
            peak = max(peak, rss_kib(pid)) if total % (32 * MiB) == 0 else peak
        sock.sendall(close_frame(1000))
    finally:
        sock.close()
    assert total == 200 * MiB
    assert progress() == 200
    assert peak - before < 64 * 1024
