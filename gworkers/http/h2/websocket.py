"""WebSockets over HTTP/2 (RFC 8441): the ONE WebSocket session (``ws/session.py``) over an h2
stream, through the session's two interfaces (``ws/channel.py``).

We advertise SETTINGS_ENABLE_CONNECT_PROTOCOL (``core.py``); a client then opens a WebSocket
with an extended CONNECT (``:protocol websocket``) and the stream's DATA frames carry the
WebSocket frames both ways. The session is the one HTTP/1.1 upgrades use -- same engines,
timers, limits, close codes, deflate -- given a ``StreamChannel`` as its ``ByteChannel`` and an
``H2Handshake`` as its ``HandshakeResponder``: ``:status 200`` and no Sec-WebSocket-Accept,
refusals and the app's denial response as ordinary responses on the stream.

What a TCP connection does, the stream does (RFC 8441 4-5): the channel's close is END_STREAM
(sent once what waits for the window has left), an abort is RST_STREAM (CANCEL), the peer's
END_STREAM or RST_STREAM is the connection lost. Flow control is the backpressure: the session
pausing its reading leaves the stream's receive window unopened; a closed send window pauses the
session's writes (``pause_writing``) until the peer opens it. The session is registered with the
server like an HTTP/1.1 one, so the once-a-second tick (pings, close deadlines) and a drain
(1012) reach it the same way.
"""

from __future__ import annotations

from typing import Any

from ...ws.handshake import Handshake, read_handshake
from .frames import ErrorCodes
from .request import Request
from .scope import http_scope
from .sink import h2_fields, status_bytes

# framing fields of a denial response that HTTP/2 has no use for (RFC 9113 8.2.2)
_FRAMING = frozenset((b"transfer-encoding", b"connection"))


def open_tunnel(conn: Any, stream_id: int, request: Request, ended: bool) -> None:
    """An extended CONNECT on ``conn`` (an ``H2Protocol``): a WebSocket session over the
    stream, or the reply refusing it (400 without a stream to carry it, 501 for a protocol
    other than websocket, 503 at ``limit_concurrency``)."""
    context = conn.context
    upgrader = context.websocket_upgrade
    if request.protocol != b"websocket" or ended or upgrader is None:
        status = 400 if ended else 501
        conn.answer(stream_id, status, reset_body=not ended)
        return
    if context.calls.full():
        conn.answer(stream_id, 503, reset_body=True)
        return
    channel = StreamChannel(conn, stream_id)
    session = channel.session = upgrader(context, http_scope(conn, request),
                                         H2Handshake(channel), conn.core.draining)
    conn.tunnels[stream_id] = channel
    context.calls.request_started()
    session.registry = registry = context.registry  # (server ticks, drain: as any WebSocket)
    registry.connection_made(session)
    session.start(channel, b"")


def tunnels_window(tunnels: dict, stream_id: int) -> None:
    """A WINDOW_UPDATE (``stream_id`` 0: the connection's, or new SETTINGS): what the
    WebSockets hold back may leave."""
    if stream_id:
        tunnel = tunnels.get(stream_id)
        if tunnel is not None:
            tunnel.window_opened()
        return
    for tunnel in list(tunnels.values()):
        tunnel.window_opened()


