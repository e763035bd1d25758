"""h11 adapter (the H11Worker's parser): request bytes -> on_request / on_body / on_complete.

h11 is the parser; responses are written by the shared cycle. Per request:

- **Head framing is ours.** The end of the head is found here in linear time however the bytes
  arrive (one byte at a time included), and ``limits.Limits`` bounds the request line (414) and
  the head (431) while it is incomplete. A bare CR, a bare LF or obs-fold anywhere in the head is
  refused (400) as the bytes arrive; h11 would accept all three. Empty lines before the request
  line are skipped (RFC 9112 2.2).
- **h11 parses the complete head.** A fresh ``h11.Connection(h11.SERVER)`` is given exactly the
  head, and its ``Request`` event supplies the method, target, version and field lines (names
  lowercased here for the scope). h11 checks the request-line grammar (token method, VCHAR
  target, ``HTTP/DIGIT.DIGIT``) and each field line (token name, colon, OWS, value); it refuses
  differing Content-Lengths, codings other than ``chunked``, a missing or repeated Host.
- **Cheap pre-checks where h11 is laxer than RFC 9112 and llhttp**, on the complete head: one
  regex search for control bytes (h11's field-value rule, any byte but NUL and whitespace, lets
  0x01-0x08, 0x0e-0x1f and DEL through: 400), and two ``find`` calls on the lowercased head for
  the Content-Length and Transfer-Encoding lines. A request line with runs of SP is handed to h11
  with single SP (RFC 9112 3 allows splitting on runs; llhttp does), and a two-word line as an
  explicit ``HTTP/0.9`` one (505, as from llhttp, where h11 would say 400).
- **Framing fields h11 would normalise, and heads it refuses, get the connection's answer.** h11
  merges two identical Content-Length lines and a ``3, 3`` list into one value, refuses a
  Content-Length longer than 20 digits even when leading zeros make it long, lowercases the
  Transfer-Encoding value, answers every coding but a single ``chunked`` 501 (RFC 9112 6.3 wants
  400 when chunked is not final), and checks Host before the method llhttp refuses first. Such a
  head (more than one Content-Length or Transfer-Encoding line, a Content-Length that is not
  digits, a coding other than ``chunked``), and any head h11 refuses, goes to ``_refuse``: h11
  parses it again with its Host, Content-Length and Transfer-Encoding names masked, so it checks
  only the syntax (400), then ``head.read_request`` (``check_head``, ``check_transfer_encoding``)
  picks the status, in the order the connection applies it to a head llhttp parsed. A
  Content-Length of many leading zeros is shortened for h11 only; the app sees every field value
  as sent (``Transfer-Encoding: Chunked`` stays ``Chunked``).
- **Bodies.** A Content-Length body is counted off the stream here: once h11 has parsed the
  head and the connection has checked its framing, counting is all there is to do, and reading
  the same bytes back as h11 ``Data`` events cost about 10 us a request. A chunked body is
  decoded by ``chunked.ChunkedDecoder`` (RFC 9112 7.1, shared with the httptools adapter).
  h11's chunked reader disagrees with RFC 9112 inside the chunk-size lines and trailers, which
  it consumes and discards, so no pre-check could catch it without decoding the framing
  itself: it takes any bytes after ``;`` up to CRLF as an extension (``chunk_ext_bare_cr``,
  ``chunk_ext_ctl``, ``chunk_ext_empty_name``, ``chunk_ext_unquoted_space`` of the
  tests/requests corpus), accepts a control byte in a trailer value (``chunk_trailer_ctl``),
  refuses a valid chunk size of more than 20 hex digits made long by leading zeros
  (``chunked_size_many_leading_zeros``), and does not count trailer fields against
  ``limit_request_fields`` / ``limit_request_field_size``.

Both parsers answer every case of the tests/requests corpus alike; what llhttp accepts beyond
the grammar is accepted here too and listed in tests/requests/README.md.
"""

from __future__ import annotations

import re
from typing import Any

import h11

from ...errors import BadRequest, ProtocolError, URITooLong
from .chunked import ChunkedDecoder
from .head import read_request
from .limits import Limits

# request-line = method SP request-target SP HTTP-version (RFC 9112 3); recipients may split on
# runs of SP (3), as llhttp does. Two words is an HTTP/0.9 simple request. Used to rewrite such
# lines for h11 and to find the target of a line that may be too long.
_LINE3 = re.compile(rb"([^ ]+) +([^ ]+) +([^ ]+)")
_LINE2 = re.compile(rb"([^ ]+) +([^ ]+)")
# How a request target can begin (RFC 9112 3.2, as llhttp reads a URL's first bytes): a path,
# an asterisk, or an absolute URI's scheme. A two-word line whose second word is none of these
# (``GET HTTP/1.1``) lacks its target: a malformed line (400), not an HTTP/0.9 request (505).
_TARGET_START = re.compile(rb"[/*]|[A-Za-z]+://")
# Control bytes but HTAB, CR and LF (those are checked as line endings): h11's field-value rule
# ``[^\x00\s]`` lets them through
_CTL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# The field lines whose values h11 interprets (their names are masked for it in _refuse)
_SEMANTIC = re.compile(rb"\r\n(host|content-length|transfer-encoding):", re.IGNORECASE)
_CL_MAX_DIGITS = 20  # h11 refuses longer Content-Length values
_VERSIONS = {b"1.1": "1.1", b"1.0": "1.0"}
# a request line's bytes beyond its target: the longest known method, two SP, the version
_LINE_SLACK = 32


