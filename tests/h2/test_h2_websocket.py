"""WebSockets over HTTP/2 (RFC 8441): the extended CONNECT, and the one WebSocket session over
the h2 stream -- echo (text, binary, messages larger than the flow-control windows), ping,
close codes both ways, permessage-deflate, refusals and the denial response. Both workers,
both WebSocket engines, a real h2 client (h2 + wsproto's frames)."""

from __future__ import annotations

import json

import pytest
from wsproto.frame_protocol import Opcode

from tests.conftest import WORKERS, WS_ENGINES, wait_until
from tests.h2.wsclient import H2WebSocket

H2C = {"http_protocols": "h2,h1", "http2_cleartext": "prior-knowledge"}
pytestmark = [pytest.mark.parametrize("worker", WORKERS),
              pytest.mark.parametrize("engine", WS_ENGINES)]


@pytest.fixture
def server(start_ws_server, worker, engine):
    return start_ws_server(worker, engine, **H2C)


def marks(server) -> list[str]:
    return server.marker.read_text().splitlines()


def test_echo_ping_and_close(server):
    ws = H2WebSocket(server, "/echo/h2")
    assert ws.handshake() == 200
    assert ws.response.header(b"sec-websocket-accept") is None  # none over HTTP/2
    ws.send("hello")
    assert ws.next_frame() == (Opcode.TEXT, "hello")
    ws.send(b"\x00\x01binary")
    assert ws.next_frame() == (Opcode.BINARY, b"\x00\x01binary")
    big = bytes(range(256)) * 1024  # 256 KiB: several windows each way
    ws.send(big)
    assert ws.next_frame() == (Opcode.BINARY, big)
    ws.ping(b"are you there")
    assert ws.next_frame() == (Opcode.PONG, b"are you there")
    ws.close(1000, "done")
    opcode, payload = ws.next_frame()
    assert opcode is Opcode.CLOSE and payload[0] == 1000
    ws.send_raw(b"", end=True)
    assert ws.ended()  # END_STREAM, not a reset
    wait_until(lambda: "/echo/h2 1000" in marks(server), message="the app's disconnect")
    # the connection serves on: another WebSocket on a new stream of the same connection
    assert ws.client.response(ws.client.request("/plain")).status == 200


def test_scope_over_h2(server):
    ws = H2WebSocket(server, "/scope?x=1")
    assert ws.handshake() == 200
    opcode, text = ws.next_frame()
    scope = json.loads(text)
    assert scope["type"] == "websocket" and scope["http_version"] == "2"
    assert scope["scheme"] == "ws" and scope["path"] == "/scope"
    assert scope["query_string"] == "x=1"
    assert ["host", "localhost"] in scope["headers"]
    assert not any(name.startswith(":") for name, _ in scope["headers"])


def test_permessage_deflate(server):
    ws = H2WebSocket(server, "/echo/deflate", deflate=True)
    assert ws.handshake() == 200
    assert ws.response.header(b"sec-websocket-extensions").startswith(b"permessage-deflate")
    text = "compressible " * 5000
    ws.send(text)
    assert ws.next_frame() == (Opcode.TEXT, text)
    assert len(ws.response.data) < len(text) // 10  # it came back compressed


def test_app_close_code(server):
    ws = H2WebSocket(server, "/close-code/h2")
    assert ws.handshake() == 200
    opcode, payload = ws.next_frame()
    assert opcode is Opcode.CLOSE and tuple(payload) == (4001, "bye")
    ws.close(4001, "bye")
    assert ws.ended()
    wait_until(lambda: "/close-code/h2 websocket.disconnect 4001" in marks(server),
               message="the app's disconnect")


def test_client_reset_is_1006(server):
    ws = H2WebSocket(server, "/disconnect/reset")
    assert ws.handshake() == 200
    ws.client.reset(ws.sid)
    wait_until(lambda: '/disconnect/reset 1006 ""' in marks(server), message="1006")


def test_denial_response(server):
    ws = H2WebSocket(server, "/deny")
    assert ws.handshake() == 401
    ws.client.response(ws.sid)
    assert ws.response.header(b"x-denied") == b"yes"
    assert bytes(ws.response.data) == b"go away"


def test_refusals(server):
    """The app's refusals (403, 500) and bad handshakes (426 with the version we speak, 400
    without one, 501 for a :protocol other than websocket) are responses on their stream;
    the connection serves on."""
    cases = [({}, "/close-before-accept", 403), ({}, "/raise-before-accept", 500),
             ({"version": b"8"}, "/echo/bad", 426), ({"version": b""}, "/echo/bad", 400),
             ({"protocol": b"chat"}, "/echo/bad", 501)]
    for kwargs, path, status in cases:
        ws = H2WebSocket(server, path, **kwargs)
        assert ws.handshake() == status, path
        if status == 426:
            assert ws.response.header(b"sec-websocket-version") == b"13"
        assert ws.client.response(ws.client.request("/plain")).status == 200
