"""RFC 9112 rules on a parsed request head, shared by both parser adapters.

The parsers (httptools, h11) disagree on many edge cases: duplicate Content-Length, Content-Length
beside Transfer-Encoding, unknown codings, Host, absolute-form targets. Both adapters hand their
head to ``check_head`` so every case is answered the same way, whatever parsed it.
"""

from __future__ import annotations

from ...config import FORWARDED_HEADERS
from ...errors import (
    BadRequest,
    ContentTooLarge,
    NotImplementedCoding,
    ProtocolError,
    VersionNotSupported,
)
from ..fields import is_token, remember

# Methods llhttp recognises; the pure-Python parser accepts any token, and check_head answers 501
# for the rest, so both parsers agree. Request methods are case-sensitive (RFC 9110 9.1).
METHODS: dict[bytes, str] = {
    m.encode(): m
    for m in (
        "GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH "
        "COPY LOCK MKCOL MOVE PROPFIND PROPPATCH SEARCH UNLOCK BIND REBIND UNBIND ACL "
        "REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY SUBSCRIBE UNSUBSCRIBE "
        "PURGE MKCALENDAR LINK UNLINK SOURCE QUERY"
    ).split()
}

# Host: reg-name / IPv4 / [IPv6] with an optional port; no userinfo, no whitespace.
_HOST_BYTES = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:[]%"


def method_error(method: bytes, line: bytes = b"") -> ProtocolError:
    """The answer for a method we will not serve: 501 if it is a token, else 400.

    ``line``: the start of the request line, when a parser stopped at the method (llhttp does).
    If its end is there and it is not ``method SP target SP HTTP-version``, the request line is
    malformed whatever its first word: 400, as the h11 path answers (a PROXY protocol line sent
    to a server not expecting one is such a line).
    """
    if not is_token(method):
        return BadRequest("invalid method")
    end = line.find(b"\n")
    if end >= 0:
        parts = line[:end].rstrip(b"\r").split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            return BadRequest("malformed request line")
    return NotImplementedCoding(f"method {method[:32]!r} not implemented")


def check_transfer_encoding(values: list[bytes]) -> None:
    """Only a single, final ``chunked`` is served (RFC 9112 6.1, 6.3)."""
    codings = [c.strip().lower() for v in values for c in v.split(b",")]
    if codings == [b"chunked"]:
        return
    if not codings or b"" in codings:
        raise BadRequest("empty transfer coding")
    if codings[-1] != b"chunked" or codings.count(b"chunked") > 1:
        # chunked not final: the body length cannot be determined (RFC 9112 6.3 item 4)
        raise BadRequest("chunked is not the final transfer coding")
    raise NotImplementedCoding("unsupported transfer coding")


# Host values already found valid. A client sends the same Host on every request, so the
# character scan below runs once per distinct value (bounded: junk cannot grow it, and a full
# cache starts over).
_good_hosts: dict[bytes, bool] = {}


def check_host(host: bytes) -> None:
    if host in _good_hosts:
        return
    _check_host(host)
    remember(_good_hosts, host, True, 512)


def _check_host(host: bytes) -> None:
    if not host or host.translate(None, _HOST_BYTES):
        raise BadRequest("invalid Host header")
    if host.startswith(b"["):
        end = host.find(b"]")
        if end < 0:
            raise BadRequest("invalid Host header")
        rest = host[end + 1 :]
    else:
        if host.count(b":") > 1 or b"[" in host or b"]" in host:
            raise BadRequest("invalid Host header")
        rest = host[host.find(b":") :] if b":" in host else b""
    if rest and (rest[:1] != b":" or not rest[1:].isdigit() and rest != b":"):
        raise BadRequest("invalid port in Host header")


# The request fields check_head reads; every other field passes through untouched.
HEAD_FIELDS = frozenset(
    (b"host", b"content-length", b"transfer-encoding", b"connection", b"te", b"expect", b"upgrade")
)


def watched_names(config: object) -> frozenset:
    """The field names a parser adapter sets aside while parsing (``watched``): the ones
    ``check_head`` reads and every proxy header ``proxy.apply`` may read, so neither has to
    walk all the fields of a request again."""
    secure = getattr(config, "secure_scheme_headers", ())
    return HEAD_FIELDS | {n.encode() for n in FORWARDED_HEADERS} | {n for n, _ in secure}


class Head:
    """What the connection needs to know about a request beyond its headers.

    Read-only once returned: the common request (no body, keep-alive, nothing to upgrade)
    gets the one shared instance ``PLAIN_HEAD`` instead of a new object.
    """

    __slots__ = ("chunked", "content_length", "expect_continue", "keep_alive", "te_trailers", "upgrade")

    def __init__(self) -> None:
        self.content_length: int | None = None
        self.chunked = False
        self.keep_alive = True
        self.expect_continue = False
        self.upgrade: bytes | None = None
        self.te_trailers = False  # the client accepts trailer fields (TE: trailers)


