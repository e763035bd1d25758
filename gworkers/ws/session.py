"""The ONE ASGI WebSocket session, whichever engine frames the bytes and whichever protocol
carries them.

It runs over a byte channel and answers the opening handshake through a responder, both given
by the protocol that carried the request (``channel.py``); it never writes HTTP. It validates
the handshake through the responder (400/426 before the app is called), runs the app, has the
responder accept (or send the app's denial response, or 403), assembles messages from the
engine's fragments, enforces ``ws_max_size`` and ``ws_max_queue``, pings the peer once a second
if asked, and performs the closing handshake: a close frame always precedes the channel's close.

The engines (``websockets_impl``, ``wsproto_impl``) only frame: they push ``on_data``,
``on_pong``, ``on_close`` and ``on_failed`` into the session (or ``deliver``, a whole message
whose size the engine already checked) and return frame bytes for ``send_text``,
``send_bytes``, ``ping`` and ``close``. With no extension negotiated, ``send`` builds data
frames itself (``framing``). Per echoed message the hot path is: ``data_received`` -> engine ->
``deliver`` resolves the future the app's ``receive()`` awaits with the message itself (no queue
when the app is waiting) -> one Task step -> ``send`` writes one frame.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections import deque
from typing import Any

from ..errors import AppProtocolError, BadRequest, ClientDisconnected, ProtocolError
from ..flow import WriteFlow, wake
from .channel import ByteChannel, HandshakeResponder
from .framing import BINARY, SMALL_TEXT, TEXT, data_frame
from .handshake import VERSION_FIELD, Handshake, websocket_scope
from .opening import CLOSED, CONNECTING, OPEN, RESPONDING, OpeningHandshake

# How long the peer gets to answer our close frame (or to take our last bytes) before the channel
# is aborted.
CLOSE_TIMEOUT = 10.0

CLOSING = "closing"

_CONNECT = {"type": "websocket.connect"}
_failure_logged = False  # the first app failure before accept is logged with its traceback


class WebSocketSession(OpeningHandshake, WriteFlow, asyncio.Protocol):
    """One WebSocket: the app's ``receive``/``send`` over a ``ByteChannel``.

    The channel's owner pushes ``data_received``, ``eof_received``, ``connection_lost`` and the
    write flow calls into it (an asyncio transport does so itself, after ``set_protocol``).
    """

    def __init__(self, context: Any, http_scope: dict, engine_class: type | None,
                 responder: HandshakeResponder, draining: bool = False) -> None:
        self.context = context
        self.config = config = context.config
        self.loop = context.loop
        self.app = context.app
        self.channel: ByteChannel = None  # type: ignore[assignment]  # given by start()
        self.responder = responder
        # set when the session is a connection of its own in the server's registry (HTTP/1.1
        # after an upgrade); a session on an HTTP/2 stream is reached through its connection
        self.registry: Any = None
        self.refusal: ProtocolError | None = None
        self.engine: Any = None
        self.handshake: Handshake | None = None
        if engine_class is None:
            self.refusal = BadRequest("WebSocket support is disabled on this server")
        else:
            try:
                self.handshake = handshake = responder.check(http_scope)
                self.engine = engine_class(self, config, handshake.offers)
            except ProtocolError as exc:
                self.refusal = exc
        self.scope = websocket_scope(http_scope, self.handshake)
        self.state = CONNECTING
        self.connect_sent = False
        self.queue: deque[dict] = deque()
        self.max_queue = max(config.ws_max_queue, 1)
        self.max_size = config.ws_max_size or 0
        self.parts: list = []
        self.size = 0
        self.waiter: asyncio.Future | None = None
        self.drain_waiter: asyncio.Future | None = None
        self.disconnect: dict | None = None
        self.write_paused = False
        self.read_paused = False
        self.lost = False
        self.closing = False  # the channel's close was asked for; nothing more is written or read
        self.deadline = 0.0  # abort the channel past this (CLOSING, or CLOSED and unflushed)
        self.early = b""  # bytes received before the app accepted
        self.shutting_down = draining  # close with 1012 as soon as the app accepts
        self.next_ping = 0.0
        self.ping_deadline = 0.0
        self.ping_payload = b""
        self.plain = False  # no extension negotiated: send() frames text itself
        self.task: asyncio.Task | None = None

    # ------------------------------------------------------------------ taking over
    def start(self, channel: ByteChannel, rest: bytes) -> None:
        """The channel is ours (reading paused), ``rest`` what arrived on it after the opening
        request: run the app, or answer a refused handshake and close."""
        self.channel = channel
        refusal = self.refusal
        if refusal is not None:
            self.context.log.debug("WebSocket handshake refused: %s", refusal)
            self.refuse(refusal.status, str(refusal),
                        (VERSION_FIELD,) if refusal.status == 426 else ())
            return
        self.early = rest
        self.read_paused = True
        if self.config.reset_contextvars:
            self.task = self.loop.create_task(self.run_asgi(), context=contextvars.Context())
        else:
            self.task = self.loop.create_task(self.run_asgi())

    # ------------------------------------------------------------------ from the channel
    def data_received(self, data: bytes) -> None:
        state = self.state
        if state is OPEN or state is CLOSING:
            self.engine.feed(data)
        elif state is CONNECTING and len(self.early) < 65536:
            self.early += data  # in flight when reading paused: kept for after the accept

    def eof_received(self) -> bool | None:
        return False  # the peer left without a close frame: 1006, via connection_lost

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.closing = True
        self.state = CLOSED
        if self.disconnect is None:
            self.disconnect = {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        self._wake()
        self.release_drain()
        if self.registry is not None:
            self.registry.connection_lost(self)

    # ------------------------------------------------------------------ from the engine
    def on_data(self, data: Any, text: bool, fin: bool) -> None:
        if self.state is not OPEN:
            return  # we are closing: the app asked for no more
        parts = self.parts
        max_size = self.max_size
        if parts or not fin:
            parts.append(data)
            # ws_max_size counts bytes; a str of n characters holds up to 4n bytes of UTF-8
            self.size += len(data) if not text or data.isascii() else len(data.encode())
            if max_size and self.size > max_size:
                self.parts = []
                self.engine.fail(1009, "message too big")
                return
            if not fin:
                return
            data = "".join(parts) if text else b"".join(parts)
            self.parts = []
            self.size = 0
        elif max_size and len(data) * (4 if text else 1) > max_size and (
            len(data) > max_size or not data.isascii() and len(data.encode()) > max_size
        ):
            self.engine.fail(1009, "message too big")
            return
        if text:
            message = {"type": "websocket.receive", "text": data}
        else:
            if type(data) is not bytes:
                data = bytes(data)
            message = {"type": "websocket.receive", "bytes": data}
        self.deliver(message)

    def deliver(self, message: dict) -> None:
        """A whole ``websocket.receive`` message, for the app."""
        waiter = self.waiter
        if waiter is not None:
            # receive() is waiting, so the queue is empty: the message goes straight to it
            self.waiter = None
            if not waiter.done():
                waiter.set_result(message)
                return
        self.enqueue(message)

    def enqueue(self, message: dict) -> None:
        queue = self.queue
        queue.append(message)
        if len(queue) >= self.max_queue and not self.read_paused:
            self.read_paused = True
            self.channel.pause_reading()

    def on_pong(self, payload: bytes) -> None:
        if self.ping_deadline and payload == self.ping_payload:
            self.ping_deadline = 0.0
            self.next_ping = self.loop.time() + (self.config.ws_ping_interval or 0.0)

    def on_close(self, code: int, reason: str) -> None:
        """The peer's close frame: as a reply to ours, or its own (already echoed)."""
        self.set_disconnect(code, reason)
        self.state = CLOSED
        self.close_channel()

    def on_failed(self, code: int, reason: str) -> None:
        """A protocol error: the engine sent the close frame naming it; close the channel."""
        if self.state is OPEN:
            self.context.log.debug("WebSocket protocol error (%s): %s", code, reason)
        self.set_disconnect(code, reason)
        self.state = CLOSED
        self.close_channel()

    # ------------------------------------------------------------------ ASGI receive
    async def receive(self) -> dict:
        if not self.connect_sent:
            self.connect_sent = True
            return _CONNECT
        queue = self.queue
        while True:
            if queue:
                message = queue.popleft()
                if self.read_paused and len(queue) < self.max_queue and self.state is OPEN:
                    self.read_paused = False
                    self.channel.resume_reading()
                return message
            if self.disconnect is not None:
                return self.disconnect
            waiter = self.waiter = self.loop.create_future()
            try:
                message = await waiter  # a message from on_data, or None from _wake
            except asyncio.CancelledError:
                # cancelled after on_data handed a message over: keep it for the next receive()
                if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                    queue.appendleft(waiter.result())
                raise
            if message is not None:
                return message

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        wake(waiter)

    def set_disconnect(self, code: int, reason: str) -> None:
        if self.disconnect is None:
            self.disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
            self._wake()

    # ------------------------------------------------------------------ ASGI send
    async def send(self, message: dict) -> None:
        kind = message["type"]
        if kind == "websocket.send":  # the hot path: one frame
            state = self.state
            if state is not OPEN:
                if state is CONNECTING or state is RESPONDING:
                    raise AppProtocolError("websocket.send before websocket.accept")
                raise ClientDisconnected("the WebSocket is closed")
            text = message.get("text")
            if text is not None:
                if self.plain:  # no extension: the frame is a header and the UTF-8
                    data = text.encode()
                    n = len(data)
                    data = SMALL_TEXT[n] + data if n < 126 else data_frame(TEXT, data)
                else:
                    data = self.engine.send_text(text)
            else:
                payload = message.get("bytes")
                if payload is None:
                    raise AppProtocolError("websocket.send without text or bytes")
                data = data_frame(BINARY, payload) if self.plain else self.engine.send_bytes(payload)
            self.channel.write(data)
            if self.write_paused:
                await self.drain()
        elif kind == "websocket.accept":
            self.accept(message)
        elif kind == "websocket.close":
            self.app_close(message)
        elif kind == "websocket.http.response.start":
            self.deny_start(message)
        elif kind == "websocket.http.response.body":
            if self.deny_body(message) and self.write_paused:
                await self.drain()
        else:
            raise AppProtocolError(f"unexpected ASGI message type {kind!r}")

    async def drain(self) -> None:
        if self.write_paused and not self.lost:
            waiter = self.drain_waiter
            if waiter is None:
                waiter = self.drain_waiter = self.loop.create_future()
            await waiter
            if self.lost:
                raise ClientDisconnected("the client went away")

    # ------------------------------------------------------------------ running the app
    async def run_asgi(self) -> None:
        try:
            await self.app(self.scope, self.receive, self.send)
        except BaseException as exc:
            self.app_failed(exc)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
        else:
            self.app_returned()

    def app_failed(self, exc: BaseException) -> None:
        global _failure_logged
        log = self.context.log
        state = self.state
        if state is CONNECTING:
            # Often an app that serves HTTP only: one traceback, then one line each time.
            if _failure_logged:
                log.error("WebSocket app failed before accepting: %r; answered 500", exc)
            else:
                _failure_logged = True
                log.error("Exception in ASGI application (WebSocket, before accept); "
                          "answered 500", exc_info=exc)
            self.refuse(500)
            self.set_disconnect(1006, "")
            return
        if isinstance(exc, ClientDisconnected | asyncio.CancelledError) and state is CLOSED:
            return  # the app noticed the peer left: nothing to report
        log.error("Exception in ASGI application (WebSocket)", exc_info=exc)
        if state is OPEN:
            self.start_close(1011, "")
        elif state is RESPONDING:
            self.state = CLOSED
            self.close_channel()

    def app_returned(self) -> None:
        state = self.state
        if state is OPEN:
            self.start_close(1000, "")
        elif state is CONNECTING:
            self.context.log.error("WebSocket app returned without accepting or closing; "
                                  "answered 500")
            self.refuse(500)
        elif state is RESPONDING:
            self.state = CLOSED
            self.close_channel()

    # ------------------------------------------------------------------ closing
    def start_close(self, code: int, reason: str) -> None:
        """Our close frame; the channel closes when the peer answers or CLOSE_TIMEOUT passes."""
        self.write(self.engine.close(code, reason))
        self.state = CLOSING
        self.parts = []
        self.deadline = self.loop.time() + CLOSE_TIMEOUT
        if self.read_paused and not self.lost:
            # the peer's answer must be read even if the app stopped receiving
            self.read_paused = False
            self.channel.resume_reading()

    def close_channel(self) -> None:
        if not self.closing:
            self.closing = True
            self.deadline = self.loop.time() + CLOSE_TIMEOUT
            self.channel.close()

    def write(self, data: bytes) -> None:
        if data and not self.closing:
            self.channel.write(data)

    def check_timeouts(self, now: float) -> None:
        """Called once a second (the server's tick, or the connection carrying the channel):
        keep-alive pings and close deadlines."""
        state = self.state
        if state is OPEN:
            interval = self.config.ws_ping_interval
            if not interval:
                return
            if self.ping_deadline:
                if now >= self.ping_deadline and not self.read_paused:
                    self.engine.fail(1011, "keepalive ping timeout")
            elif now >= self.next_ping:
                self.ping_payload = os.urandom(4)
                self.write(self.engine.ping(self.ping_payload))
                timeout = self.config.ws_ping_timeout
                self.ping_deadline = now + timeout if timeout else 0.0
                self.next_ping = now + interval
        elif (state is CLOSING or self.closing) and not self.lost and now >= self.deadline > 0:
            # the peer never answered our close, or never read our last bytes
            self.channel.abort()

    def shutdown(self) -> None:
        """The worker drains: open WebSockets close with 1012 (service restart)."""
        self.shutting_down = True
        if self.state is OPEN:
            self.set_disconnect(1012, "")
            self.start_close(1012, "")
