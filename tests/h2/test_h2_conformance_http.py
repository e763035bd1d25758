"""RFC 9113 conformance, HTTP semantics: the exchange and trailers (8.1), field validity and
connection-specific fields (8.2), request pseudo-header fields (8.3), CONNECT and extended
CONNECT (8.5, RFC 8441 4), on both workers over h2c, a few over TLS. A malformed request is a
stream error of type PROTOCOL_ERROR (8.1.1); the connection goes on. The case list follows
h2spec's "generic" 4 and "http2" 8 groups (see conformance.py for the outcomes)."""

from __future__ import annotations

from hyperframe.frame import DataFrame

from tests.h2.conformance import (
    Case,
    E,
    answered,
    corpus_tests,
    request_fields,
    stream_error,
)
from tests.h2.rawframes import RawH2

PROTOCOL = E.PROTOCOL_ERROR
_PSEUDO = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
           (b":authority", b"localhost")]


def _request(fields=None, end_stream: bool = True, body: tuple = (), trailers=None,
             trailers_end: bool = True):
    """HEADERS with ``fields`` (a function of the connection, or a list; default: a GET),
    then DATA frames ``body`` (the last ends the stream unless trailers follow), then a
    trailer HEADERS."""

    def send(conn: RawH2) -> int:
        block = fields(conn) if callable(fields) else fields or request_fields(conn)
        frames = [conn.headers(1, block, end_stream=end_stream and not body and not trailers)]
        for i, chunk in enumerate(body):
            last = i == len(body) - 1 and not trailers
            frames.append(DataFrame(1, data=chunk, flags=["END_STREAM"] if last else []))
        if trailers is not None:
            frames.append(conn.headers(1, trailers, end_stream=trailers_end))
        conn.send(*frames)
        return 1

    return send


def _with(*extra, path: bytes = b"/", method: bytes = b"GET"):
    """A request's fields with ``extra`` after the pseudo-header fields."""
    return lambda conn: request_fields(conn, path, method, extra)


def _pseudo(*fields):
    """Exactly these pseudo-header fields (and nothing else)."""
    return lambda conn: list(fields)


def _post(*extra):
    return _with(*extra, path=b"/echo", method=b"POST")


def _without(name: bytes):
    return _pseudo(*[f for f in _PSEUDO if f[0] != name])


def _twice(name: bytes):
    return _pseudo(*_PSEUDO, *[f for f in _PSEUDO if f[0] == name])