PLAIN_HEAD = Head()
# Shared read-only heads for a keep-alive request with a Content-Length body, per length as sent
# (bounded: a client choosing lengths cannot grow it past the bound).
_LENGTH_HEADS: dict[bytes, Head] = {}


def _length_head(length: bytes) -> Head:
    head = Head()
    head.content_length = int(length)
    remember(_LENGTH_HEADS, length, head, 256)
    return head


class CheckedRequest:
    """A request head that passed every check, as the connection builds its scope from it:
    ``head`` (framing, keep-alive, upgrade, expectations), the version it is served as, the
    target split into ``raw_path`` and ``query_string``, and the scope's headers (for
    absolute-form, Host replaced by the target's authority)."""

    __slots__ = ("head", "headers", "query_string", "raw_path", "version")

    head: Head
    version: str
    raw_path: bytes
    query_string: bytes
    headers: list


# read_request makes its CheckedRequest with object.__new__ and sets the slots itself: an
# __init__ call costs 700 instructions more per request, and a NamedTuple's fields, read
# through descriptors the 3.11 interpreter cannot specialise, 1,200 more (plaintext benchmark).
_new_request = object.__new__


def read_request(method: bytes, target: bytes, version: str, headers: list, body_limit: int = 0,
                 watched: list | None = None) -> CheckedRequest:
    """Every check the connection makes before it builds a scope, in one place.

    ``HTTPConnection.on_request`` and the sans-IO corpus tests (tests/http/test_parsers.py)
    both call this, so the corpus tests exactly the rules the server applies. The version is
    the one the request is served as: RFC 9112 2.3 has a higher HTTP/1 minor version processed
    as HTTP/1.1. For absolute-form, the target's authority replaces Host (RFC 9112 3.2.2).
    ``watched``: the fields of ``headers`` named in ``HEAD_FIELDS`` (or more), in order, when
    the parser collected them; ``None`` means look at every field.
    """
    if version != "1.1" and version != "1.0" and version[:2] == "1.":
        version = "1.1"
    head = None
    if watched is not None and version == "1.1" and method in METHODS and method != b"CONNECT":
        # The common requests, whose only fields check_head reads are a Host seen before and
        # perhaps one Content-Length: keep-alive, nothing to upgrade or expect, no chunked
        # body. check_head would say the same, slower.
        n = len(watched)
        if n == 1:
            name, host = watched[0]
            if name == b"host" and host in _good_hosts:
                head = PLAIN_HEAD
        elif n == 2:
            (name, host), (name2, length) = watched
            if name != b"host":
                name, host, name2, length = name2, length, name, host
            if name == b"host" and name2 == b"content-length" and host in _good_hosts:
                head = _LENGTH_HEADS.get(length)
                if head is None and length.isdigit() and len(length) < 16:
                    head = _length_head(length)
            if head is not None and body_limit and head.content_length > body_limit:
                raise ContentTooLarge("request body too large")
    if head is None:
        head = check_head(method, target, version, headers if watched is None else watched)
        if body_limit and head.content_length is not None and head.content_length > body_limit:
            raise ContentTooLarge("request body too large")
    request = _new_request(CheckedRequest)
    request.head = head
    request.version = version
    request.headers = headers
    if target[:1] == b"/" and b"#" not in target:
        # origin-form, as split_target splits it
        i = target.find(b"?")
        if i < 0:
            request.raw_path = target
            request.query_string = b""
        else:
            request.raw_path = target[:i]
            request.query_string = target[i + 1 :]
        return request
    request.raw_path, request.query_string, authority = split_target(method, target)
    if authority is not None:
        request.headers = [(n, v) for n, v in headers if n != b"host"]
        request.headers.append((b"host", authority))
    return request