class H11Parser:
    __slots__ = (
        "body",
        "buf",
        "chunked",
        "conn",
        "done",
        "limits",
        "line_done",
        "upgraded",
    )

    def __init__(self, conn: Any, config: Any) -> None:
        self.conn = conn
        self.limits = Limits(config)
        self.buf: bytes | bytearray = b""  # head bytes not yet complete
        self.line_done = False  # the request line of that incomplete head is complete
        self.body = 0  # Content-Length body bytes still to come
        self.chunked: ChunkedDecoder | None = None  # the chunked body being decoded
        self.upgraded = False
        self.done = False  # the connection reads no further request

    @property
    def in_head(self) -> bool:
        return self.chunked is None and not self.body and bool(self.buf)

    def feed(self, data: bytes) -> None:
        while data and not self.upgraded and not self.done:
            if self.chunked is not None:
                data = self._feed_chunked(data)
            elif self.body:
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
                    _check_target(limits, bytes(buf[:line_end]))
            limits.check_head_size(len(buf))
            if not self.buf:
                self.buf = bytearray(buf)
            return b""
        if self.buf:
            buf = bytes(buf)
        self.buf = b""
        self.line_done = False
        _check_line_endings(buf, start, end + 4)
        end += 4
        if end == len(buf):
            return self._head(buf, b"")
        return self._head(buf[:end], buf[end:])

    def _head(self, head: bytes, rest: bytes) -> bytes:
        """Parse a complete head (request line to the empty line) with h11; pass it on."""
        line_end = head.find(b"\r\n")
        line = head[:line_end]
        limits = self.limits
        if limits.line and line_end > limits.line:
            _check_target(limits, line)
        limits.check_head_size(len(head))
        if line.count(b" ") != 2 or b"  " in line:
            head = _request_line_for_h11(line) + head[line_end:]
        if _CTL.search(head) is not None:
            raise BadRequest("control character in request head")
        framing = _framing_fields(head)
        if framing is None:
            return self._refuse(head)
        head, cl, te, shorter = framing
        parser = h11.Connection(h11.SERVER)
        parser.receive_data(head)
        try:
            event = parser.next_event()
        except h11.RemoteProtocolError:
            return self._refuse(head)
        headers = _headers(limits, event, len(head))
        if shorter is not None or te is not None and te != b"chunked":
            _as_sent(headers, te, shorter)
        version = event.http_version
        self.upgraded = self.conn.on_request(
            event.method, event.target, _VERSIONS.get(version) or version.decode(), headers
        )
        if self.upgraded:
            self.conn.on_upgrade(rest)
            return b""
        # on_request applied head.check_head: the framing is a single chunked or one
        # Content-Length of digits by now
        if te is not None:
            self.chunked = ChunkedDecoder(self.conn, limits)
            return self._feed_chunked(rest)
        if cl is not None and int(cl):
            self.body = int(cl)
            return self._feed_length(rest)
        return self._complete(rest)

    def _refuse(self, head: bytes) -> bytes:
        """Answer a head h11 refuses, or whose framing fields it would merge, as the connection
        would: h11 parses it again with its Host, Content-Length and Transfer-Encoding lines
        renamed (one Host added last), so only a syntax error stops it; the real fields then go
        through ``head.read_request``, which raises the status to answer with."""
        masked = []
        lines = []
        for match in _SEMANTIC.finditer(head):
            lines.append(head.count(b"\r\n", 0, match.start()))
            masked.append(match.group(1).lower())
        text = _SEMANTIC.sub(lambda m: b"\r\n" + b"x" * len(m.group(1)) + b":", head)
        parser = h11.Connection(h11.SERVER)
        parser.receive_data(text[:-2] + b"Host: x\r\n\r\n")
        try:
            event = parser.next_event()
        except h11.RemoteProtocolError as exc:
            raise ProtocolError(str(exc), status=exc.error_status_hint) from None
        headers = _headers(self.limits, event, len(head), 1)
        for line, name in zip(lines, masked, strict=True):
            # the CRLF before a field line is the line's number of CRLFs: its header index
            headers[line] = (name, headers[line][1])
        version = event.http_version
        read_request(
            event.method, event.target, _VERSIONS.get(version) or version.decode(), headers
        )
        raise BadRequest("request head refused by h11")

    # ------------------------------------------------------------------ bodies
    def _feed_length(self, data: bytes) -> bytes:
        """Count a Content-Length body off the stream.

        h11 would hand the same bytes back as Data events at about 10 us a request; once the
        head is parsed and its framing checked, counting is all there is to do.
        """
        left = self.body
        n = len(data)
        if n < left:
            if not n:
                return b""
            self.body = left - n
            self.conn.on_body(data)
            return b""
        self.body = 0
        self.conn.on_body(data if n == left else data[:left])
        return self._complete(data[left:])

    def _feed_chunked(self, data: bytes) -> bytes:
        """Decode a chunked body (gworkers.http.chunked); what follows it is the next request."""
        rest = self.chunked.feed(data)
        if rest is None:
            return b""
        self.chunked = None
        return self._complete(rest)

    def _complete(self, rest: bytes) -> bytes:
        if not self.conn.on_complete():
            # RFC 9112 9.6: nothing after a request that closes the connection is processed
            self.done = True
            return b""
        return rest


