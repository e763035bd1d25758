"""The raw-request corpus through both parser adapters, sans-IO.

Every case in tests/requests runs through HttptoolsParser and H11Parser, fed whole, byte by byte,
and followed by a second request in the same bytes. The fake connection applies the same checks
as ``HTTPConnection.on_request`` (``head.read_request``), so a status here is the status the
server answers with; the live twin of this test is tests/http/test_corpus_live.py.
"""

from __future__ import annotations

import pytest

from gworkers.config import Config
from gworkers.errors import ProtocolError
from gworkers.http.h1.h11_parser import H11Parser
from gworkers.http.h1.head import read_request
from gworkers.http.target import decode_path
from tests.conftest import CPYTHON
from tests.corpus import CorpusError, decode, load

# httptools exists on CPython only (where the test extra installs it); elsewhere h11 alone runs
PARSERS = {"h11": H11Parser}
if CPYTHON:
    from gworkers.http.h1.httptools_parser import HttptoolsParser

    PARSERS = {"httptools": HttptoolsParser, **PARSERS}
CASES = load()
VALID = [c for c in CASES if c.kind == "valid"]
INVALID = [c for c in CASES if c.kind == "invalid"]

NEXT = b"GET /next?n=2 HTTP/1.1\r\nHost: next.example\r\nContent-Length: 4\r\n\r\nnext"
NEXT_REQUEST = {
    "method": b"GET",
    "target": b"/next?n=2",
    "path": "/next",
    "raw_path": b"/next",
    "query_string": b"n=2",
    "http_version": "1.1",
    "headers": [(b"host", b"next.example"), (b"content-length", b"4")],
    "body": b"next",
    "keep_alive": True,
}


class Recorder:
    """The connection's push interface, recording what it is told."""

    def __init__(self) -> None:
        self.config = Config()
        self.requests: list[dict] = []
        self.complete: list[bool] = []
        self.upgraded: bytes | None = None

    def on_request(
        self, method: bytes, target: bytes, version: str, headers: list, watched=None
    ) -> bool:
        # the same call HTTPConnection.on_request makes, with the fields the parser set aside
        request = read_request(
            method, target, version, headers, self.config.limit_request_body, watched
        )
        raw_path = request.raw_path
        self.requests.append(
            {
                "method": method,
                "target": target,
                "path": decode_path(raw_path),
                "raw_path": raw_path,
                "query_string": request.query_string,
                "http_version": request.version,
                "headers": request.headers,  # not a copy: an adapter must not change it later
                "body": b"",
                "keep_alive": request.head.keep_alive,
            }
        )
        self.complete.append(False)
        return False

    def on_body(self, data: bytes) -> None:
        assert self.requests and not self.complete[-1], "body outside a request"
        assert data, "empty body chunk"
        self.requests[-1]["body"] += bytes(data)

    def on_complete(self) -> bool:
        assert self.requests and not self.complete[-1], "on_complete twice"
        self.complete[-1] = True
        return self.requests[-1]["keep_alive"]

    def on_upgrade(self, data: bytes) -> None:
        self.upgraded = data


def feed(parser_name: str, chunks) -> tuple[Recorder, ProtocolError | None]:
    cls = PARSERS[parser_name]
    conn = Recorder()
    parser = cls(conn, conn.config)
    try:
        for chunk in chunks:
            parser.feed(chunk)
    except ProtocolError as exc:
        return conn, exc
    return conn, None


def whole(data: bytes):
    return [data]


def bytewise(data: bytes):
    return [data[i : i + 1] for i in range(len(data))]


