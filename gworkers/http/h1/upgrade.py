"""The HTTP/1.1 WebSocket upgrade, in one place: taking the request, the handshake's HTTP/1.1
bytes, and handing the transport over.

``Upgrades`` is the half of ``HTTPConnection`` that does the hand-off (a mixin, like
``ResponseWriter``): ``upgrade`` decides at the head whether a session takes the connection,
``on_upgrade`` (called by a parser at the head's end, with the bytes after it) gives the session
the transport. ``H1Handshake`` is the session's ``HandshakeResponder`` on HTTP/1.1
(``ws/channel.py``): the RFC 6455 request rules, ``101 Switching Protocols``, and the server's
refusals and the app's denial responses as HTTP/1.1 responses ending with a close.
"""

from __future__ import annotations

from typing import Any

from ...errors import BadRequest, ServiceUnavailable
from ...ws.handshake import Handshake, accept_token, read_handshake
from . import wire

_SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\n"
_UPGRADE_FIELDS = b"upgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: "
# framing fields of a denial response that HTTP/1.1 writes itself
_FRAMING = frozenset((b"transfer-encoding", b"connection"))


class H1Handshake:
    """The opening handshake answered in HTTP/1.1 bytes on ``transport``."""

    __slots__ = ("chunked", "defaults", "held", "transport")

    def __init__(self, transport: Any, defaults: Any) -> None:
        self.transport = transport
        self.defaults = defaults
        self.chunked = False  # the denial body is chunked (the app declared no length)
        self.held = b""  # the denial head, until its first body bytes

    def check(self, scope: dict) -> Handshake:
        """RFC 6455 4.2.1: a GET over HTTP/1.1 with a ``Sec-WebSocket-Key``."""
        if scope["method"] != "GET":
            raise BadRequest("a WebSocket handshake must be a GET")
        if scope["http_version"] != "1.1":
            raise BadRequest("a WebSocket handshake needs HTTP/1.1")
        handshake = read_handshake(scope)
        if handshake.key is None:
            raise BadRequest("missing Sec-WebSocket-Key")
        return handshake

    def accept(self, handshake: Handshake, fields: list) -> None:
        self.transport.write(b"".join((
            _SWITCHING, self.defaults.block, _UPGRADE_FIELDS, accept_token(handshake.key),
            b"\r\n", wire.field_lines(fields), b"\r\n",
        )))

    def refuse(self, status: int, message: str = "", fields: Any = ()) -> None:
        extra = wire.field_lines(fields) if fields else b""
        self.transport.write(wire.error_reply(status, message, self.defaults.block, extra))

    def deny_start(self, status: int, headers: Any) -> None:
        parts = [wire.status_line(status), self.defaults.block]
        length = False
        for name, value in headers:
            lname = name.lower()
            if lname == b"content-length":
                length = True
            elif lname in _FRAMING:
                continue
            parts.append(b"%b: %b\r\n" % (name, value))
        if not length:
            self.chunked = True
            parts.append(b"transfer-encoding: chunked\r\n")
        parts.append(b"connection: close\r\n\r\n")
        self.held = b"".join(parts)

    def deny_body(self, body: bytes, more: bool) -> None:
        if self.chunked:
            out = wire.chunk(body) if body else b""
            if not more:
                out += wire.LAST_CHUNK
        else:
            out = body
        held, self.held = self.held, b""
        if held or out:
            self.transport.write(held + out)


class Upgrades:
    """The upgrade hand-off (a mixin of ``HTTPConnection``, whose slots hold its state)."""

    __slots__ = ()

    # (declared by HTTPConnection)
    accepting: bool
    calls: Any
    closed: bool
    context: Any
    cycle: Any
    defaults: Any
    out: list | None
    pipeline: list
    transport: Any
    upgrade_to: Any

    def upgrade(self, scope: dict) -> bool:
        """``Upgrade: websocket``: True when a WebSocket session takes the connection over
        (it is handed the transport by ``on_upgrade``, at the end of the head). Not while
        other requests on this connection are answered: then the request is served as HTTP."""
        upgrader = self.context.websocket_upgrade
        if upgrader is None or self.cycle is not None or self.pipeline:
            return False
        calls = self.calls
        if calls.full():
            raise ServiceUnavailable("concurrency limit reached")
        responder = H1Handshake(self.transport, self.defaults)
        self.upgrade_to = upgrader(self.context, scope, responder, not self.accepting)
        calls.request_started()
        return True

    def on_upgrade(self, rest: bytes) -> None:
        """The parser saw the end of an upgrade request's head: hand the transport over.

        ``rest`` holds the bytes received after the head; the session gets them as they are
        (the request is never re-serialised). It registers before this connection leaves the
        registry, so a draining server never sees the worker idle in between.
        """
        session, self.upgrade_to = self.upgrade_to, None
        if session is None or self.closed:
            return
        if self.out:
            self.flush()
        self.pause_reading()  # the session resumes once its app accepts
        self.closed = True  # this protocol no longer owns the transport
        transport = self.transport
        transport.set_protocol(session)
        registry = self.context.registry
        session.registry = registry
        registry.connection_made(session)
        registry.connection_lost(self)
        session.start(transport, rest)
