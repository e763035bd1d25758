"""Sans-IO checks of the handshake rules and of the two engine adapters side by side (in
addition to the real-server tests, not instead of them)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from gworkers.config import Config
from gworkers.errors import BadRequest
from gworkers.http.fields import DefaultHeaders
from gworkers.http.h1.upgrade import H1Handshake
from gworkers.ws import choose_engine
from gworkers.ws.framing import valid_close_code
from gworkers.ws.handshake import UpgradeRequired, accept_token, read_handshake
from gworkers.ws.session import OPEN, WebSocketSession
from gworkers.ws.websockets_impl import WebsocketsEngine
from gworkers.ws.wsproto_impl import WsprotoEngine

from .frames import BINARY, CLOSE, CONT, PING, TEXT, close_frame, frame

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def scope(headers, method="GET", version="1.1"):
    base = [(b"host", b"x"), (b"upgrade", b"websocket"), (b"connection", b"Upgrade")]
    return {"method": method, "http_version": version, "headers": base + headers}


def test_accept_token_rfc6455_example():
    # RFC 6455 section 1.3
    assert accept_token(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def check_handshake(scope):
    """The HTTP/1.1 handshake's rules: the request form, then the shared ones."""
    return H1Handshake(None, DefaultHeaders(False, False, ())).check(scope)


def test_check_handshake_ok():
    key, protocols, offers = check_handshake(scope([
        (b"sec-websocket-key", KEY), (b"sec-websocket-version", b"13"),
        (b"sec-websocket-protocol", b"chat, superchat"),
        (b"sec-websocket-extensions", b"permessage-deflate"),
    ]))
    assert key == KEY and protocols == ["chat", "superchat"] and offers == [b"permessage-deflate"]


@pytest.mark.parametrize(
    ("headers", "method", "version", "error"),
    [
        ([(b"sec-websocket-key", KEY), (b"sec-websocket-version", b"8")], "GET", "1.1", UpgradeRequired),
        ([(b"sec-websocket-key", KEY)], "GET", "1.1", BadRequest),
        ([(b"sec-websocket-version", b"13")], "GET", "1.1", BadRequest),
        ([(b"sec-websocket-key", b"abc"), (b"sec-websocket-version", b"13")], "GET", "1.1", BadRequest),
        ([(b"sec-websocket-key", KEY), (b"sec-websocket-key", KEY),
          (b"sec-websocket-version", b"13")], "GET", "1.1", BadRequest),
        ([(b"sec-websocket-key", KEY), (b"sec-websocket-version", b"13")], "POST", "1.1", BadRequest),
        ([(b"sec-websocket-key", KEY), (b"sec-websocket-version", b"13")], "GET", "1.0", BadRequest),
    ],
)
def test_check_handshake_refusals(headers, method, version, error):
    with pytest.raises(error) as info:
        check_handshake(scope(headers, method, version))
    assert info.value.status == (426 if error is UpgradeRequired else 400)


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1011, 1012, 1014, 3000, 4999])
def test_valid_close_codes(code):
    assert valid_close_code(code)


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2000, 5000, "1000", None])
def test_invalid_close_codes(code):
    assert not valid_close_code(code)


def test_choose_engine():
    assert choose_engine("auto")[0] is WebsocketsEngine
    assert choose_engine("websockets")[0] is WebsocketsEngine
    assert choose_engine("wsproto")[0] is WsprotoEngine
    assert choose_engine("none")[0] is None


class Recorder:
    """Stands in for the session: records the engine's push calls and writes."""

    state = OPEN

    def __init__(self):
        self.calls = []
        self.out = b""
        self.closing = False

    def on_data(self, data, text, fin):
        self.calls.append(("data", data, text, fin))

    def deliver(self, message):
        # a whole message pushed past on_data: recorded as its one final fragment
        text = message.get("text")
        data, is_text = (text, True) if text is not None else (message["bytes"], False)
        self.calls.append(("data", data, is_text, True))

    def on_pong(self, payload):
        self.calls.append(("pong", payload))

    def on_close(self, code, reason):
        self.calls.append(("close", code, reason))
        self.closing = True

    def on_failed(self, code, reason):
        self.calls.append(("failed", code))
        self.closing = True

    def write(self, data):
        self.out += data


@pytest.fixture(params=[WebsocketsEngine, WsprotoEngine], ids=["websockets", "wsproto"])
def engine(request):
    session = Recorder()
    eng = request.param(session, Config(), [])
    eng.open()
    return eng, session


