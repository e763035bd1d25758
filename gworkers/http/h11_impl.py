"""Pure-Python parser adapter (the H11Worker's): request bytes -> on_request / on_body /
on_complete.

It started as an adapter over h11 events, but h11 is lenient where RFC 9112 asks a server to be
strict (control bytes in field values and chunk extensions, bare CR in chunk lines) and
normalises what the app should see as sent (it merges repeated Content-Length lines and ``3, 3``
lists, lowercases codings, and answers every coding but chunked with 501), so the same bytes got
other answers than from llhttp. The head and the chunked framing are therefore parsed here, to
the RFC 9112 grammar and as strictly as llhttp: both parsers answer every case of the
tests/requests corpus alike. Whatever llhttp accepts beyond the grammar is accepted here too and
listed in tests/requests/README.md.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import BadRequest, URITooLong
from .limits import Limits

# request-line = method SP request-target SP HTTP-version (RFC 9112 3); recipients may split on
# runs of SP (3), as llhttp does. Two words is an HTTP/0.9 simple request.
_LINE3 = re.compile(rb"([^ ]+) +([^ ]+) +([^ ]+)")
_LINE2 = re.compile(rb"([^ ]+) +([^ ]+)")
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(rb"[\x21-\x7e]+")  # VCHAR: raw non-ASCII must be percent-encoded
_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
# field-line = field-name ":" OWS field-value OWS; field-value holds HTAB, SP, VCHAR, obs-text
_FIELD = re.compile(rb"([-!#$%&'*+.^_`|~0-9A-Za-z]+):([\t\x20-\x7e\x80-\xff]*)")
# chunk-size [ chunk-ext ] (RFC 9112 7.1.1) as llhttp reads it: no whitespace, an empty
# extension value allowed; 16 hex digits at most (a 64-bit size) after any leading zeros
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_CHUNK_LINE = re.compile(
    rb"0*([0-9A-Fa-f]{1,16})(?:;[-!#$%&'*+.^_`|~0-9A-Za-z]+(?:=(?:[-!#$%&'*+.^_`|~0-9A-Za-z]*|"
    + _QUOTED
    + rb"))?)*"
)
_MAX_CHUNK_LINE = 8192
_SIZE, _DATA, _DATA_END, _TRAILERS = 1, 2, 3, 4
# a request line's bytes beyond its target: the longest known method, two SP, the version
_LINE_SLACK = 32


class H11Parser:
    __slots__ = (
        "buf",
        "cbuf",
        "conn",
        "done",
        "left",
        "limits",
        "line_done",
        "state",
        "trailers",
        "upgraded",
    )

    def __init__(self, conn: Any, config: Any) -> None:
        self.conn = conn
        self.limits = Limits(config)
        self.buf: bytes | bytearray = b""  # head bytes not yet complete
        self.line_done = False  # the request line of that incomplete head is complete
        self.state = 0  # 0: head or Content-Length body; else where a chunked body is
        self.cbuf = b""  # chunked-body line bytes not yet complete
        self.left = 0  # body bytes still to come (Content-Length, or the current chunk)
        self.trailers = 0
        self.upgraded = False
        self.done = False  # the connection reads no further request

    @property
    def in_head(self) -> bool:
        return not self.state and not self.left and bool(self.buf)

    def feed(self, data: bytes) -> None:
        while data and not self.upgraded and not self.done:
            if self.state:
                data = self._feed_chunked(data)
            elif self.left:
                data = self._feed_length(data)
            else:
                data = self._feed_head(data)

    # ------------------------------------------------------------------ head
    def _feed_head(self, data: bytes) -> bytes:
        # A head arriving in pieces is appended to a bytearray and only the new bytes are
        # scanned: a client sending one byte at a time costs linear, not quadratic, work.
        buf = self.buf
        if buf:
            start = len(buf)
            buf += data
        else:
            start = 0
            buf = data
            if buf[:1] in (b"\r", b"\n"):
                # RFC 9112 2.2: empty lines before a request line are ignored
                buf = buf.lstrip(b"\r\n")
                if not buf:
                    return b""
        end = buf.find(b"\r\n\r\n", start - 3 if start > 3 else 0)
        limits = self.limits
        if end < 0:
            _check_line_endings(buf, start, len(buf) - 1 if buf[-1] == 13 else len(buf))
            if not self.line_done:
                line_end = buf.find(b"\r\n", start - 1 if start else 0)
                if line_end < 0:
                    if limits.line and len(buf) > limits.line + _LINE_SLACK:
                        raise URITooLong("request line too long")
                else:
                    # the request line just completed: its target may be over the limit
                    self.line_done = True
                    line = bytes(buf[:line_end])
                    match = _LINE3.fullmatch(line) or _LINE2.fullmatch(line)
                    if match:
                        limits.check_target(match.group(2))
            limits.check_head_size(len(buf))
            if not self.buf:
                self.buf = bytearray(buf)
            return b""
        if self.buf:
            buf = bytes(buf)
        self.buf = b""
        self.line_done = False
        _check_line_endings(buf, start, end + 4)
        rest = buf[end + 4 :]
        lines = buf[:end].split(b"\r\n")
        method, target, version = _request_line(lines[0])
        limits.check_target(target)
        headers = []
        check = limits.check_field
        length = None
        chunked = False
        for line in lines[1:]:
            match = _FIELD.fullmatch(line)
            if match is None:
                raise BadRequest("invalid header field line")
            name, value = match.groups()
            value = value.strip(b" \t")
            headers.append((name.lower(), value))
            check(len(headers), name, value)
        limits.check_head_size(end + 4)
        for name, value in headers:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        self.upgraded = self.conn.on_request(method, target, version, headers)
        if self.upgraded:
            self.conn.on_upgrade(rest)
            return b""
        # on_request applied head.check_head: the framing is a single chunked or one
        # Content-Length of digits by now
        if chunked:
            self.state = _SIZE
            return self._feed_chunked(rest)
        if length is not None and int(length):
            self.left = int(length)
            return self._feed_length(rest)
        return self._complete(rest)

    # ------------------------------------------------------------------ bodies
    def _feed_length(self, data: bytes) -> bytes:
        left = self.left
        if len(data) <= left:
            self.left = left - len(data)
            if data:
                self.conn.on_body(data)
            return self._complete(b"") if not self.left else b""
        self.left = 0
        self.conn.on_body(data[:left])
        return self._complete(data[left:])

    def _feed_chunked(self, data: bytes) -> bytes:
        """Decode a chunked body (RFC 9112 7.1), as strictly as llhttp does."""
        buf = self.cbuf + data if self.cbuf else data
        self.cbuf = b""
        pos = 0
        conn = self.conn
        while True:
            state = self.state
            if state == _DATA:
                n = len(buf) - pos
                if not n:
                    return b""
                left = self.left
                if n < left:
                    conn.on_body(buf[pos:] if pos else buf)
                    self.left = left - n
                    return b""
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
                self.cbuf = rest
                return b""
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
                    self.trailers = 0
            elif line:  # a trailer field: checked like a header, then dropped
                match = _FIELD.fullmatch(line)
                if match is None:
                    raise BadRequest("invalid trailer field line")
                self.trailers += 1
                self.limits.check_field(self.trailers, match.group(1), match.group(2).strip())
            else:
                self.state = 0
                return self._complete(buf[pos:])

    def _complete(self, rest: bytes) -> bytes:
        if not self.conn.on_complete():
            # RFC 9112 9.6: nothing after a request that closes the connection is processed
            self.done = True
            return b""
        return rest


def _request_line(line: bytes) -> tuple[bytes, bytes, str]:
    match = _LINE3.fullmatch(line)
    if match is not None:
        method, target, version = match.groups()
        found = _VERSION.fullmatch(version)
        if found is None:
            raise BadRequest("invalid HTTP version")
        version = version[5:].decode()
    else:
        match = _LINE2.fullmatch(line)
        if match is None:
            raise BadRequest("invalid request line")
        method, target = match.groups()
        version = "0.9"  # a simple request: check_head answers 505, as for llhttp
    if _TOKEN.fullmatch(method) is None:
        raise BadRequest("invalid method")
    if _TARGET.fullmatch(target) is None:
        raise BadRequest("invalid request target")
    return method, target, version


def _check_line_endings(buf: bytes | bytearray, start: int, stop: int) -> None:
    """Refuse bare CR, bare LF and obs-fold (RFC 9112 2.2, 5.2) in ``buf[start:stop]``, the
    bytes not checked yet (a CR left unchecked at the end of the previous piece included)."""
    if start and buf[start - 1] == 13:
        start -= 1
    region = buf[start:stop]
    crlf = region.count(b"\r\n")
    if region.count(b"\n") != crlf or region.count(b"\r") != crlf:
        raise BadRequest("bare CR or LF in request head")
    if start:
        region = buf[start - 1 : stop]  # a fold may start at the previous piece's LF
    if b"\n " in region or b"\n\t" in region:
        raise BadRequest("obsolete line folding in request head")