MODES = {"whole": whole, "bytewise": bytewise}


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", VALID, ids=lambda c: c.name)
def test_valid(case, mode, parser):
    conn, error = feed(parser, MODES[mode](case.data))
    assert error is None, f"{case.id}: {error!r} (status {error.status})"
    assert conn.requests == [case.expected_request()]
    assert conn.complete == [True]
    assert conn.upgraded is None


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("case", VALID, ids=lambda c: c.name)
def test_valid_then_next(case, parser):
    """A second request in the same bytes: parsed after a keep-alive request, ignored after a
    request that ends the connection (RFC 9112 9.6)."""
    conn, error = feed(parser, [case.data + NEXT])
    assert error is None, f"{case.id}: {error!r}"
    expected = [case.expected_request()]
    if case.expect["keep_alive"]:
        expected.append(NEXT_REQUEST)
    assert conn.requests == expected
    assert all(conn.complete)


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("mode", [*MODES, "then_next"])
@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.name)
def test_invalid(case, mode, parser):
    data = case.data + NEXT if mode == "then_next" else case.data
    chunks = bytewise(data) if mode == "bytewise" else whole(data)
    conn, error = feed(parser, chunks)
    assert error is not None, f"{case.id}: accepted as {conn.requests}"
    assert error.status == case.expect["status"], f"{case.id}: {error!r}"
    # a head error never reaches on_request; a body error comes after exactly one request
    assert len(conn.requests) == (0 if case.expect["stage"] == "head" else 1)
    assert not any(conn.complete)


FIRST = b"GET /first HTTP/1.1\r\nHost: first.example\r\n\r\n"
FIRST_REQUEST = {
    "method": b"GET",
    "target": b"/first",
    "path": "/first",
    "raw_path": b"/first",
    "query_string": b"",
    "http_version": "1.1",
    "headers": [(b"host", b"first.example")],
    "body": b"",
    "keep_alive": True,
}
# llhttp does not say where a request it refuses began; when that request follows another one
# in the same chunk, the httptools adapter cannot see its method and answers an unknown one 400.
BEHIND_ANOTHER = {"method_unknown": 400, "method_lowercase": 400}


def expected_outcome(case, parser: str, mode: str) -> tuple[int | None, list]:
    """(status or None, requests) for ``case`` fed behind FIRST."""
    if case.kind == "valid":
        return None, [FIRST_REQUEST, case.expected_request()]
    status = case.expect["status"]
    if parser == "httptools" and mode == "whole":
        status = BEHIND_ANOTHER.get(case.name, status)
    return status, [FIRST_REQUEST] if case.expect["stage"] == "head" else None


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_behind_another_request(case, mode, parser):
    """Every case pipelined behind a valid request: the first is served, the case answered as
    when it comes first."""
    conn, error = feed(parser, MODES[mode](FIRST + case.data))
    status, requests = expected_outcome(case, parser, mode)
    if status is None:
        assert error is None, f"{case.id}: {error!r}"
        assert conn.requests == requests
        assert all(conn.complete)
    else:
        assert error is not None and error.status == status, f"{case.id}: {error!r}"
        assert conn.requests[0] == FIRST_REQUEST
        assert len(conn.requests) == (1 if case.expect["stage"] == "head" else 2)


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("case", [c for c in CASES if len(c.data) < 2048], ids=lambda c: c.id)
def test_split_everywhere(case, parser):
    """The case cut in two at every offset parses as when fed whole."""
    whole_conn, whole_error = feed(parser, [case.data])
    for cut in range(1, len(case.data)):
        conn, error = feed(parser, [case.data[:cut], case.data[cut:]])
        assert conn.requests == whole_conn.requests, f"{case.id} cut at {cut}"
        assert conn.complete == whole_conn.complete, f"{case.id} cut at {cut}"
        assert (error and error.status) == (whole_error and whole_error.status), (
            f"{case.id} cut at {cut}: {error!r} vs {whole_error!r}"
        )


def test_corpus_size():
    """The corpus covers what it claims (tests/requests/README.md)."""
    assert len(VALID) >= 40 and len(INVALID) >= 40
    statuses = {c.expect["status"] for c in INVALID}
    assert statuses == {400, 414, 417, 431, 501, 505}


