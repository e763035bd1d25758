"""Response bytes: status lines, the default header block, header checks, chunk framing.

Everything that can be computed once is: status lines are cached, the default block (server,
date, configured extra headers) is rebuilt once a second by the server's tick, and header names
the app has used before are remembered as valid.
"""

from __future__ import annotations

import re
from email.utils import formatdate
from http import HTTPStatus

from ..errors import AppProtocolError

STATUS_LINES: dict[int, bytes] = {
    s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode("latin-1")) for s in HTTPStatus
}


def status_line(status: int) -> bytes:
    line = STATUS_LINES.get(status)
    if line is None:
        if type(status) is not int or not 100 <= status <= 999:
            raise AppProtocolError(f"invalid status {status!r}")
        line = STATUS_LINES[status] = b"HTTP/1.1 %d \r\n" % status
    return line


_NAME_OK = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-zA-Z]+").fullmatch
# field-value: visible chars, obs-text, SP and HTAB; no other controls (CR/LF would split).
_VALUE_BAD = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]").search
_known_names: dict[bytes, bool] = {}


def check_header(name: bytes, value: bytes) -> None:
    """Refuse a response header that would corrupt the message (response splitting)."""
    if name not in _known_names:
        if type(name) is not bytes or not _NAME_OK(name):
            raise AppProtocolError(f"invalid response header name {name!r}")
        if len(_known_names) < 1024:
            _known_names[name] = True
    if type(value) is not bytes:
        raise AppProtocolError(f"response header value for {name!r} is not bytes: {value!r}")
    if _VALUE_BAD(value):
        raise AppProtocolError(f"invalid character in response header {name!r}")


# What ``header_info`` found about a response header, so the cycle needs one dict lookup for
# a header the app has sent before: (kind, the formatted line, the Content-Length value).
PLAIN, LENGTH, CODING, CONNECTION, DEFAULT = range(5)
_PAIRS_MAX = 2048
# A response header line longer than this (a cookie, a token) is never cached: such values
# rarely repeat, and a cache full of them would hold megabytes for nothing.
_CACHED_LINE_MAX = 256


def header_info(pair: object, names: set, cache: dict) -> tuple:
    """Validate one ``(name, value)`` response header and classify it (cached per pair).

    A header seen before costs a dict lookup; a new one is checked (token name, no control
    characters in the value) and remembered (short lines only; a full cache starts over), so
    headers that change every request (cookies, ETags) are still checked every time.
    """
    try:
        name, value = pair  # type: ignore[misc]
    except (TypeError, ValueError):
        raise AppProtocolError(f"response header must be a (name, value) pair: {pair!r}") from None
    check_header(name, value)
    lname = name.lower()
    length = None
    if lname == b"content-length":
        if not value.strip().isdigit():
            raise AppProtocolError(f"invalid content-length {value!r}")
        kind, length = LENGTH, int(value)
    elif lname == b"transfer-encoding":
        kind = CODING
    elif lname == b"connection":
        kind = CONNECTION
    elif lname in names:
        kind = DEFAULT
    else:
        kind = PLAIN
    info = (kind, b"%b: %b\r\n" % (name, value), length if kind == LENGTH else lname)
    if type(pair) is tuple and len(info[1]) <= _CACHED_LINE_MAX:
        remember(cache, pair, info, _PAIRS_MAX)
    return info


def remember(cache: dict, key: object, value: object, bound: int) -> None:
    """Cache ``value`` under ``key``; a full cache starts over.

    Starting over (rather than refusing new entries) keeps a long-running worker caching what
    it sends now, not only what it sent first; the bound caps the memory either way.
    """
    if len(cache) >= bound:
        cache.clear()
    cache[key] = value


_NO_BODY_STATUS = frozenset((204, 304))
_HEADS_MAX = 1024


