"""What the frame headers say, read as the bytes pass to h2: the header-block cap and the
flood budget.

h2 parses frames itself; it buffers a header block (HEADERS + CONTINUATION) up to 64 frames of
the largest frame size before it decodes anything, and it answers every PING and SETTINGS and
takes every PRIORITY, WINDOW_UPDATE, empty DATA or unknown frame without limit. Those are the
CVE-2024-27316 (CONTINUATION flood) and CVE-2019-9512/9515/9518 (ping, settings, empty frame)
classes. ``FrameGuard`` reads only the 9-byte headers (a few operations per frame; a DATA
frame's payload is skipped, not read) and raises ``Flood`` when:

* a header block under way grows past ``block_limit`` bytes (the advertised
  SETTINGS_MAX_HEADER_LIST_SIZE: an encoded block is never larger than the list it decodes to,
  so a legitimate request never reaches it), before h2 buffers it;
* more than ``budget`` frames that bring no request and no body arrive in one budget window
  (the connection opens a new window once a second). WINDOW_UPDATE is counted apart: a client
  downloading sends one per DATA frames it read, so each DATA frame we send allows one more.

Two rules of RFC 9113 that h2 does not apply are read here too, from the headers alone
(``FrameError`` with the code): the client's first frame must be SETTINGS (3.4), and a
SETTINGS acknowledgement carries no payload (6.5: FRAME_SIZE_ERROR; h2 says PROTOCOL_ERROR).
"""

from __future__ import annotations

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

_DATA, _HEADERS, _SETTINGS, _WINDOW_UPDATE, _CONTINUATION = 0, 1, 4, 8, 9
_END_STREAM, _ACK, _END_HEADERS = 0x1, 0x1, 0x4
_HEADER = 9
_PROTOCOL_ERROR, _FRAME_SIZE_ERROR, _ENHANCE_YOUR_CALM = 0x1, 0x6, 0xB


class FrameError(Exception):
    """A connection error read from a frame header: GOAWAY with ``code``."""

    code = _PROTOCOL_ERROR


class FrameSizeError(FrameError):
    code = _FRAME_SIZE_ERROR


class Flood(FrameError):
    """The peer overran a limit: the connection ends with GOAWAY ENHANCE_YOUR_CALM."""

    code = _ENHANCE_YOUR_CALM


class FrameGuard:
    """Counts frames by their headers; ``feed`` gets every byte h2 gets, preface included."""

    __slots__ = ("block", "block_limit", "budget", "first", "idle_frames", "in_block", "partial",
                 "skip", "window_updates", "wu_allowance")

    def __init__(self, block_limit: int, budget: int) -> None:
        self.block_limit = block_limit
        self.budget = budget
        self.skip = len(PREFACE)  # payload bytes (or the preface) still to pass over
        self.first = True  # the client's first frame is still to come
        self.partial = b""  # the start of a frame header split across reads
        self.in_block = False
        self.block = 0
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
        self.wu_allowance += 2 * frames  # one for the stream, one for the connection

    def feed(self, data: bytes) -> None:
        pos = self.skip
        end = len(data)
        if pos >= end:
            self.skip = pos - end
            return
        if self.partial:
            need = _HEADER - len(self.partial)
            if end < need:
                self.partial += data
                return
            pos = need + self._frame(self.partial + data[:need])
            self.partial = b""
        frame = self._frame
        while pos + _HEADER <= end:
            pos += _HEADER + frame(data[pos:pos + _HEADER])
        if pos < end:
            self.partial = data[pos:]
            self.skip = 0
        else:
            self.skip = pos - end

    def _frame(self, header: bytes) -> int:
        """Account for one frame; returns its payload length."""
        length = int.from_bytes(header[:3], "big")
        kind = header[3]
        flags = header[4]
        if self.first:
            self.first = False
            if kind != _SETTINGS:  # RFC 9113 3.4: the preface ends with a SETTINGS frame
                raise FrameError("the client preface is not followed by SETTINGS")
        if kind == _DATA:
            if not length and not flags & _END_STREAM:
                self._idle()
        elif kind == _HEADERS or kind == _CONTINUATION:
            if kind == _HEADERS or not self.in_block:
                self.block = 0
            if kind == _CONTINUATION and not length and not flags & _END_HEADERS:
                self._idle()
            self.block += length
            self.in_block = not flags & _END_HEADERS
            if self.block > self.block_limit:
                raise Flood("header block larger than the header list size limit")
        elif kind == _WINDOW_UPDATE:
            self.window_updates += 1
            if self.window_updates > self.wu_allowance:
                raise Flood("WINDOW_UPDATE flood")
        else:  # PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY, PUSH_PROMISE, unknown types
            if kind == _SETTINGS and flags & _ACK and length:
                raise FrameSizeError("SETTINGS acknowledgement with a payload")  # RFC 9113 6.5
            self._idle()
        return length

    def _idle(self) -> None:
        self.idle_frames += 1
        if self.idle_frames > self.budget:
            raise Flood("too many control or empty frames")
