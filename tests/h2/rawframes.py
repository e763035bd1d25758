"""A frame-level HTTP/2 client for the conformance corpus: it sends exactly the bytes a case
asks for (hyperframe for well-formed frames, ``frame()`` for what hyperframe refuses to build)
and reads the server's frames one by one, so a case can wait for the one answer it expects --
a GOAWAY, a RST_STREAM on its stream, a response, a PING acknowledgement.

``H2Client`` (client.py) runs h2's own state machine, which refuses to send most of the
mistakes these cases are about and refuses to read frames after an error; this one keeps no
protocol state beyond HPACK (both directions, so header blocks of either side decode).
"""

from __future__ import annotations

import socket
import ssl
import time

from hpack import Decoder, Encoder
from hyperframe.frame import (
    ContinuationFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

from tests.h2.client import open_socket

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# frame type codes (RFC 9113 6)
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame as bytes, whatever its type, length or payload say (no checks)."""
    return (len(payload).to_bytes(3, "big") + bytes([kind, flags])
            + stream_id.to_bytes(4, "big") + payload)


def setting(code: int, value: int) -> bytes:
    """One SETTINGS parameter (6 bytes), any value."""
    return code.to_bytes(2, "big") + value.to_bytes(4, "big")


class Closed(Exception):
    """The server closed the connection."""


class RawH2:
    """One connection: ``handshake()`` (preface, SETTINGS both ways), then frames."""

    def __init__(self, server, timeout: float = 10.0) -> None:
        self.sock = open_socket(server, timeout=timeout)
        self.tls = bool(server.tls)
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.decoder.max_allowed_table_size = 1 << 32  # whatever the server's encoder uses
        self.buffer = bytearray()
        self.received: list[Frame] = []  # every frame read, in order
        self.server_settings: dict[int, int] = {}
        self.closed = False

    # ------------------------------------------------------------------ sending
    def send(self, *frames: bytes | Frame) -> None:
        data = b"".join(f if isinstance(f, bytes | bytearray) else f.serialize() for f in frames)
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the server stopped reading after an error: its answer is still to be read

    def handshake(self, *settings: bytes) -> None:
        """Our preface and SETTINGS; the server's SETTINGS acknowledged and ours acknowledged
        (RFC 9113 3.4): after this the server has applied our settings."""
        self.send(PREFACE, frame(SETTINGS, 0, 0, b"".join(settings)))
        first = self.next_frame()
        if not isinstance(first, SettingsFrame) or "ACK" in first.flags:
            raise AssertionError(f"the server preface is not a SETTINGS frame: {first!r}")
        self.server_settings = dict(first.settings)
        self.send(frame(SETTINGS, ACK, 0))
        self.wait_for(lambda f: isinstance(f, SettingsFrame) and "ACK" in f.flags,
                      "SETTINGS ACK")

    def block(self, fields: list, huffman: bool = False) -> bytes:
        """A header block encoded with this connection's HPACK context."""
        return self.encoder.encode(fields, huffman=huffman)

    def headers(self, stream_id: int, fields: list, end_stream: bool = True,
                end_headers: bool = True) -> bytes:
        flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
        return frame(HEADERS, flags, stream_id, self.block(fields))

    def continuation(self, stream_id: int, fields: list, end_headers: bool = True) -> bytes:
        return ContinuationFrame(stream_id, data=self.block(fields),
                                 flags=["END_HEADERS"] if end_headers else []).serialize()

    # ------------------------------------------------------------------ receiving
    def next_frame(self, timeout: float = 10.0) -> Frame:
        """The next frame from the server; ``Closed`` when it closed the connection."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buffer) >= 9:
                head, length = Frame.parse_frame_header(memoryview(self.buffer[:9]))
                if len(self.buffer) >= 9 + length:
                    head.parse_body(memoryview(self.buffer[9:9 + length]))
                    del self.buffer[:9 + length]
                    if isinstance(head, HeadersFrame | ContinuationFrame):
                        # (the server sends whole blocks: one HEADERS, END_HEADERS set)
                        head.fields = self.decoder.decode(head.data, raw=True)
                    self.received.append(head)
                    return head
            if self.closed:
                raise Closed
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting for a frame from the server")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except (ConnectionResetError, ssl.SSLError, OSError):
                data = b""
            if not data:
                self.closed = True
            self.buffer += data

    def wait_for(self, predicate, what: str, timeout: float = 10.0) -> Frame:
        """Read frames until one matches ``predicate``; fails on close or at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = self.next_frame(max(deadline - time.monotonic(), 0.01))
            except Closed:
                raise AssertionError(f"closed while waiting for {what}; read "
                                     f"{self.received!r}") from None
            if predicate(found):
                return found

    def ping_round_trip(self, payload: bytes = b"conform!") -> None:
        """The connection goes on: a PING is answered with the same payload (RFC 9113 6.7),
        and nothing before the answer ended the connection."""
        self.send(PingFrame(0, opaque_data=payload))
        found = self.wait_for(
            lambda f: isinstance(f, GoAwayFrame)
            or isinstance(f, PingFrame) and "ACK" in f.flags and f.opaque_data == payload,
            "PING ACK")
        if isinstance(found, GoAwayFrame):
            raise AssertionError(f"GOAWAY {found.error_code} instead of a PING ACK")

    def goaway_or_close(self, timeout: float = 10.0) -> GoAwayFrame | None:
        """The GOAWAY the server sends (None if it closed without one), then its close."""
        deadline = time.monotonic() + timeout
        goaway = None
        try:
            while True:
                found = self.next_frame(max(deadline - time.monotonic(), 0.01))
                if isinstance(found, GoAwayFrame) and goaway is None:
                    goaway = found
        except Closed:
            return goaway

    def stream_frames(self, stream_id: int) -> list[Frame]:
        return [f for f in self.received if f.stream_id == stream_id]

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def response_status(found: Frame) -> int | None:
    """The ``:status`` of a response HEADERS frame, else None."""
    if isinstance(found, HeadersFrame):
        return int(dict(found.fields).get(b":status", b"0"))
    return None


def is_reset(found: Frame, stream_id: int) -> bool:
    return isinstance(found, RstStreamFrame) and found.stream_id == stream_id