def response_head(status: object, headers: list | tuple, defaults: DefaultHeaders) -> tuple:
    """What an ``http.response.start`` means on the wire, apart from the per-request choices
    (keep-alive, HEAD, HTTP/1.0): ``(status line, the app's header lines, Content-Length or
    None, chunked?, the app asked to close?, default headers the app overrode or None)``.

    Apps send the same status and headers again and again, so the answer is cached per
    ``(status, *headers)`` (bounded; unhashable headers are classified every time). Every
    header is still validated the first time its response is seen.
    """
    key = None
    if type(status) is int:
        try:
            key = (status, *headers)
            info = defaults.heads.get(key)
        except TypeError:  # a list pair: not hashable, so never cached
            key = info = None
        if info is not None:
            return info
    line = STATUS_LINES.get(status) if type(status) is int else None
    if line is None:
        line = status_line(status)
    names = defaults.names
    cache = defaults.pairs
    lines = []
    length = None
    app_close = False
    overridden = None
    small = True  # every line short enough to cache (see _CACHED_LINE_MAX)
    for pair in headers:
        try:
            info = cache.get(pair)
        except TypeError:
            info = None
        if info is None:
            info = header_info(pair, names, cache)
            small = small and len(info[1]) <= _CACHED_LINE_MAX
        kind = info[0]
        if kind == PLAIN:
            lines.append(info[1])
        elif kind == LENGTH:
            if length is not None:
                raise AppProtocolError("more than one content-length")
            length = info[2]
            if status != 204:  # a 204 has no content, and says no length either
                lines.append(info[1])
        elif kind == CONNECTION:
            if b"close" in pair[1].lower():  # type: ignore[index]
                app_close = True
        elif kind == DEFAULT:
            overridden = {info[2]} if overridden is None else overridden | {info[2]}
            lines.append(info[1])
        # CODING: framing is ours, the app's Transfer-Encoding is ignored
    if status < 200:  # type: ignore[operator]
        raise AppProtocolError(f"informational status {status} in http.response.start")
    chunked = length is None
    if status in _NO_BODY_STATUS:
        chunked = False
        length = 0
    info = (line, b"".join(lines), length, chunked, app_close,
            frozenset(overridden) if overridden is not None else None)
    if key is not None and small:
        remember(defaults.heads, key, info, _HEADS_MAX)
    return info


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body, framed in a single bytes object."""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def http_date() -> bytes:
    return formatdate(usegmt=True).encode("ascii")


class DefaultHeaders:
    """The header block sent on every response, rebuilt once a second (Date)."""

    __slots__ = ("block", "date_header", "extra", "heads", "names", "pairs", "server_header")

    def __init__(self, server_header: bool, date_header: bool, extra: tuple) -> None:
        self.server_header = server_header
        self.date_header = date_header
        self.extra = b"".join(b"%b: %b\r\n" % pair for pair in extra)
        # Names the app may override: when it sends one, ours is left out.
        self.names = {b"server"} if server_header else set()
        if date_header:
            self.names.add(b"date")
        self.names.update(name for name, _ in extra)
        self.pairs: dict = {}  # header_info's cache: response headers already validated
        self.heads: dict = {}  # response_head's cache: whole response heads already classified
        self.block = b""
        self.refresh()

    def refresh(self) -> None:
        parts = []
        if self.server_header:
            parts.append(b"server: gworkers\r\n")
        if self.date_header:
            parts.append(b"date: " + http_date() + b"\r\n")
        parts.append(self.extra)
        self.block = b"".join(parts)

    def without(self, names: set) -> bytes:
        """The block minus headers the app set itself (rare: computed, not cached)."""
        lines = self.block.split(b"\r\n")
        kept = [ln for ln in lines if ln and ln.split(b":", 1)[0].lower() not in names]
        return b"".join(ln + b"\r\n" for ln in kept)


def error_response(status: int, message: str = "", keep_alive: bool = False) -> bytes:
    """A small plain-text reply the server writes itself (400, 413, 500, 503, ...)."""
    body = (message or HTTPStatus(status).phrase if status in STATUS_LINES else message).encode(
        "utf-8", "replace"
    )
    return b"%bcontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n%b\r\n%b" % (
        status_line(status),
        len(body),
        b"" if keep_alive else b"connection: close\r\n",
        body,
    )
