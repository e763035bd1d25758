"""An HTTP/2 request's header block read into what the ASGI scope needs (RFC 9113 8.3, 8.2).

One pass over the decoded fields: pseudo-header fields first, each once, only the request ones;
field names lower-case tokens; no connection-specific fields (``connection``, ``keep-alive``,
``proxy-connection``, ``transfer-encoding``, ``upgrade``; ``te`` only as ``trailers``); values
without NUL, CR, LF or surrounding whitespace. A request that breaks these is malformed:
``Malformed`` (the stream is reset with PROTOCOL_ERROR). Gunicorn's request limits apply as on
HTTP/1.1, from the same ``Limits``: too many or too large fields 431, a long ``:path`` 414, and
a declared body past ``limit_request_body`` 413 (``ProtocolError`` with its status: the stream
is answered with it). Split ``cookie`` fields are joined with ``; `` (RFC 9113 8.2.3), so an app
reading the first ``cookie`` header sees every cookie.
"""

from __future__ import annotations

import re

from ...errors import ContentTooLarge, NotImplementedCoding
from ..h1.head import METHODS
from ..h1.limits import Limits

_FORBIDDEN = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                        b"upgrade"))
_NAME_OK = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+").fullmatch
_VALUE_BAD = re.compile(rb"[\x00\r\n]|^[ \t]|[ \t]$").search
_PATH_BAD = re.compile(rb"[\x00-\x20\x7f]").search


class Malformed(Exception):
    """A malformed request (RFC 9113 8.1.1): a stream error of type PROTOCOL_ERROR."""


class Request:
    """The request's pseudo-header fields and its regular fields, checked. Not changed once
    read: the connection reuses it for a repeated header block (connection.py)."""

    __slots__ = ("authority", "content_length", "cookies", "expect_continue", "fields", "host",
                 "method", "path", "protocol", "te_trailers")

    def __init__(self) -> None:
        self.method = b""
        self.path = b""
        self.authority: bytes | None = None
        self.protocol: bytes | None = None  # :protocol of an extended CONNECT (RFC 8441)
        self.fields: list[tuple[bytes, bytes]] = []
        self.content_length: int | None = None
        self.te_trailers = False
        self.expect_continue = False
        self.host: bytes | None = None
        self.cookies: list[bytes] | None = None  # split cookie fields, joined at the end


def read_request(headers: list, limits: Limits, body_limit: int) -> Request:
    """Check the decoded header block of a request (see the module docstring)."""
    request = Request()
    scheme = None
    regular = False
    count = 0
    for name, value in headers:
        if name[:1] == b":":
            if regular:
                raise Malformed("pseudo-header field after a regular field")
            scheme = _pseudo(request, name, value, scheme)
            continue
        regular = True
        count += 1
        limits.check_field(count, name, value)
        _regular(request, name, value)
    _check_pseudo(request, scheme, request.host, limits)
    cookies = request.cookies
    if cookies is not None:
        request.fields.append((b"cookie", cookies[0] if len(cookies) == 1
                               else b"; ".join(cookies)))
    if body_limit and request.content_length is not None and request.content_length > body_limit:
        raise ContentTooLarge("request body too large")
    return request


def check_trailers(headers: list) -> None:
    """A request's trailer fields (RFC 9113 8.1): no pseudo-header fields, and names and
    values as in the head (8.2.1, 8.2.2). Raises ``Malformed``."""
    for name, value in headers:
        if name[:1] == b":":
            raise Malformed("pseudo-header field in trailers")
        if not _NAME_OK(name) or _VALUE_BAD(value) or name in _FORBIDDEN:
            raise Malformed(f"invalid trailer field {name!r}")


def _pseudo(request: Request, name: bytes, value: bytes, scheme: bytes | None) -> bytes | None:
    """One pseudo-header field, each at most once; returns ``:scheme`` as seen so far."""
    if name == b":method" and not request.method:
        request.method = value
    elif name == b":path" and not request.path:
        request.path = value
    elif name == b":scheme" and scheme is None:
        scheme = value
    elif name == b":authority" and request.authority is None:
        request.authority = value
    elif name == b":protocol" and request.protocol is None:
        request.protocol = value
    else:
        raise Malformed(f"unexpected or repeated pseudo-header field {name!r}")
    if _VALUE_BAD(value):
        raise Malformed(f"invalid value in {name!r}")
    return scheme


def _regular(request: Request, name: bytes, value: bytes) -> None:
    """One regular field: checked, then kept (cookies aside, joined at the end)."""
    if not _NAME_OK(name):
        raise Malformed(f"invalid field name {name!r}")
    if _VALUE_BAD(value):
        raise Malformed(f"invalid value in field {name!r}")
    if name in _FORBIDDEN:
        raise Malformed(f"connection-specific field {name!r}")
    if name == b"cookie":
        if request.cookies is None:
            request.cookies = []
        request.cookies.append(value)
        return
    if name == b"te":
        if value.lower() != b"trailers":
            raise Malformed("te other than trailers")
        request.te_trailers = True
    elif name == b"content-length":
        if not value.isdigit() or request.content_length is not None \
                and request.content_length != int(value):
            raise Malformed("invalid content-length")
        request.content_length = int(value)
    elif name == b"host":
        request.host = value
    elif name == b"expect" and value.lower() == b"100-continue":
        request.expect_continue = True
    request.fields.append((name, value))


def _check_pseudo(request: Request, scheme: bytes | None, host: bytes | None,
                  limits: Limits) -> None:
    method = request.method
    if not method:
        raise Malformed("no :method")
    if method == b"CONNECT":
        if request.protocol is None:
            # RFC 9113 8.5: :authority only, no :scheme and no :path
            if request.authority is None or scheme is not None or request.path:
                raise Malformed("CONNECT with :scheme or :path, or without :authority")
            raise NotImplementedCoding("CONNECT tunnels are not served")
    elif request.protocol is not None:
        raise Malformed(":protocol on a request other than CONNECT")
    if method not in METHODS:
        raise NotImplementedCoding(f"method {method!r} is not served")
    if method != b"CONNECT" or request.protocol is not None:
        path = request.path
        if not path or scheme is None:
            raise Malformed("no :path or :scheme")
        if path[:1] != b"/" and not (path == b"*" and method == b"OPTIONS"):
            raise Malformed("invalid :path")
        if _PATH_BAD(path):
            raise Malformed("invalid character in :path")
        limits.check_target(path)
    authority = request.authority
    if authority is not None:
        if host is not None and host != authority:
            raise Malformed("host differs from :authority")
        if host is None:
            # ASGI has no :authority: it becomes the host field (first, where apps look)
            request.fields.insert(0, (b"host", authority))
