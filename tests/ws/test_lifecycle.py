"""WebSocket behaviour that needs its own server: keep-alive pings, shutdown (1012), TLS, the
``ws = none`` refusal and an app that serves HTTP only. Both workers x both engines."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import wait_until

from .frames import (
    PING,
    PONG,
    TEXT,
    FrameReader,
    frame,
    handshake_bytes,
    open_ws,
    read_all,
    read_head,
)


def marker_lines(server, prefix: str) -> list[str]:
    return [ln for ln in server.marker.read_text().splitlines() if ln.startswith(prefix + " ")]


def test_keepalive_ping_and_silent_peer_closed(start_ws_server, worker, ws_engine):
    server = start_ws_server(worker, ws_engine, ws_ping_interval=1, ws_ping_timeout=1)
    sock, rest = open_ws(server, "/echo")
    try:
        reader = FrameReader(sock, rest)
        first = reader.next()
        assert first is not None and first[0] == PING
        sock.sendall(frame(PONG, first[3]))  # answered: the connection stays open
        second = reader.next()
        assert second is not None and second[0] == PING
        sock.sendall(frame(TEXT, b"alive"))
        echoed = reader.next_skipping_pings()
        assert echoed is not None and echoed[3] == b"alive"
        # now stop answering pings: the server gives up with 1011 and closes the TCP
        code, _, eof = reader.until_close(reply=False)
    finally:
        sock.close()
    assert code == 1011 and eof


def test_shutdown_closes_with_1012(start_ws_server, worker, ws_engine):
    server = start_ws_server(worker, ws_engine, args=["--graceful-timeout", "60"])
    path = f"/shutdown/{uuid.uuid4().hex[:12]}"

    async def go():
        async with connect(f"ws://{server.host}:{server.port}{path}") as ws:
            wait_until(lambda: marker_lines(server, path), message="accepted")
            server.signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            return info.value

    exc = asyncio.run(asyncio.wait_for(go(), 30))
    assert exc.rcvd is not None and exc.rcvd.code == 1012
    lines = wait_until(lambda: len(marker_lines(server, path)) == 2 and marker_lines(server, path))
    assert lines[-1] == f"{path} 1012"
    # draining is not held for the graceful timeout (60 s) by the closed WebSocket
    assert server.wait(timeout=30) == 0


def test_wss_over_tls(start_ws_server, worker, ws_engine, tls_files):
    server = start_ws_server(worker, ws_engine, tls=tls_files)
    context = ssl.create_default_context(cafile=tls_files["ca"])

    async def go():
        uri = f"wss://{server.host}:{server.port}/scope"
        async with connect(uri, ssl=context, server_hostname="localhost") as ws:
            scope = json.loads(await ws.recv())
            await ws.send("secure" * 10000)
            assert await ws.recv() == "secure" * 10000
            return scope

    scope = asyncio.run(asyncio.wait_for(go(), 30))
    assert scope["scheme"] == "wss"
    assert "tls" in scope["extensions"] and "websocket.http.response" in scope["extensions"]


def test_ws_none_refuses_cleanly(start_ws_server, worker):
    server = start_ws_server(worker, "none")
    sock = server.connect()
    try:
        sock.sendall(handshake_bytes("/echo"))
        status, headers, rest = read_head(sock)
        rest += read_all(sock)
    finally:
        sock.close()
    assert status == 400
    assert headers["connection"] == "close"
    with server.client() as client:
        assert client.get("/plain").text == "http /plain"
    assert "Traceback" not in server.log()


def test_app_without_websocket_support(start_server, worker):
    """An HTTP-only app (it raises for other scopes): 500, and one traceback, not one each."""
    server = start_server(app="tests.apps:no_lifespan", worker=worker)
    for _ in range(3):
        sock = server.connect()
        try:
            sock.sendall(handshake_bytes("/"))
            status, _, _ = read_head(sock)
        finally:
            sock.close()
        assert status == 500
    wait_until(lambda: server.log().count("answered 500") == 3, message="three refusals logged")
    assert server.log().count("Traceback") == 1


def test_default_worker_classes_serve_websockets(start_server, worker):
    """No CONFIG_KWARGS: Worker picks websockets (auto), H11Worker wsproto."""
    from gworkers import H11Worker, Worker

    assert Worker.DEFAULTS["ws"] == "auto" and H11Worker.DEFAULTS["ws"] == "wsproto"
    server = start_server(app="tests.ws_apps:app", worker=worker)

    async def go():
        async with connect(f"ws://{server.host}:{server.port}/echo") as ws:
            await ws.send("default engine")
            return await ws.recv()

    assert asyncio.run(asyncio.wait_for(go(), 30)) == "default engine"
