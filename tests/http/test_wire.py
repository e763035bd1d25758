"""Response bytes and fields, sans-IO: status lines and chunk framing (gworkers/http/h1/wire.py),
header checks and the cached default header block and heads (gworkers/http/fields.py)."""

from __future__ import annotations

import pytest

from gworkers.errors import AppProtocolError
from gworkers.http import fields
from gworkers.http.h1 import wire


def test_status_lines():
    assert wire.status_line(200) == b"HTTP/1.1 200 OK\r\n"
    assert wire.status_line(404) == b"HTTP/1.1 404 Not Found\r\n"
    assert wire.status_line(599) == b"HTTP/1.1 599 \r\n"  # unknown but valid: empty reason
    assert wire.status_line(599) is wire.status_line(599)  # cached
    for bad in (99, 1000, "200", b"200", None, True):
        with pytest.raises(AppProtocolError):
            wire.status_line(bad)


@pytest.mark.parametrize(("name", "value"), [
    (b"x-evil", b"a\r\nset-cookie: x=1"),
    (b"x-evil", b"a\nb"),
    (b"x-evil", b"a\rb"),
    (b"x-evil", b"a\x00b"),
    (b"x-evil", b"a\x7fb"),
    (b"bad name", b"v"),
    (b"bad:name", b"v"),
    (b"", b"v"),
    (b"x-crlf\r\n", b"v"),
    ("x-str", b"v"),
    (b"x-str", "v"),
])
def test_check_header_refuses_splitting(name, value):
    with pytest.raises(AppProtocolError):
        fields.check_header(name, value)


def test_check_header_accepts_valid():
    fields.check_header(b"x-ok", b"tab\there, obs-text \xe9, quotes \"x\"")
    fields.check_header(b"X-Ok!#$%&'*+-.^_`|~", b"")


def test_chunk_framing():
    assert wire.chunk(b"hello") == b"5\r\nhello\r\n"
    assert wire.chunk(b"x" * 255) == b"ff\r\n" + b"x" * 255 + b"\r\n"
    assert wire.LAST_CHUNK == b"0\r\n\r\n"


def test_default_headers_cached_until_refresh():
    defaults = fields.DefaultHeaders(True, True, ((b"x-team", b"web"),))
    block = defaults.block
    assert block.startswith(b"server: gworkers\r\ndate: ")
    assert block.endswith(b"x-team: web\r\n")
    assert defaults.block is block  # the same object until the tick rebuilds it
    assert defaults.names == {b"server", b"date", b"x-team"}
    assert defaults.without({b"server"}).startswith(b"date: ")
    assert b"x-team" not in defaults.without({b"x-team"})


def test_default_headers_off():
    defaults = fields.DefaultHeaders(False, False, ())
    assert defaults.block == b""
    assert defaults.names == set()


def test_error_response():
    data = wire.error_reply(400)
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"connection: close\r\n" in data
    assert data.endswith(b"\r\n\r\nBad Request")


def test_response_head_caches_stay_bounded_and_keep_caching():
    """Heads that never repeat (an ETag per response) neither grow the caches past their bound
    nor stop a head sent from then on from being cached; long lines (cookies) are not kept."""
    defaults = fields.DefaultHeaders(True, True, ())
    for n in range(5000):
        fields.response_head(200, [(b"etag", b'"%d"' % n), (b"content-length", b"2")], defaults)
    assert len(defaults.heads) <= fields._HEADS_MAX
    assert len(defaults.pairs) <= fields._PAIRS_MAX
    stable = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
    first = fields.response_head(200, stable, defaults)
    assert defaults.heads[(200, *stable)] is first
    cookie = (b"set-cookie", b"s=" + b"x" * 400)
    head = fields.response_head(200, [cookie], defaults)
    lines = wire.field_lines(head.headers)
    assert lines == b"set-cookie: s=" + b"x" * 400 + b"\r\n" and head.length is None
    assert cookie not in defaults.pairs and (200, cookie) not in defaults.heads
    with pytest.raises(AppProtocolError):
        fields.response_head(200, [(b"x-bad", b"a\r\nb")], defaults)
