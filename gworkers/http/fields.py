"""HTTP fields, whatever protocol carries them: the RFC 9110 token set, response header checks,
the classification of an ``http.response.start`` into a cached ``ResponseHead``, and the default
header block (server, date, configured extras).

Apps send the same status and headers again and again, so a whole head is classified once per
``(status, *headers)`` and single header pairs once each (bounded caches that start over when
full); a header seen for the first time is always validated.
"""

from __future__ import annotations

import re
from email.utils import formatdate

from ..errors import AppProtocolError
from .sink import ResponseHead

# tchar (RFC 9110 5.6.2): the bytes of a token (field names, methods, transfer codings).
TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_NAME_OK = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-zA-Z]+").fullmatch
# field-value: visible chars, obs-text, SP and HTAB; no other controls (CR/LF would split).
_VALUE_BAD = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]").search
# Responses that never carry content (RFC 9110 15.3.5, 15.4.5); HEAD answers are the third case.
NO_BODY_STATUS = frozenset((204, 304))

_known_names: dict[bytes, bool] = {}


def is_token(value: bytes) -> bool:
    return bool(value) and all(c in TCHAR for c in value)


def check_status(status: object) -> None:
    if type(status) is not int or not 100 <= status <= 999:
        raise AppProtocolError(f"invalid status {status!r}")


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


# What ``header_info`` found about a response header: (kind, the lower-cased name, the
# Content-Length value or None).
PLAIN, LENGTH, CODING, CONNECTION, DEFAULT = range(5)
_PAIRS_MAX = 2048
_HEADS_MAX = 1024
# A header longer than this (a cookie, a token) is never cached, nor is a head holding one: such
# values rarely repeat, and a cache full of them would hold megabytes for nothing.
_CACHED_PAIR_MAX = 250


def remember(cache: dict, key: object, value: object, bound: int) -> None:
    """Cache ``value`` under ``key``; a full cache starts over.

    Starting over (rather than refusing new entries) keeps a long-running worker caching what
    it sends now, not only what it sent first; the bound caps the memory either way.
    """
    if len(cache) >= bound:
        cache.clear()
    cache[key] = value


def header_info(pair: object, names: set, cache: dict) -> tuple:
    """Validate one ``(name, value)`` response header and classify it (cached per short pair)."""
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
    info = (kind, lname, length)
    if type(pair) is tuple and len(name) + len(value) <= _CACHED_PAIR_MAX:
        remember(cache, pair, info, _PAIRS_MAX)
    return info


def response_head(status: object, headers: list | tuple, defaults: DefaultHeaders) -> ResponseHead:
    """The ``ResponseHead`` of an ``http.response.start`` (validated, cached when it can be)."""
    key = None
    if type(status) is int:
        try:
            key = (status, *headers)
            head = defaults.heads.get(key)
        except TypeError:  # a list pair: not hashable, so never cached
            key = head = None
        if head is not None:
            return head
    check_status(status)
    names = defaults.names
    cache = defaults.pairs
    kept = []
    length = None
    close = False
    overridden = None
    small = True  # every pair short enough to cache (see _CACHED_PAIR_MAX)
    for pair in headers:
        try:
            info = cache.get(pair)
        except TypeError:
            info = None
        if info is None:
            info = header_info(pair, names, cache)
            small = small and len(pair[0]) + len(pair[1]) <= _CACHED_PAIR_MAX  # type: ignore[index]
        kind = info[0]
        if kind == PLAIN:
            kept.append(pair)
        elif kind == LENGTH:
            if length is not None:
                raise AppProtocolError("more than one content-length")
            length = info[2]
            if status != 204:  # a 204 has no content, and says no length either
                kept.append(pair)
        elif kind == CONNECTION:
            if b"close" in pair[1].lower():  # type: ignore[index]
                close = True
        elif kind == DEFAULT:
            overridden = {info[1]} if overridden is None else overridden | {info[1]}
            kept.append(pair)
        # CODING: framing is the protocol's; the app's Transfer-Encoding is ignored
    if status < 200:  # type: ignore[operator]
        raise AppProtocolError(f"informational status {status} in http.response.start")
    content = status not in NO_BODY_STATUS
    if not content:
        length = 0
    head = ResponseHead(status, tuple(kept), length, close,  # type: ignore[arg-type]
                        frozenset(overridden) if overridden is not None else None, content)
    if key is not None and small:
        remember(defaults.heads, key, head, _HEADS_MAX)
    return head


def http_date() -> bytes:
    return formatdate(usegmt=True).encode("ascii")


class DefaultHeaders:
    """The header block sent on every response, rebuilt once a second (Date), and the caches of
    validated response headers and heads.

    ``block`` is the HTTP/1.1 rendering (``name: value`` lines).
    """

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

    def without(self, names: frozenset) -> bytes:
        """The block minus headers the app set itself (rare: computed, not cached)."""
        lines = self.block.split(b"\r\n")
        kept = [ln for ln in lines if ln and ln.split(b":", 1)[0].lower() not in names]
        return b"".join(ln + b"\r\n" for ln in kept)
