"""h11 adapter: h11 events -> on_request / on_body / on_complete.

h11 is used as a parser only (responses are written by the shared cycle). We frame the head
ourselves -- find its end, refuse bare CR/LF and obs-fold that h11 would tolerate -- then give
that head to a fresh ``h11.Connection`` which parses it and decodes the body.
"""

from __future__ import annotations

import re
from typing import Any

import h11

from ..errors import BadRequest, ProtocolError, URITooLong
from .head import check_transfer_encoding
from .limits import Limits

_TE = re.compile(rb"(?im)^transfer-encoding[ \t]*:[ \t]*([^\r\n]*)")
_SPACES = re.compile(rb" {2,}")


class H11Parser:
    __slots__ = ("body_conn", "buf", "conn", "limits", "upgraded")

    def __init__(self, conn: Any, config: Any) -> None:
        self.conn = conn
        self.limits = Limits(config)
        self.buf = b""  # head bytes not yet complete
        self.body_conn: h11.Connection | None = None  # parsing a body
        self.upgraded = False

    @property
    def in_head(self) -> bool:
        return self.body_conn is None and bool(self.buf)

    def feed(self, data: bytes) -> None:
        while data and not self.upgraded:
            if self.body_conn is not None:
                data = self._feed_body(data)
            else:
                data = self._feed_head(data)

    def _feed_head(self, data: bytes) -> bytes:
        buf = self.buf + data if self.buf else data
        if buf[:1] in (b"\r", b"\n"):
            # RFC 9112 2.2: empty lines before a request line are ignored
            buf = buf.lstrip(b"\r\n")
        end = buf.find(b"\r\n\r\n")
        head = buf if end < 0 else buf[: end + 4]
        _check_line_endings(head if end >= 0 or head[-1:] != b"\r" else head[:-1])
        if end < 0:
            line_end = buf.find(b"\r\n")
            if line_end < 0 and self.limits.line and len(buf) > self.limits.line + 16:
                raise URITooLong("request line too long")
            self.limits.check_head_size(len(buf))
            self.buf = buf
            return b""
        self.buf = b""
        self.limits.check_head_size(len(head))
        rest = buf[end + 4 :]
        line_end = head.find(b"\r\n")
        line = head[:line_end]
        if b"  " in line:
            # RFC 9112 3: whitespace-delimited parsing is allowed; llhttp does it too
            head = _SPACES.sub(b" ", line) + head[line_end:]
        parser = h11.Connection(h11.SERVER, max_incomplete_event_size=len(head) + 1)
        parser.receive_data(head)
        try:
            event = parser.next_event()
        except h11.RemoteProtocolError as exc:
            raise _translate(exc, head) from None
        if type(event) is not h11.Request:
            raise BadRequest("incomplete request head")
        self.limits.check_target(event.target)
        headers = []
        check = self.limits.check_field
        for name, value in event.headers.raw_items():
            headers.append((name.lower(), value))
            check(len(headers), name, value)
        version = event.http_version.decode("ascii")
        self.upgraded = self.conn.on_request(event.method, event.target, version, headers)
        if self.upgraded:
            self.conn.on_upgrade(rest)
            return b""
        self.body_conn = parser
        return self._feed_body(rest, first=True)

    def _feed_body(self, data: bytes, first: bool = False) -> bytes:
        parser = self.body_conn
        if data:
            parser.receive_data(data)
        conn = self.conn
        while True:
            try:
                event = parser.next_event()
            except h11.RemoteProtocolError as exc:
                raise ProtocolError(str(exc), status=exc.error_status_hint) from None
            kind = type(event)
            if kind is h11.Data:
                conn.on_body(bytes(event.data))
            elif kind is h11.EndOfMessage:
                self.body_conn = None
                conn.on_complete()
                rest, closed = parser.trailing_data
                return bytes(rest)
            else:  # NEED_DATA or PAUSED
                return b""


def _check_line_endings(head: bytes) -> None:
    """Refuse bare CR, bare LF and obs-fold (RFC 9112 2.2, 5.2); h11 tolerates them."""
    crlf = head.count(b"\r\n")
    if head.count(b"\n") != crlf or head.count(b"\r") != crlf:
        raise BadRequest("bare CR or LF in request head")
    if b"\n " in head or b"\n\t" in head:
        raise BadRequest("obsolete line folding in request head")


def _translate(exc: h11.RemoteProtocolError, head: bytes) -> ProtocolError:
    """h11 answers 501 for every coding but chunked; RFC 9112 6.3 wants 400 for some."""
    if exc.error_status_hint == 501:
        codings = [m.group(1).strip() for m in _TE.finditer(head)]
        if codings:
            try:
                check_transfer_encoding(codings)
            except ProtocolError as error:
                return error
    return ProtocolError(str(exc), status=exc.error_status_hint)