def joined(calls):
    text = "".join(c[1] for c in calls if c[0] == "data")
    return text, calls[-1][3] if calls and calls[-1][0] == "data" else None


def test_engines_fragmented_text_with_ping(engine):
    eng, session = engine
    word = "héllo".encode()
    eng.feed(frame(TEXT, word[:2], fin=False) + frame(PING, b"p") + frame(CONT, word[2:]))
    assert joined(session.calls) == ("héllo", True)
    assert session.out == b"\x8a\x01p"  # the pong, unmasked


def test_engines_whole_messages(engine):
    eng, session = engine
    eng.feed(frame(TEXT, "né".encode()) + frame(BINARY, b"\x00\xff"))
    assert session.calls == [("data", "né", True, True), ("data", b"\x00\xff", False, True)]


def test_engines_peer_close_is_echoed(engine):
    eng, session = engine
    eng.feed(close_frame(4000, b"bye"))
    assert session.calls == [("close", 4000, "bye")]
    assert session.out[:1] == bytes([0x80 | CLOSE]) and session.out[2:4] == b"\x0f\xa0"


@pytest.mark.parametrize(
    ("data", "code"),
    [(frame(TEXT, b"\xff"), 1007), (frame(TEXT, b"x", mask=False), 1002),
     (frame(TEXT, b"x", rsv=4), 1002), (frame(PING, b"p" * 126), 1002)],
    ids=["invalid-utf8", "unmasked", "reserved-bits", "oversized-control"],
)
def test_engines_agree_on_failure_codes(engine, data, code):
    eng, session = engine
    eng.feed(data)
    assert ("failed", code) in session.calls
    assert session.out[:1] == bytes([0x80 | CLOSE])
    assert int.from_bytes(session.out[2:4], "big") == code


def test_engines_outgoing_frames(engine):
    eng, _ = engine
    assert eng.send_text("hi") == b"\x81\x02hi"
    assert eng.send_bytes(b"\x00") == b"\x82\x01\x00"
    assert eng.ping(b"abcd") == b"\x89\x04abcd"
    assert eng.close(1000, "") == b"\x88\x02\x03\xe8"


class Transport(asyncio.Transport):
    """Keeps what the session writes; the session is fed by hand."""

    def __init__(self):
        super().__init__()
        self.out = b""
        self.closed = False

    def write(self, data):
        self.out += data

    def close(self):
        self.closed = True

    def is_closing(self):
        return self.closed

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


HANDSHAKE = {"type": "http", "method": "GET", "http_version": "1.1", "scheme": "http", "path": "/",
             "headers": [(b"sec-websocket-key", KEY), (b"sec-websocket-version", b"13")]}


@pytest.mark.parametrize("engine_name", ["websockets", "wsproto"])
def test_session_cancelled_receive_keeps_the_handed_over_message(engine_name):
    """on_data hands a message straight to the waiting receive(); if that receive is cancelled
    before it runs (a wait_for timing out at that moment), the next receive() still gets it."""
    from gworkers.server import ServerState

    got = []
    sessions = []

    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        session = sessions[0]
        first = asyncio.ensure_future(receive())
        for _ in range(100):  # run the loop until the receive() waits for a message
            if session.waiter is not None:
                break
            await asyncio.sleep(0)
        session.data_received(frame(TEXT, b"one") + frame(TEXT, b"two"))
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            got.append(await first)
        got.append(await receive())
        got.append(await receive())

    async def main():
        loop = asyncio.get_running_loop()
        state = ServerState(Config(ws=engine_name), app, loop)
        responder = H1Handshake(transport, state.defaults)
        session = WebSocketSession(state.context, HANDSHAKE, choose_engine(engine_name)[0], responder)
        sessions.append(session)
        session.start(transport, b"")
        await asyncio.wait_for(session.task, 10)

    transport = Transport()
    asyncio.run(main())
    assert got == [{"type": "websocket.receive", "text": "one"}, {"type": "websocket.receive", "text": "two"}]
    assert transport.out.startswith(b"HTTP/1.1 101 ")


def test_read_handshake_without_key():
    """The shared rules alone (RFC 8441 has no Sec-WebSocket-Key): a key is optional there,
    while the HTTP/1.1 responder requires it."""
    headers = scope([(b"sec-websocket-version", b"13"), (b"sec-websocket-protocol", b"chat")])
    assert read_handshake(headers) == (None, ["chat"], [])
    with pytest.raises(BadRequest):
        check_handshake(headers)