def check_head(method: bytes, target: bytes, version: str, headers: list) -> Head:
    """Validate a parsed head; raise a ProtocolError carrying the status to answer with.

    ``headers`` are ``(lowercased name, value)`` pairs with surrounding whitespace removed.
    One pass over the names, kept in locals, and no helper call for the common GET (the h11
    adapter runs this on every request: a helper object and three calls cost 4,000 instructions
    per request, 1.5%).
    """
    if version != "1.1" and version != "1.0":
        raise VersionNotSupported(f"HTTP/{version} not supported")
    if method not in METHODS:
        raise method_error(method)
    if method == b"CONNECT":
        raise NotImplementedCoding("CONNECT tunnels are not served")
    expect_continue = te_trailers = False
    upgrade = host = connection = None
    hosts = 0
    lengths = codings = None  # the Content-Length and Transfer-Encoding values, if any
    for name, value in headers:
        c = name[:1]  # dispatch on the first letter: most headers are none of these
        if c == b"h" and name == b"host":
            hosts += 1
            host = value
        elif c == b"c":
            if name == b"content-length":
                lengths = [value] if lengths is None else [*lengths, value]
            elif name == b"connection":
                connection = value if connection is None else connection + b"," + value
        elif c == b"t":
            if name == b"transfer-encoding":
                codings = [value] if codings is None else [*codings, value]
            elif name == b"te" and b"trailers" in value.lower():
                te_trailers = True
        elif c == b"e" and name == b"expect":
            if value.lower() != b"100-continue":
                # RFC 9110 10.1.1: an unknown expectation may be answered 417
                raise ProtocolError("unsupported expectation", status=417)
            expect_continue = version == "1.1"
        elif c == b"u" and name == b"upgrade":
            upgrade = value.lower()
    chunked = codings is not None
    content_length = None
    if lengths is not None or chunked:
        content_length = _body_length(lengths, codings, version)
    if hosts != 1 or host not in _good_hosts:
        _check_hosts(hosts, host, version, target)
    if connection is None:
        keep_alive = version == "1.1"
        upgrade = None
    else:  # RFC 9112 9.3, RFC 9110 7.8
        tokens = {t.strip().lower() for t in connection.split(b",")}
        keep_alive = b"close" not in tokens and (version == "1.1" or b"keep-alive" in tokens)
        if b"upgrade" not in tokens:
            upgrade = None
    if upgrade is not None:  # (served as HTTP/1.1 if nobody takes it: RFC 9110 7.8)
        keep_alive = False  # what follows may be in the other protocol already
    if (keep_alive and content_length is None and not chunked and upgrade is None
            and not expect_continue and not te_trailers):
        return PLAIN_HEAD
    return _new_head(keep_alive, content_length, chunked, upgrade, expect_continue, te_trailers)


def _new_head(keep_alive: bool, content_length: int | None, chunked: bool, upgrade: bytes | None,
              expect_continue: bool, te_trailers: bool) -> Head:
    head = Head()
    head.keep_alive = keep_alive
    head.content_length = content_length
    head.chunked = chunked
    head.upgrade = upgrade
    head.expect_continue = expect_continue
    head.te_trailers = te_trailers
    return head


def _body_length(lengths: list[bytes] | None, codings: list[bytes] | None, version: str) -> int | None:
    """The Content-Length of a request that declares a body, or None when it is chunked
    (RFC 9112 6.1-6.3): one framing, valid, or a ProtocolError."""
    if codings is not None:
        if lengths is not None:
            raise BadRequest("both Content-Length and Transfer-Encoding")
        if version == "1.0":
            raise BadRequest("Transfer-Encoding in an HTTP/1.0 request")
        check_transfer_encoding(codings)
        return None
    if len(lengths) > 1:
        raise BadRequest("more than one Content-Length")
    value = lengths[0]
    if not value.isdigit() or len(value) > 18 and len(value.lstrip(b"0")) > 18:
        raise BadRequest("invalid Content-Length")
    return int(value)


def _check_hosts(hosts: int, host: bytes | None, version: str, target: bytes) -> None:
    """One valid Host (RFC 9112 3.2), required on HTTP/1.1; empty only beside an absolute
    target. (``check_head`` skips this for the one Host it has seen before.)"""
    if hosts > 1:
        raise BadRequest("more than one Host header")
    if version == "1.1" and hosts == 0:
        raise BadRequest("missing Host header")
    if host:
        check_host(host)
    elif hosts and version == "1.1" and not _is_absolute(target):
        raise BadRequest("empty Host header")


def _is_absolute(target: bytes) -> bool:
    return target[:7].lower() == b"http://" or target[:8].lower() == b"https://"


def split_target(method: bytes, target: bytes) -> tuple[bytes, bytes, bytes | None]:
    """``(raw_path, query_string, authority)`` for the four request-target forms (RFC 9112 3.2).

    ``authority`` is set for absolute-form, whose authority replaces Host (RFC 9112 3.2.2).
    """
    first = target[:1]
    if first == b"/":
        authority = None
    elif first == b"*":
        if target != b"*" or method != b"OPTIONS":
            raise BadRequest("asterisk-form is only for OPTIONS")
        return b"*", b"", None
    elif _is_absolute(target):
        rest = target[target.find(b"//") + 2 :]
        end = len(rest)
        for sep in (b"/", b"?"):
            i = rest.find(sep)
            if 0 <= i < end:
                end = i
        authority = rest[:end]
        if b"@" in authority:
            raise BadRequest("userinfo in request target")
        check_host(authority)
        target = rest[end:]
        if not target.startswith(b"/"):
            target = b"/" + target
    else:
        # authority-form is only for CONNECT, which is refused earlier
        raise BadRequest("invalid request target")
    if b"#" in target:
        raise BadRequest("fragment in request target")
    i = target.find(b"?")
    if i < 0:
        return target, b"", authority
    return target[:i], target[i + 1 :], authority