def _framing_fields(head: bytes) -> tuple[bytes, bytes | None, bytes | None, tuple | None] | None:
    """``(head for h11, Content-Length, Transfer-Encoding, (Content-Length as sent, as given
    to h11) or None)``, or None for a head whose framing h11 would normalise or refuse
    differently from the connection (``_refuse`` answers it instead).

    The fields are found in the lowercased head: no obs-fold and no bare CR or LF are left, so
    each CRLF starts a field line.
    """
    low = head.lower()
    cl = te = None
    shorter = None
    at = low.find(b"\r\ncontent-length:")
    if at >= 0:
        if low.find(b"\r\ncontent-length:", at + 2) >= 0:
            return None  # two lines: h11 would merge equal ones
        cl = _value(head, at + 17)
    at = low.find(b"\r\ntransfer-encoding:")
    if at >= 0:
        te = _value(head, at + 20)
        if te.lower() != b"chunked" or low.find(b"\r\ntransfer-encoding:", at + 2) >= 0:
            return None  # h11 would answer 501 for every other coding
    if cl is not None:
        if not cl.isdigit():
            return None  # a list (h11 would merge it), or not digits
        if len(cl) > _CL_MAX_DIGITS:
            short = cl.lstrip(b"0") or b"0"
            if len(short) > _CL_MAX_DIGITS:
                return None
            shorter = (cl, short)
            at = head.find(cl, low.find(b"\r\ncontent-length:"))
            head = head[:at] + short + head[at + len(cl) :]
    return head, cl, te, shorter


def _check_target(limits: Limits, line: bytes) -> None:
    """414 for a request line whose target is over ``limit_request_line``."""
    match = _LINE3.fullmatch(line) or _LINE2.fullmatch(line)
    if match:
        limits.check_target(match.group(2))


def _request_line_for_h11(line: bytes) -> bytes:
    """A request line with runs of SP, as h11 reads it: single SP (RFC 9112 3 lets a recipient
    split on runs, llhttp does); two words as an explicit HTTP/0.9 line (check_head answers
    505, as for llhttp) when the second word can begin a request target, else 400 (the target
    is missing: ``GET HTTP/1.1``). Anything else is left as is for h11 to refuse."""
    match = _LINE3.fullmatch(line)
    if match is not None:
        return b" ".join(match.groups())
    match = _LINE2.fullmatch(line)
    if match is not None:
        if _TARGET_START.match(match.group(2)) is None:
            raise BadRequest("malformed request line: no request target")
        return b" ".join(match.groups()) + b" HTTP/0.9"
    return line


def _headers(limits: Limits, event: h11.Request, head_size: int, extra: int = 0) -> list:
    """The scope's headers, ``(lowercased name, value)``, from h11's Request event, within
    ``limit_request_fields`` and ``limit_request_field_size`` (431); ``extra`` fields at the end
    were added for h11 and are not counted. No field can be over the size limit when the whole
    head is not, so the common head skips the per-field loop."""
    headers = [(name.lower(), value) for name, value in event.headers.raw_items()]
    if extra:
        del headers[-extra:]
    fields = limits.fields
    size = limits.field_size
    if fields and len(headers) > fields or size and head_size > size:
        check = limits.check_field
        for count, (name, value) in enumerate(headers, 1):
            check(count, name, value)
    return headers


def _value(head: bytes, start: int) -> bytes:
    """The value of the field line whose colon is at ``head[start - 1]``, without OWS."""
    return head[start : head.find(b"\r\n", start)].strip(b" \t")


def _as_sent(headers: list, te: bytes | None, shorter: tuple | None) -> None:
    """Put back the framing values h11 normalised: a Transfer-Encoding coding it lowercased, a
    Content-Length whose leading zeros were cut for it."""
    for i, (name, _) in enumerate(headers):
        if name == b"transfer-encoding" and te is not None:
            headers[i] = (name, te)
        elif name == b"content-length" and shorter is not None:
            headers[i] = (name, shorter[0])


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
