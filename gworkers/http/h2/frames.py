"""HTTP/2 frames on the wire (RFC 9113 4, 6): types, flags, error codes, the errors that end a
stream or the connection, the frames we write, and the flood budget.

Frames are written by the few functions here straight into bytes (a 9-byte header packed by
one ``struct`` call, then the payload); there are no frame objects on either path.

``FloodBudget`` bounds the frames that cost us work but bring no request and no body: PING,
SETTINGS, PRIORITY, RST_STREAM, unknown types, empty DATA or CONTINUATION (CVE-2019-9512,
9515, 9518), and WINDOW_UPDATE beyond one per DATA frame we sent (a client downloading sends
one per frame read). Past ``budget`` of them in one window (the connection opens a new one
once a second) the connection ends with ENHANCE_YOUR_CALM.
"""

from __future__ import annotations

import struct
from enum import IntEnum

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types (RFC 9113 6)
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
# flags
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# settings (RFC 9113 6.5.2, RFC 8441 3)
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, \
    MAX_HEADER_LIST_SIZE = range(1, 7)
ENABLE_CONNECT_PROTOCOL = 8

MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65535
DEFAULT_FRAME_SIZE = 16384
MAX_FRAME_SIZE_LIMIT = 2**24 - 1

HEAD = struct.Struct(">HBBBL")  # length (16 high bits, 8 low), type, flags, stream id
_pack_head = HEAD.pack
_U32 = struct.Struct(">L")


class ErrorCodes(IntEnum):
    """RFC 9113 7."""

    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


class FrameError(Exception):
    """A connection error (RFC 9113 5.4.1): GOAWAY with ``code``, then the close."""

    code: int = ErrorCodes.PROTOCOL_ERROR

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class Flood(FrameError):
    """The peer overran a limit: the connection ends with GOAWAY ENHANCE_YOUR_CALM."""

    code = ErrorCodes.ENHANCE_YOUR_CALM


class StreamError(Exception):
    """A stream error (RFC 9113 5.4.2): RST_STREAM with ``code``; the connection goes on."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    length = len(payload)
    return _pack_head(length >> 8, length & 0xFF, kind, flags, stream_id) + payload


def frame_head(kind: int, flags: int, stream_id: int, length: int) -> bytes:
    """The 9 bytes before a payload written apart (a DATA frame's body is not copied)."""
    return _pack_head(length >> 8, length & 0xFF, kind, flags, stream_id)


def settings_frame(values: dict[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HL", k, v) for k, v in values.items()))


def window_update(stream_id: int, increment: int) -> bytes:
    return _pack_head(0, 4, WINDOW_UPDATE, 0, stream_id) + _U32.pack(increment)


def rst_stream(stream_id: int, code: int) -> bytes:
    return _pack_head(0, 4, RST_STREAM, 0, stream_id) + _U32.pack(code)


def goaway(last_stream_id: int, code: int) -> bytes:
    return frame(GOAWAY, 0, 0, struct.pack(">LL", last_stream_id, code))


class FloodBudget:
    """Counts the frames that bring no request and no body (see the module docstring)."""

    __slots__ = ("budget", "idle_frames", "window_updates", "wu_allowance")

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.idle_frames = 0
        self.window_updates = 0
        self.wu_allowance = budget

    def new_window(self) -> None:
        """A new budget window (once a second)."""
        self.idle_frames = 0
        self.window_updates = 0
        self.wu_allowance = self.budget

    def data_sent(self, frames: int) -> None:
        """We sent ``frames`` DATA frames: the peer may acknowledge each (stream and connection)."""
        self.wu_allowance += 2 * frames

    def idle(self) -> None:
        self.idle_frames += 1
        if self.idle_frames > self.budget:
            raise Flood("too many control or empty frames")

    def window_update(self) -> None:
        self.window_updates += 1
        if self.window_updates > self.wu_allowance:
            raise Flood("WINDOW_UPDATE flood")
