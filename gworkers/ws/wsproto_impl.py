"""wsproto adapter: wsproto's frame protocol -> the session's push calls.

Only framing lives here. The opening handshake is the session's (it already has the parsed
request), so wsproto's own HTTP handshake, which would re-serialise the request through h11, is
not used: the negotiated ``PerMessageDeflate`` goes straight into a post-handshake
``wsproto.connection.Connection``.
"""

from __future__ import annotations

from typing import Any

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate

from ..errors import BadRequest
from .framing import BINARY, TEXT, data_frame

_SERVER = ConnectionType.SERVER
_OPEN = ConnectionState.OPEN
_REMOTE_CLOSING = ConnectionState.REMOTE_CLOSING
_INFLATE_SLICE = 16 * 1024


class WsprotoEngine:
    name = "wsproto"
    __slots__ = ("conn", "extension_header", "extensions", "session")

    def __init__(self, session: Any, config: Any, offers: list[bytes]) -> None:
        """Negotiate extensions from the ``Sec-WebSocket-Extensions`` offers (raises 400)."""
        self.session = session
        self.extensions: list = []
        self.extension_header: bytes | None = None
        if offers and config.ws_per_message_deflate:
            self._negotiate(offers)
        self.conn: Connection | None = None

    def _negotiate(self, offers: list[bytes]) -> None:
        for header in offers:
            try:
                text = header.decode("ascii")
            except UnicodeDecodeError:
                raise BadRequest("invalid Sec-WebSocket-Extensions") from None
            for offer in text.split(","):
                name = offer.split(";", 1)[0].strip()
                if name != "permessage-deflate":
                    continue
                ext = PerMessageDeflate()
                try:
                    accepted = ext.accept(offer.strip())
                except (ValueError, TypeError):
                    raise BadRequest("invalid permessage-deflate offer") from None
                if accepted is None or accepted is False:
                    continue  # an offer we cannot take: try the client's next one
                params = "" if accepted is True else accepted
                self.extensions = [ext]
                self.extension_header = (
                    b"permessage-deflate; " + params.encode("ascii") if params
                    else b"permessage-deflate"
                )
                return

    def open(self) -> None:
        self.conn = Connection(_SERVER, self.extensions)

    # ------------------------------------------------------------------ incoming
    def feed(self, data: bytes) -> None:
        """Parse ``data`` and push what it held to the session.

        With permessage-deflate, wsproto inflates whatever it is given without a bound, so
        large reads go in slices: one slice inflates to at most ~1000x its size before the
        session's ``ws_max_size`` check can fail the message (1009).
        """
        if self.extensions and len(data) > _INFLATE_SLICE:
            view = memoryview(data)
            for start in range(0, len(data), _INFLATE_SLICE):
                self._feed(bytes(view[start : start + _INFLATE_SLICE]))
                if self.session.closing:
                    return
            return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        conn = self.conn
        session = self.session
        conn.receive_data(data)
        for event in conn.events():
            kind = type(event)
            if kind is TextMessage or kind is BytesMessage:
                session.on_data(event.data, kind is TextMessage, event.message_finished)
            elif kind is Ping:
                if conn.state is _OPEN:
                    session.write(conn.send(event.response()))
            elif kind is Pong:
                session.on_pong(event.payload)
            elif kind is CloseConnection:
                if conn.state is _REMOTE_CLOSING:
                    # the peer's close: echo it (RFC 6455 5.5.1)
                    session.write(conn.send(event.response()))
                    session.on_close(event.code, event.reason or "")
                elif conn.state is _OPEN:
                    # wsproto's parse failure: we send the close it names
                    self.fail(event.code, event.reason or "")
                else:
                    session.on_close(event.code, event.reason or "")
                return
            if session.closing:
                return

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection (RFC 6455 7.1.7): send a close frame, then the session closes."""
        conn = self.conn
        if conn.state is _OPEN or conn.state is _REMOTE_CLOSING:
            self.session.write(conn.send(CloseConnection(code=code, reason=reason)))
        self.session.on_failed(code, reason)

    # ------------------------------------------------------------------ outgoing
    def send_text(self, data: str) -> bytes:
        if self.conn.state is not _OPEN:
            return b""
        if not self.extensions:
            return data_frame(TEXT, data.encode())
        return self.conn.send(TextMessage(data=data))

    def send_bytes(self, data: bytes) -> bytes:
        if self.conn.state is not _OPEN:
            return b""
        if not self.extensions:
            return data_frame(BINARY, data)
        return self.conn.send(BytesMessage(data=data))

    def ping(self, payload: bytes) -> bytes:
        if self.conn.state is not _OPEN:
            return b""
        return self.conn.send(Ping(payload=payload))

    def close(self, code: int, reason: str) -> bytes:
        state = self.conn.state
        if state is not _OPEN and state is not _REMOTE_CLOSING:
            return b""
        return self.conn.send(CloseConnection(code=code, reason=reason))

