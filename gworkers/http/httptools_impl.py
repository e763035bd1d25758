"""httptools (llhttp) adapter: parser callbacks -> on_request / on_body / on_complete.

Only parsing lives here. llhttp is strict about line endings, whitespace and framing; where it
is looser or stricter than ``head.check_head`` (custom methods, version numbers, codings), the
error is translated to the status the h11 adapter gives for the same bytes.
"""

from __future__ import annotations

from typing import Any

import httptools

from ..errors import BadRequest, ProtocolError, VersionNotSupported
from .head import check_transfer_encoding, method_error
from .limits import Limits


class HttptoolsParser:
    __slots__ = (
        "conn",
        "head_size",
        "headers",
        "in_head",
        "limits",
        "line",
        "parser",
        "url",
        "upgraded",
    )

    def __init__(self, conn: Any, config: Any) -> None:
        self.conn = conn
        self.parser = httptools.HttpRequestParser(self)
        self.limits = Limits(config)
        self.url = b""
        self.headers: list = []
        self.in_head = False
        self.head_size = 0
        self.line = b""  # bytes of a request line not yet parsed: names a refused method
        self.upgraded = False

    def feed(self, data: bytes) -> None:
        if self.in_head:
            self.head_size += len(data)
            self.limits.check_head_size(self.head_size)
        elif not self.url and len(self.line) < 64:
            self.line += data[:64]
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            if self.upgraded:
                self.conn.on_upgrade(data[exc.args[0] :])
            # else: an upgrade we do not serve (h2c, ...): the request was answered as plain
            # HTTP/1.1 with ``connection: close``, and the rest of the bytes are not ours.
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, ProtocolError):
                raise cause from None
            raise
        except httptools.HttpParserInvalidMethodError:
            line = self.line.lstrip(b"\r\n")
            raise method_error(line.split(b" ", 1)[0] if b" " in line else b"\0") from None
        except httptools.HttpParserError as exc:
            raise self._translate(exc) from None

    def _translate(self, exc: Exception) -> ProtocolError:
        reason = str(exc)
        if "HTTP version" in reason:
            return VersionNotSupported(reason)
        codings = [v for n, v in self.headers if n == b"transfer-encoding"]
        if codings and not any(n == b"content-length" for n, _ in self.headers):
            try:
                check_transfer_encoding(codings)
            except ProtocolError as error:
                return error
        return BadRequest(reason)

    # ------------------------------------------------------------------ llhttp callbacks
    def on_message_begin(self) -> None:
        self.in_head = True
        self.head_size = 0
        self.url = b""
        self.headers = []

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.limits.check_target(self.url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp strips leading whitespace only; RFC 9112 5.1 drops both sides
        if value and value[-1] in b" \t":
            value = value.rstrip(b" \t")
        headers = self.headers
        headers.append((name.lower(), value))
        self.limits.check_field(len(headers), name, value)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.line = b""
        parser = self.parser
        self.upgraded = self.conn.on_request(
            parser.get_method(), self.url, parser.get_http_version(), self.headers
        )

    def on_body(self, body: bytes) -> None:
        self.conn.on_body(body)

    def on_message_complete(self) -> None:
        self.url = b""
        if not self.upgraded:
            self.conn.on_complete()