def test_case_format():
    """The .http escapes (tests/requests/README.md): layout line breaks vanish, escapes don't."""
    assert decode("GET / HTTP/1.1\\r\\n\nHost: a\\r\\n\n\\r\\n") == b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    assert decode("a\\s\\t\\0\\x7f\\\\") == b"a \t\0\x7f\\"
    assert decode("\\[3:ab\\[2:c\\]\\]") == b"abccabccabcc"
    for bad in ("\\q", "\\x4", "caf\u00e9", "a\tb", "\\[2:a", "a\\]", "\\[x:a\\]"):
        with pytest.raises(CorpusError):
            decode(bad)


# Heads outside the corpus that h11 itself answers otherwise (its Host check comes before the
# method and Expect checks; it merges a "1, 1" list; it answers a non-chunked coding 501): the
# h11 adapter gives the answer head.check_head gives, as the httptools adapter does.
CHECK_HEAD_ORDER = {
    "unknown_method_no_host": (b"FOO / HTTP/1.1\r\n\r\n", 501),
    "connect_no_host": (b"CONNECT a:1 HTTP/1.1\r\n\r\n", 501),
    "unknown_method_two_hosts": (b"FOO / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 501),
    "expect_unknown_two_hosts": (
        b"GET / HTTP/1.1\r\nExpect: foo\r\nHost: a\r\nHost: b\r\n\r\n",
        417,
    ),
    "cl_list_equal": (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx", 400),
    "te_gzip_http10": (b"POST / HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
}


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", CHECK_HEAD_ORDER)
def test_refusals_in_check_head_order(name, mode, parser):
    data, status = CHECK_HEAD_ORDER[name]
    conn, error = feed(parser, MODES[mode](data))
    assert error is not None and error.status == status, f"{name}: {error!r}"
    assert conn.requests == []


PIPELINE = (
    b"POST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n\r\n\r\nab"
    b"\r\nPOST /ch HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4;x=\"q\"\r\n\r\n\r\n\r\n0\r\nt: 1\r\n\r\n"
    b"GET /get HTTP/1.1\r\nHost: a\r\n\r\n"
    b"POST /ch2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2;y\r\nhi\r\n0\r\n\r\n"
)


@pytest.mark.parametrize("parser", PARSERS)
def test_pipelined_chunked_split_everywhere(parser):
    """The httptools adapter finds where a chunked request's head ends in the bytes (to decode
    its body itself): pipelined behind other requests, cut at every pair of points, the
    requests and bodies are exactly the h11 adapter's."""
    expected = [(b"/cl", b"\r\n\r\nab"), (b"/ch", b"\r\n\r\n"), (b"/get", b""), (b"/ch2", b"hi")]
    n = len(PIPELINE)
    for i in range(1, n):
        for j in range(i, n, 7):
            chunks = [c for c in (PIPELINE[:i], PIPELINE[i:j], PIPELINE[j:]) if c]
            conn, error = feed(parser, chunks)
            assert error is None, (i, j, error)
            assert [(r["target"], r["body"]) for r in conn.requests] == expected, (i, j)
            assert all(conn.complete)


BWS_BEHIND_BODY = [
    b"POST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab",
    b"cd" + b"POST /ch HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2; a=b\r\nhi\r\n0\r\n\r\n",
]


@pytest.mark.parametrize("parser", PARSERS)
def test_bws_chunk_extension_behind_a_body_in_the_same_read(parser):
    """The one place the parsers differ (tests/requests/README.md): a chunked request arriving
    in the same read as the end of the previous request's body is decoded by llhttp, which
    refuses whitespace in chunk extensions. The same bytes in other reads are accepted."""
    conn, error = feed(parser, BWS_BEHIND_BODY)
    if parser == "httptools":
        assert error is not None and error.status == 400
    else:
        assert error is None and conn.requests[1]["body"] == b"hi"
    conn, error = feed(parser, [BWS_BEHIND_BODY[0] + b"cd", BWS_BEHIND_BODY[1][2:]])
    assert error is None and [r["body"] for r in conn.requests] == [b"abcd", b"hi"]
