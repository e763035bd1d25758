"""httptools (llhttp) adapter: parser callbacks -> on_request / on_body / on_complete.

Only parsing lives here. llhttp is strict about line endings, whitespace and framing; where it
is looser or stricter than ``head.check_head`` (custom methods, version numbers, codings), the
error is translated to the status the h11 adapter gives for the same bytes.

**Chunked bodies are decoded by us** (``chunked.ChunkedDecoder``, the h11 adapter's decoder):
llhttp refuses the whitespace RFC 9112 7.1.1 allows around ``;`` and ``=`` in chunk extensions
(``5; name=value``), and no leniency flag of llhttp changes that. When llhttp has parsed a
chunked request's head, ``on_headers_complete`` stops it; the head's end is found in the bytes
(its first empty line: llhttp refuses a bare CR or LF in a head), and the bytes after it go to
the decoder; after the body a fresh llhttp parser takes the next request. Requests without a
chunked body never reach any of this. The head's end can be found only when the bytes read
before it are known: when the head began in an earlier read and nothing of another request
came before it in this one, or when this read began between requests (each earlier request in
it is its head and a Content-Length body). A chunked request that arrives in the same read as
the end of a previous request's body or head is decoded by llhttp itself, as strictly as llhttp
reads it (whitespace in chunk extensions refused).

**An upgrade nobody takes keeps its body.** llhttp reads every request with ``Upgrade`` and
``Connection: upgrade`` as bodiless: it completes the message at the head's end and stops there
(``HttpParserUpgrade``, whose offset is the head's end). When the connection serves such a
request as plain HTTP (any protocol but an accepted WebSocket), the bytes after the head are
its body by the head's own framing: a Content-Length body is counted off (``LengthBody``), a
chunked one decoded (``ChunkedDecoder``); then the connection closes, as for any upgrade request.
"""

from __future__ import annotations

from typing import Any

import httptools

from ...errors import BadRequest, ProtocolError
from ..fields import is_token
from .chunked import ChunkedDecoder
from .head import check_transfer_encoding, method_error, watched_names
from .limits import Limits

# The request line's bytes besides its target ("GET " + " HTTP/1.1\r\n") and the blank line
# ending the head: the head size counted from callbacks is the size of the head as sent when it
# is written the usual way (one SP after each colon).
_LINE_EXTRA = 17


class _Stop(Exception):
    """Raised from on_message_complete: the connection reads no further request."""


class _Chunked(Exception):
    """Raised from on_headers_complete: the chunked body is ours to decode."""


class LengthBody:
    """A Content-Length body read by us (after an upgrade not taken, where llhttp stopped at
    the head): ``feed`` has the same contract as ``ChunkedDecoder.feed``."""

    __slots__ = ("conn", "left")

    def __init__(self, conn: Any, length: int) -> None:
        self.conn = conn
        self.left = length

    def feed(self, data: bytes) -> bytes | None:
        """Pass body bytes on: ``None`` while the body goes on, else the bytes after it."""
        left = self.left
        if len(data) < left:
            if data:
                self.left = left - len(data)
                self.conn.on_body(data)
            return None
        self.left = 0
        self.conn.on_body(data[:left])
        return data[left:]


# Where a read began (``HttptoolsParser.read_state``): between requests, inside a head, or
# inside a body.
_BETWEEN, _IN_HEAD, _IN_BODY = 0, 1, 2


