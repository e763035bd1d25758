"""The chunked transfer coding of a request body (RFC 9112 7.1), decoded by us.

Both parser adapters use it: the h11 adapter for every chunked body (h11's own reader takes
any bytes after ``;`` as an extension), the httptools adapter once llhttp has parsed a chunked
request's head (llhttp refuses the whitespace RFC 9112 7.1.1 allows in chunk extensions, and
no leniency flag of llhttp changes that). Decoded chunks go to ``conn.on_body`` as they
arrive; trailer fields are checked like header fields, then dropped.
"""

from __future__ import annotations

import re
from typing import Any

from ...errors import BadRequest
from .limits import Limits

# field-line = field-name ":" OWS field-value OWS; field-value holds HTAB, SP, VCHAR, obs-text
_FIELD = re.compile(rb"([-!#$%&'*+.^_`|~0-9A-Za-z]+):([\t\x20-\x7e\x80-\xff]*)")
# chunk-size [ chunk-ext ] (RFC 9112 7.1.1):
#   chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
#   chunk-ext-val = token / quoted-string
# 16 hex digits at most (a 64-bit size) after any leading zeros; as llhttp does, an empty value
# right after "=" is accepted. BWS is possessive: a run of whitespace is never split between
# two BWS (a long run of spaces would cost quadratic time), and nothing valid needs that.
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]++"
_BWS = rb"[ \t]*+"
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*+"'
_CHUNK_LINE = re.compile(
    rb"0*([0-9A-Fa-f]{1,16})(?:" + _BWS + rb";" + _BWS + _TOKEN
    + rb"(?:" + _BWS + rb"=(?:" + _BWS + rb"(?:" + _TOKEN + rb"|" + _QUOTED + rb"))?)?)*"
)
_MAX_CHUNK_LINE = 8192
_SIZE, _DATA, _DATA_END, _TRAILERS = 1, 2, 3, 4


class ChunkedDecoder:
    """One chunked request body: ``feed`` bytes until it returns what follows the body."""

    __slots__ = ("buf", "conn", "left", "limits", "state", "trailers")

    def __init__(self, conn: Any, limits: Limits) -> None:
        self.conn = conn
        self.limits = limits
        self.state = _SIZE
        self.buf = b""  # a chunk-size or trailer line not yet complete
        self.left = 0  # bytes of the current chunk still to come
        self.trailers = 0

    def feed(self, data: bytes) -> bytes | None:
        """Decode ``data``: ``None`` while the body goes on, else the bytes after its end (the
        next request's). Raises ``BadRequest`` on broken framing."""
        buf = self.buf + data if self.buf else data
        self.buf = b""
        pos = 0
        conn = self.conn
        while True:
            state = self.state
            if state == _DATA:
                n = len(buf) - pos
                if not n:
                    return None
                left = self.left
                if n < left:
                    conn.on_body(buf[pos:] if pos else buf)
                    self.left = left - n
                    return None
                conn.on_body(buf[pos : pos + left])
                pos += left
                self.left = 0
                self.state = _DATA_END
                continue
            end = buf.find(b"\r\n", pos)
            if end < 0:
                rest = buf[pos:]
                if b"\n" in rest or b"\r" in rest[:-1]:
                    raise BadRequest("bare CR or LF in chunked body")
                if len(rest) > _MAX_CHUNK_LINE:
                    raise BadRequest("chunk line too long")
                self.buf = rest
                return None
            line = buf[pos:end]
            pos = end + 2
            if b"\r" in line or b"\n" in line:
                raise BadRequest("bare CR or LF in chunked body")
            if state == _DATA_END:
                if line:
                    raise BadRequest("chunk data not followed by CRLF")
                self.state = _SIZE
            elif state == _SIZE:
                match = _CHUNK_LINE.fullmatch(line)
                if match is None:
                    raise BadRequest("invalid chunk size line")
                size = int(match.group(1), 16)
                if size:
                    self.left = size
                    self.state = _DATA
                else:
                    self.state = _TRAILERS
            elif line:  # a trailer field: checked like a header, then dropped
                match = _FIELD.fullmatch(line)
                if match is None:
                    raise BadRequest("invalid trailer field line")
                self.trailers += 1
                self.limits.check_field(self.trailers, match.group(1), match.group(2).strip())
            else:
                return buf[pos:]