class StreamChannel:
    """One h2 stream as the session's ``ByteChannel`` (see the module docstring)."""

    __slots__ = ("conn", "end_pending", "ended", "id", "lost", "paused", "peer_ended", "pending",
                 "session", "unacked", "window")

    def __init__(self, conn: Any, stream_id: int) -> None:
        self.conn = conn  # the H2Protocol
        self.id = stream_id
        self.session: Any = None
        self.pending = b""  # frames waiting for the send window
        self.end_pending = False  # END_STREAM once ``pending`` has left
        self.ended = False  # our side is closed (END_STREAM, a reply, or RST_STREAM)
        self.peer_ended = False
        self.lost = False  # both sides closed or reset: the session was told
        self.paused = True  # the session reads nothing before its app accepts
        self.unacked = 0  # bytes received that the peer's window does not know of
        self.window = conn.config.http2_initial_window_size

    # ------------------------------------------------------------------ the transport surface
    def write(self, data: bytes) -> None:
        if self.ended or not data:
            return
        if self.pending:
            self.pending += data
            return
        self._send(data)

    def close(self) -> None:
        """The session's close: END_STREAM once what waits for the window has left."""
        if self.ended:
            return
        if self.pending:
            self.end_pending = True
            return
        self._end()

    def abort(self) -> None:
        if not self.lost:
            if not self.ended or not self.peer_ended:
                self.conn.core.reset(self.id, ErrorCodes.CANCEL)
                self.conn.flush_soon()
            self.ended = True
            self.finish()

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False
        if self.unacked:
            self._ack()

    def is_closing(self) -> bool:
        return self.ended

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.conn.transport.get_extra_info(name, default)

    # ------------------------------------------------------------------ the handshake's answers
    def send_head(self, status: int, fields: list, end: bool = False) -> None:
        conn = self.conn
        head = conn.with_defaults([(b":status", status_bytes(status)), *h2_fields(fields)], None)
        if not conn.core.send_headers(self.id, head, end):
            self.abort()
        elif end:
            self.ended = True
        conn.flush_soon()

    def answer(self, status: int, fields: list) -> None:
        """The server's own reply (400, 403, 426, 500, 503): ends our side of the stream."""
        if not self.ended:
            self.ended = True
            self.conn.answer(self.id, status, reset_body=True, fields=fields)

    # ------------------------------------------------------------------ from the connection
    def received(self, data: bytes, size: int) -> None:
        self.unacked += size
        if not self.paused and self.unacked >= self.window // 2:
            self._ack()
        if data and not self.lost:
            self.session.data_received(data)

    def window_opened(self) -> None:
        pending = self.pending
        if not pending or self.lost:
            return
        self.pending = b""
        self._send(pending)
        if not self.pending:
            self.session.resume_writing()
            if self.end_pending:
                self._end()

    def end_received(self) -> None:
        """The peer's END_STREAM: as a TCP FIN, the session loses its connection."""
        self.peer_ended = True
        if not self.ended:
            self.close()
        self.finish()

    def finish(self) -> None:
        """The stream is over (or reset): the session's connection is lost."""
        if self.lost:
            return
        self.lost = True
        self.pending = b""
        self.conn.tunnel_closed(self)
        self.session.connection_lost(None)

    # ------------------------------------------------------------------ internals
    def _send(self, data: bytes) -> None:
        left = self.conn.core.send_data(self.id, data, False)
        self.conn.flush_soon()
        if left is None:
            self.ended = True
            self.finish()
        elif left:
            self.pending = left
            self.session.pause_writing()

    def _end(self) -> None:
        self.ended = True
        self.conn.core.send_data(self.id, b"", True)
        self.conn.flush_soon()
        if self.peer_ended:
            self.finish()

    def _ack(self) -> None:
        self.conn.core.open_window(self.id, self.unacked)
        self.unacked = 0
        self.conn.flush_soon()


class H2Handshake:
    """The opening handshake answered on the stream of ``channel`` (a ``StreamChannel``)."""

    __slots__ = ("channel",)

    def __init__(self, channel: StreamChannel) -> None:
        self.channel = channel

    def check(self, scope: dict) -> Handshake:
        """RFC 8441 5: the connection routed an extended CONNECT with ``:protocol websocket``
        here; no key is used (a client may still send one: it is ignored)."""
        return read_handshake(scope)

    def accept(self, handshake: Handshake, fields: list) -> None:
        self.channel.send_head(200, fields)

    def refuse(self, status: int, message: str = "", fields: Any = ()) -> None:
        self.channel.answer(status, list(fields))

    def deny_start(self, status: int, headers: Any) -> None:
        self.channel.send_head(status, [(n, v) for n, v in headers if n.lower() not in _FRAMING])

    def deny_body(self, body: bytes, more: bool) -> None:
        self.channel.write(body)  # (the session closes the channel after the last part)
