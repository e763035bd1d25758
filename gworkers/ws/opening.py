"""The ASGI side of the WebSocket opening handshake (a mixin of ``WebSocketSession``).

Until the app accepts, the session is CONNECTING; these are its ways out: ``websocket.accept``
(OPEN), ``websocket.close`` before accept (403, ASGI), the ``websocket.http.response`` denial
(RESPONDING, then CLOSED) and the server's own refusals (CLOSED). Each checks what the app sent
and has the protocol's ``HandshakeResponder`` (``channel.py``) write the answer.
"""

from __future__ import annotations

from typing import Any

from ..errors import AppProtocolError, ClientDisconnected
from ..http.fields import check_header
from .framing import valid_close_code
from .handshake import accept_fields

CONNECTING, OPEN, CLOSED, RESPONDING = "connecting", "open", "closed", "responding"


class OpeningHandshake:
    """``accept``, ``app_close``, ``deny_start``, ``deny_body`` and ``refuse`` (the session
    provides ``set_disconnect``, ``start_close`` and ``close_channel``)."""

    # (set by WebSocketSession)
    channel: Any
    closing: bool
    config: Any
    early: bytes
    engine: Any
    handshake: Any
    lost: bool
    loop: Any
    next_ping: float
    plain: bool
    read_paused: bool
    responder: Any
    shutting_down: bool
    state: str

    def accept(self, message: dict) -> None:
        """``websocket.accept``: the responder accepts, then frames flow both ways."""
        state = self.state
        if state is not CONNECTING:
            if state is CLOSED and self.lost:
                raise ClientDisconnected("the client went away")
            raise AppProtocolError(f"websocket.accept in state {state}")
        engine = self.engine
        fields = accept_fields(engine.extension_header, message.get("subprotocol"),
                               message.get("headers") or ())
        self.responder.accept(self.handshake, fields)
        self.plain = engine.extension_header is None
        self.state = OPEN
        engine.open()
        interval = self.config.ws_ping_interval
        if interval:
            self.next_ping = self.loop.time() + interval
        if self.shutting_down:
            self.set_disconnect(1012, "")
            self.start_close(1012, "")
        elif not self.lost:
            self.read_paused = False
            self.channel.resume_reading()
        early, self.early = self.early, b""
        if early:
            engine.feed(early)

    def app_close(self, message: dict) -> None:
        """``websocket.close``: the closing handshake once open; before, a 403 refusal."""
        state = self.state
        if state is OPEN:
            code = message.get("code", 1000)
            reason = message.get("reason") or ""
            if not valid_close_code(code):
                raise AppProtocolError(f"invalid close code {code!r}")
            if len(reason) > 30:
                # a close frame's payload is at most 125 bytes: 2 for the code, 123 of text
                reason = reason.encode()[:123].decode("utf-8", "ignore")
            self.start_close(code, reason)
        elif state is CONNECTING:
            # ASGI: a close before accept refuses the handshake with 403
            self.refuse(403)
            self.set_disconnect(1006, "")
        elif state is RESPONDING:
            raise AppProtocolError("websocket.close during a denial response")
        # CLOSING / CLOSED: the connection is already going away

    def deny_start(self, message: dict) -> None:
        """The ``websocket.http.response`` extension: the app's own denial response."""
        if self.state is not CONNECTING:
            raise AppProtocolError(f"websocket.http.response.start in state {self.state}")
        status = message["status"]
        if type(status) is not int or status < 200 or status == 101:
            raise AppProtocolError(f"invalid denial response status {status!r}")
        headers = message.get("headers") or ()
        for name, value in headers:
            check_header(name, value)
        self.responder.deny_start(status, headers)
        self.state = RESPONDING

    def deny_body(self, message: dict) -> bool:
        """Its body; True when more is to come."""
        if self.state is not RESPONDING:
            raise AppProtocolError(f"websocket.http.response.body in state {self.state}")
        more = message.get("more_body", False)
        if not self.closing:
            self.responder.deny_body(message.get("body", b""), more)
        if not more:
            self.state = CLOSED
            self.set_disconnect(1006, "")
            self.close_channel()
        return more

    def refuse(self, status: int, message: str = "", fields: Any = ()) -> None:
        """The server's own answer instead of the app's (403, 500, a refused handshake)."""
        self.state = CLOSED
        if not self.closing:
            self.responder.refuse(status, message, fields)
        self.close_channel()