CASES = [
    # generic: requests answered
    Case("8.1/get", "RFC 9113 8.1", _request(), answered()),
    Case("8.1/head", "RFC 9113 8.1", _request(_with(method=b"HEAD")), answered()),
    Case("8.1/post", "RFC 9113 8.1", _request(_post(), body=(b"test",)), answered()),
    Case("8.1/post-with-trailers", "RFC 9113 8.1",
         _request(_post((b"te", b"trailers")), body=(b"test",),
                  trailers=[(b"x-trailer", b"ok")]), answered()),
    Case("8.1/post-with-content-length", "RFC 9113 8.1.1",
         _request(_post((b"content-length", b"8")), body=(b"test", b"test")), answered()),
    # 8.1 trailers: END_STREAM, no pseudo-header fields, valid names
    Case("8.1/trailers-without-end-stream", "RFC 9113 8.1",
         _request(_post(), body=(b"test",), trailers=[(b"x-test", b"ok")], trailers_end=False),
         stream_error(PROTOCOL)),
    Case("8.1/trailers-with-pseudo-header", "RFC 9113 8.1, 8.3",
         _request(_post(), body=(b"test",), trailers=[(b":method", b"POST")]),
         stream_error(PROTOCOL)),
    Case("8.1/trailers-with-uppercase-name", "RFC 9113 8.2.1",
         _request(_post(), body=(b"test",), trailers=[(b"X-Test", b"ok")]),
         stream_error(PROTOCOL)),
    Case("8.1/trailers-with-connection-field", "RFC 9113 8.2.2",
         _request(_post(), body=(b"test",), trailers=[(b"connection", b"close")]),
         stream_error(PROTOCOL)),
    # 8.1.1 content-length must match the DATA frames
    Case("8.1.1/content-length-more-than-data", "RFC 9113 8.1.1",
         _request(_post((b"content-length", b"1")), body=(b"test",)), stream_error(PROTOCOL)),
    Case("8.1.1/content-length-less-than-data", "RFC 9113 8.1.1",
         _request(_post((b"content-length", b"10")), body=(b"test", b"test")),
         stream_error(PROTOCOL)),
    Case("8.1.1/content-length-without-data", "RFC 9113 8.1.1",
         _request(_post((b"content-length", b"5"))), stream_error(PROTOCOL)),
    Case("8.1.1/content-length-not-a-number", "RFC 9113 8.1.1",
         _request(_post((b"content-length", b"4x")), body=(b"test",)), stream_error(PROTOCOL)),
    # 8.2.1 field names and values
    Case("8.2.1/uppercase-name", "RFC 9113 8.2.1", _request(_with((b"X-Test", b"ok"))),
         stream_error(PROTOCOL)),
    Case("8.2.1/space-in-name", "RFC 9113 8.2.1", _request(_with((b"x test", b"ok"))),
         stream_error(PROTOCOL)),
    Case("8.2.1/empty-name", "RFC 9113 8.2.1", _request(_with((b"", b"ok"))),
         stream_error(PROTOCOL)),
    *[Case(f"8.2.1/value-with-{name}", "RFC 9113 8.2.1",
           _request(_with((b"x-test", value))), stream_error(PROTOCOL))
      for name, value in [("nul", b"a\0b"), ("cr", b"a\rb"), ("lf", b"a\nb"),
                          ("leading-space", b" ab"), ("trailing-tab", b"ab\t")]],
    # 8.2.2 connection-specific fields; TE only as "trailers"
    *[Case(f"8.2.2/{name.decode()}", "RFC 9113 8.2.2", _request(_with((name, value))),
           stream_error(PROTOCOL))
      for name, value in [(b"connection", b"keep-alive"), (b"keep-alive", b"timeout=5"),
                          (b"proxy-connection", b"keep-alive"),
                          (b"transfer-encoding", b"chunked"), (b"upgrade", b"h2c")]],
    Case("8.2.2/te-gzip", "RFC 9113 8.2.2", _request(_with((b"te", b"trailers, deflate"))),
         stream_error(PROTOCOL)),
    Case("8.2.2/te-trailers", "RFC 9113 8.2.2", _request(_with((b"te", b"trailers"))),
         answered()),
    # 8.3 pseudo-header fields
    Case("8.3/unknown-pseudo-header", "RFC 9113 8.3", _request(_pseudo(*_PSEUDO, (b":x", b"1"))),
         stream_error(PROTOCOL)),
    Case("8.3/response-pseudo-header", "RFC 9113 8.3",
         _request(_pseudo(*_PSEUDO, (b":status", b"200"))), stream_error(PROTOCOL)),
    Case("8.3/pseudo-header-after-regular", "RFC 9113 8.3",
         _request(_pseudo(*_PSEUDO[:3], (b"x-test", b"ok"), _PSEUDO[3])),
         stream_error(PROTOCOL)),
    Case("8.3.1/empty-path", "RFC 9113 8.3.1", _request(_with(path=b"")), stream_error(PROTOCOL)),
    Case("8.3.1/path-not-absolute", "RFC 9113 8.3.1", _request(_with(path=b"x/y")),
         stream_error(PROTOCOL)),
    Case("8.3.1/asterisk-path-options", "RFC 9113 8.3.1",
         _request(_with(path=b"*", method=b"OPTIONS")), answered()),
    *[Case(f"8.3.1/no-{name.decode().strip(':')}", "RFC 9113 8.3.1", _request(_without(name)),
           stream_error(PROTOCOL)) for name in (b":method", b":scheme", b":path")],
    *[Case(f"8.3.1/twice-{name.decode().strip(':')}", "RFC 9113 8.3.1", _request(_twice(name)),
           stream_error(PROTOCOL)) for name in (b":method", b":scheme", b":path", b":authority")],
    Case("8.3.1/host-differs-from-authority", "RFC 9113 8.3.1",
         _request(_with((b"host", b"elsewhere"))), stream_error(PROTOCOL)),
    Case("8.3.1/host-without-authority", "RFC 9113 8.3.1",
         _request(_pseudo(*_PSEUDO[:3], (b"host", b"localhost"))), answered()),
    # 8.5 CONNECT: :method and :authority only; we open no tunnels (501)
    Case("8.5/connect", "RFC 9113 8.5",
         _request(_pseudo((b":method", b"CONNECT"), (b":authority", b"example.com:443")),
                  end_stream=False), answered(501)),
    Case("8.5/connect-with-path", "RFC 9113 8.5",
         _request(_pseudo((b":method", b"CONNECT"), (b":authority", b"example.com:443"),
                          (b":scheme", b"https"), (b":path", b"/")), end_stream=False),
         stream_error(PROTOCOL)),
    Case("8.5/connect-without-authority", "RFC 9113 8.5",
         _request(_pseudo((b":method", b"CONNECT")), end_stream=False), stream_error(PROTOCOL)),
    # RFC 8441 4: :protocol only on CONNECT, which then has :scheme and :path
    Case("8441/protocol-on-get", "RFC 8441 4",
         _request(_pseudo(*_PSEUDO, (b":protocol", b"websocket"))), stream_error(PROTOCOL)),
    Case("8441/extended-connect-without-path", "RFC 8441 4",
         _request(_pseudo((b":method", b"CONNECT"), (b":protocol", b"websocket"),
                          (b":scheme", b"http"), (b":authority", b"localhost")),
                  end_stream=False), stream_error(PROTOCOL)),
]
TLS_CASES = ["8.1/post-with-trailers", "8.1.1/content-length-more-than-data",
             "8.3/pseudo-header-after-regular"]


test_http, test_http_over_tls, test_cases_are_named_once = corpus_tests(CASES, TLS_CASES)