class HttptoolsParser:
    __slots__ = (
        "buffered",
        "own_body",
        "conn",
        "done",
        "head_size",
        "headers",
        "in_head",
        "limits",
        "line",
        "max_line",
        "safe_head_size",
        "messages",
        "method",
        "watched",
        "on_body",
        "parser",
        "read_messages",
        "read_state",
        "tail",
        "untaken_body",
        "trailers",
        "url",
        "upgraded",
        "watch",
    )

    def __init__(self, conn: Any, config: Any) -> None:
        self.conn = conn
        # llhttp's body callback goes straight to the connection (httptools looks its callbacks
        # up once, when the parser is made): no adapter frame per body chunk
        self.on_body = conn.on_body
        self.parser = self._new_parser()
        self.limits = Limits(config)
        # a body we read ourselves (chunked, or after an upgrade not taken), not llhttp
        self.own_body: ChunkedDecoder | LengthBody | None = None
        # a request body llhttp will skip (an upgrade not taken): its length, or -1 if chunked
        self.untaken_body: int | None = None
        self.read_state = _BETWEEN  # where the read being parsed began
        self.read_messages = 0  # requests begun before it
        self.tail = b""  # the last bytes of a head still incomplete after a read
        self.url = b""
        self.headers: list = []
        # the fields head.read_request and the proxy check look at, collected while parsing so
        # neither walks every header again
        self.watched: list = []
        self.watch = watched_names(config)
        self.in_head = False
        self.head_size = 0  # the head as counted from the callbacks so far
        self.buffered = 0  # bytes of chunks that arrived after the head began
        self.messages = 0
        self.trailers = 0
        self.line = b""  # bytes of a request line not yet parsed: names a refused method
        self.upgraded = False
        self.done = False
        self.method: bytes | None = None  # a refused method still arriving
        limits = self.limits
        self.safe_head_size = min(
            limits.field_size - 2 if limits.field_size else 1 << 62,
            limits.head or 1 << 62,
            5 * limits.fields + _LINE_EXTRA if limits.fields else 1 << 62,
        )
        self.max_line = limits.line or 1 << 62

    def _new_parser(self) -> httptools.HttpRequestParser:
        parser = httptools.HttpRequestParser(self)
        # llhttp refuses HTTP/1.2; RFC 9112 2.3 wants it served as 1.1 (head.read_request)
        parser.set_dangerous_leniencies(lenient_version=True)
        return parser

    def feed(self, data: bytes) -> None:
        while True:
            if self.own_body is not None:
                data = self._feed_own_body(data)
                if not data:
                    return
            if self.done:
                if self.method is not None:
                    self._refuse_method(self.method + data)
                return
            began = self.in_head
            busy = bool(self.url)  # a request (its head or body) was in progress
            if not busy:
                # the start of a request line, kept (not copied) in case llhttp refuses its method
                line = self.line
                self.line = data if not line else line[:64] + data[:64]
            messages = self.messages
            self.read_state = _IN_HEAD if began else _IN_BODY if busy else _BETWEEN
            self.read_messages = messages
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade as exc:
                if self.upgraded:
                    self.conn.on_upgrade(data[exc.args[0] :])
                elif self.untaken_body is not None:
                    data = self._take_untaken_body(data[exc.args[0] :])
                    continue
            except httptools.HttpParserCallbackError as exc:
                cause = exc.__context__
                if isinstance(cause, _Chunked):
                    # the bytes after a chunked request's head: its body is ours to decode
                    data = self._take_chunked(data, messages)
                    continue
                if isinstance(cause, _Stop):
                    return
                if isinstance(cause, ProtocolError):
                    raise cause from None
                raise
            except httptools.HttpParserInvalidMethodError:
                if self.messages > messages and (self.messages > messages + 1 or began or busy):
                    # The refused request began inside this chunk, behind another one, and
                    # llhttp does not say where: its method cannot be told from garbage.
                    raise BadRequest("invalid method") from None
                self._refuse_method(self.line)
            except httptools.HttpParserError as exc:
                raise self._translate(exc) from None
            if self.in_head:
                # a head is incomplete: its last bytes, in case it ends a chunked request's head
                self.tail = (self.tail + data)[-3:] if began else data[-3:]
                if began and messages == self.messages:
                    # The head began before this chunk and is still incomplete: llhttp keeps a
                    # field it has not finished in memory, so count what arrives (a slow
                    # endless header).
                    self.buffered += len(data)
                    self.limits.check_head_size(self.buffered)
            return

    def _feed_own_body(self, data: bytes) -> bytes:
        """Read a body of ours; once it ends, a fresh llhttp parser takes what follows."""
        rest = self.own_body.feed(data)
        if rest is None:
            return b""
        self.own_body = None
        self.url = b""
        self.parser = self._new_parser()
        if not self.conn.on_complete():
            # RFC 9112 9.6: nothing after a request that closes the connection is processed
            self.done = True
            return b""
        return rest

    def _take_chunked(self, data: bytes, messages: int) -> bytes:
        """llhttp stopped at the end of a chunked request's head (``on_headers_complete``
        said it could be found): the decoder gets the bytes after it."""
        if self.read_state == _IN_HEAD:
            # the head began in an earlier read and ends in this one, at its first empty line
            tail = self.tail
            end = (tail + data).find(b"\r\n\r\n") + 4 - len(tail)
        else:
            end = _head_end(data, self.messages - messages)
        self.own_body = ChunkedDecoder(self.conn, self.limits)
        return data[end:]

    def _take_untaken_body(self, rest: bytes) -> bytes:
        """llhttp stopped at the end of an upgrade request's head and completed nothing (see
        ``on_message_complete``): ``rest`` begins the body the connection is waiting for."""
        length, self.untaken_body = self.untaken_body, None
        if length < 0:
            self.own_body = ChunkedDecoder(self.conn, self.limits)
        else:
            self.own_body = LengthBody(self.conn, length)
        return rest

    def _refuse_method(self, line: bytes) -> None:
        """llhttp stops at the first byte no method it knows has; the answer (501 for an
        unknown token, 400 for garbage) needs the whole method, which may not be here yet."""
        line = line.lstrip(b"\r\n")[:128]
        end = line.find(b" ")
        word = line if end < 0 else line[:end]
        if end < 0 and len(word) < 64 and (not word or is_token(word)):
            self.done = True
            self.method = line
            self.in_head = True  # a head is still arriving: the header timeout applies
            return
        raise method_error(word, line) from None

    def _translate(self, exc: Exception) -> ProtocolError:
        reason = str(exc)
        if "HTTP version" in reason:
            return BadRequest(reason)  # not HTTP/DIGIT.DIGIT: lenient_version takes the rest
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
        self.head_size = _LINE_EXTRA
        self.buffered = 0
        self.messages += 1
        self.url = b""
        self.headers = []
        self.watched = []

    def on_url(self, url: bytes) -> None:
        self.head_size += len(url)
        url = self.url + url if self.url else url
        self.url = url
        if len(url) > self.max_line:
            self.limits.check_target(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp strips leading whitespace only; RFC 9112 5.1 drops both sides
        if value and value[-1] in b" \t":
            value = value.rstrip(b" \t")
        if self.in_head:
            name = name.lower()
            field = (name, value)
            headers = self.headers
            headers.append(field)
            if name in self.watch:
                self.watched.append(field)
            size = self.head_size = self.head_size + len(name) + len(value) + 4
            # The limits in one comparison: while the head so far is within ``safe_head_size``
            # no field can be too large, the head is not, and (each field adding at least 5
            # bytes) there are not too many fields. Past it, Limits checks each field exactly.
            if size > self.safe_head_size:
                limits = self.limits
                limits.check_field(len(headers), name, value)
                limits.check_head_size(size)
        else:
            # a trailer field (llhttp reports them here too): checked, never added to the
            # headers the app already holds
            self.trailers += 1
            self.limits.check_field(self.trailers, name, value)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.trailers = 0
        self.line = b""
        parser = self.parser
        watched = self.watched
        # llhttp reads "GET /" as HTTP/0.9, which check_head answers 505, as the h11 adapter does
        self.upgraded = self.conn.on_request(
            parser.get_method(), self.url, parser.get_http_version(), self.headers, watched
        )
        if self.upgraded or len(watched) < 2:
            return  # (a head whose only watched field is Host has no body and no upgrade)
        if len(watched) > 2 and parser.should_upgrade():
            # (an upgrade needs Host, Upgrade and Connection: most requests skip the call)
            # llhttp will stop at this head as if it had no body (the module docstring)
            self.untaken_body = _declared_body(watched)
            return
        # on_request accepted the framing: a Transfer-Encoding field means a chunked body
        for name, _ in watched:
            if name == b"transfer-encoding":
                state = self.read_state
                if state == _BETWEEN or state == _IN_HEAD and self.messages == self.read_messages:
                    raise _Chunked  # its head's end can be found: the body is ours
                break

    def on_message_complete(self) -> None:
        self.url = b""
        if self.upgraded or self.untaken_body is not None:
            return  # (an upgrade's body, if any, is read by us: _take_untaken_body)
        if not self.conn.on_complete():
            # RFC 9112 9.6: nothing after a request that closes the connection is processed
            self.done = True
            raise _Stop


def _head_end(data: bytes, count: int) -> int:
    """Where the head of the ``count``-th request begun in ``data`` ends, for a read that began
    between requests: each request before it in the read is its head (which ends at its first
    empty line: llhttp refuses a bare CR or LF there) and a Content-Length body (a chunked one
    would have been ours), and empty lines before a request line are skipped (RFC 9112 2.2)."""
    pos = 0
    while True:
        while data[pos] in b"\r\n":
            pos += 1
        end = data.find(b"\r\n\r\n", pos) + 4
        count -= 1
        if not count:
            return end
        pos = end + _content_length(data[pos:end])


def _content_length(head: bytes) -> int:
    """The Content-Length of a head llhttp and ``head.check_head`` accepted (at most one such
    field, digits only), or 0."""
    at = head.lower().find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    at += 17
    return int(head[at : head.find(b"\r\n", at)].strip(b" \t"))


def _declared_body(watched: list) -> int | None:
    """The body a head ``check_head`` accepted declares: -1 for chunked, its Content-Length,
    or None when it has none."""
    length = None
    for name, value in watched:
        if name == b"transfer-encoding":
            return -1
        if name == b"content-length":
            length = int(value) or None
    return length
