"""websockets adapter: the sans-IO ``ServerProtocol`` -> the session's push calls.

Only framing lives here (not the library's legacy asyncio server, which is deprecated). The
opening handshake is the session's: the protocol object starts in the OPEN state and is only
asked to negotiate the client's extension offers. websockets checks frame sizes against
``ws_max_size`` (1009), masking, reserved bits and control frames (1002) and answers pings
itself; UTF-8 of text messages is checked here (1007), fragment by fragment.
"""

from __future__ import annotations

import codecs
from typing import Any

from websockets.datastructures import Headers
from websockets.exceptions import InvalidHandshake
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Opcode
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

from ..errors import BadRequest
from .framing import BINARY, TEXT, data_frame
from .session import OPEN as _SESSION_OPEN

_TEXT = Opcode.TEXT
_BINARY = Opcode.BINARY
_CONT = Opcode.CONT
_CLOSE = Opcode.CLOSE
_PONG = Opcode.PONG
_utf8_decoder = codecs.getincrementaldecoder("utf-8")


class WebsocketsEngine:
    name = "websockets"
    __slots__ = ("decoder", "extension_header", "failed", "proto", "session", "text")

    def __init__(self, session: Any, config: Any, offers: list[bytes]) -> None:
        """Negotiate extensions from the ``Sec-WebSocket-Extensions`` offers (raises 400)."""
        self.session = session
        factories = [ServerPerMessageDeflateFactory()] if config.ws_per_message_deflate else None
        self.proto = ServerProtocol(
            extensions=factories, state=OPEN, max_size=config.ws_max_size or None
        )
        self.extension_header: bytes | None = None
        if offers and factories:
            headers = Headers()
            for value in offers:
                headers["Sec-WebSocket-Extensions"] = value.decode("latin-1")
            try:
                header, self.proto.extensions = self.proto.process_extensions(headers)
            except InvalidHandshake as exc:
                raise BadRequest(f"invalid Sec-WebSocket-Extensions: {exc}") from None
            if header:
                self.extension_header = header.encode("ascii")
        self.text = False  # the fragmented message being received is text
        self.decoder: Any = None
        self.failed = False

    def open(self) -> None:
        pass

    # ------------------------------------------------------------------ incoming
    def feed(self, data: bytes) -> None:
        """Parse ``data`` and push what it held to the session."""
        proto = self.proto
        session = self.session
        proto.receive_data(data)
        frames = proto.events_received()
        writes = proto.data_to_send()
        if writes:  # auto-pongs, the echoed close, a failure's close
            for chunk in writes:
                if chunk:  # b"" marks "end of stream": the session closes the channel itself
                    session.write(chunk)
        for frame in frames:
            op = frame.opcode
            if op is _TEXT:
                if frame.fin:
                    # a whole text message: websockets checked its size against ws_max_size
                    try:
                        text = frame.data.decode()
                    except UnicodeDecodeError:
                        self.fail(1007, "invalid UTF-8 in text message")
                        return
                    if session.state is _SESSION_OPEN:
                        session.deliver({"type": "websocket.receive", "text": text})
                else:
                    self.text = True
                    self.decoder = _utf8_decoder()
                    if not self._text_part(frame.data, False):
                        return
            elif op is _BINARY:
                if frame.fin:  # a whole binary message, size checked by websockets
                    if session.state is _SESSION_OPEN:
                        payload = frame.data
                        if type(payload) is not bytes:
                            payload = bytes(payload)
                        session.deliver({"type": "websocket.receive", "bytes": payload})
                else:
                    self.text = False
                    session.on_data(frame.data, False, False)
            elif op is _CONT:
                if self.text:
                    if not self._text_part(frame.data, frame.fin):
                        return
                else:
                    session.on_data(frame.data, False, frame.fin)
            elif op is _PONG:
                session.on_pong(frame.data)
            elif op is _CLOSE:
                close = proto.close_rcvd
                session.on_close(close.code, close.reason)
                return
            if session.closing:
                return
        exc = proto.parser_exc
        if exc is not None and not self.failed:
            self.failed = True
            sent = proto.close_sent
            code = sent.code if sent is not None else 1006
            session.on_failed(code, str(exc))

    def _text_part(self, data: bytes, fin: bool) -> bool:
        try:
            text = self.decoder.decode(data, fin)
        except UnicodeDecodeError:
            self.fail(1007, "invalid UTF-8 in text message")
            return False
        self.session.on_data(text, True, fin)
        return True

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection (RFC 6455 7.1.7): send a close frame, then the session closes."""
        self.failed = True
        self.proto.fail(code, reason)
        self._flush()
        self.session.on_failed(code, reason)

    def _flush(self) -> None:
        for chunk in self.proto.data_to_send():
            if chunk:  # b"" marks "end of stream": the session closes the TCP itself
                self.session.write(chunk)

    # ------------------------------------------------------------------ outgoing
    def _take(self) -> bytes:
        out = self.proto.data_to_send()
        return out[0] if len(out) == 1 else b"".join(out)

    def send_text(self, data: str) -> bytes:
        if not self.proto.extensions:
            return data_frame(TEXT, data.encode())
        self.proto.send_text(data.encode())
        return self._take()

    def send_bytes(self, data: bytes) -> bytes:
        if not self.proto.extensions:
            return data_frame(BINARY, data)
        self.proto.send_binary(data)
        return self._take()

    def ping(self, payload: bytes) -> bytes:
        self.proto.send_ping(payload)
        return self._take()

    def close(self, code: int, reason: str) -> bytes:
        if self.proto.state is not OPEN:
            return b""
        self.proto.send_close(code, reason)
        return self._take()
