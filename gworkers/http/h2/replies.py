"""The server's own replies on an HTTP/2 stream (413, 431, 500, 503 ...), and the default
response fields (server, date, configured extras) every response carries.

The default headers arrive as the HTTP/1.1 block ``DefaultHeaders`` keeps up to date (its date
changes once a second); it is split into fields once per new block, not per response.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from .frames import ErrorCodes
from .sink import status_bytes

_cache: list = [None, []]  # (the DefaultHeaders block last split, its fields)


def with_defaults(conn: Any, fields: list, overridden: frozenset | None) -> list:
    """``fields`` (``:status`` first) with the default fields of ``conn`` (an ``H2Protocol``:
    server, date, configured extras) after ``:status``, minus those the app sent itself
    (``overridden``). Also the connection's method of that name."""
    block = conn.context.defaults.block
    cache = _cache
    if cache[0] is not block:
        cache[1] = [tuple(line.split(b": ", 1)) for line in block.split(b"\r\n") if line]
        cache[0] = block
    defaults = cache[1]
    if overridden is not None:
        defaults = [pair for pair in defaults if pair[0] not in overridden]
    return [fields[0], *defaults, *fields[1:]]


def answer(conn: Any, stream_id: int, status: int, reset_body: bool = False,
           fields: Any = ()) -> None:
    """A short text/plain reply with ``status`` on the stream of ``conn`` (an ``H2Protocol``,
    whose method of that name this also is);
    ``reset_body``: the request body is still coming and nobody will read it (RFC 9113 8.1:
    the stream is then reset with NO_ERROR after the response); ``fields``: more fields."""
    try:
        body = HTTPStatus(status).phrase.encode()
    except ValueError:
        body = b""
    fields = with_defaults(conn, [
        (b":status", status_bytes(status)),
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *fields,
    ], None)
    core = conn.core
    if core.send_headers(stream_id, fields, False):
        core.send_data(stream_id, body, True)
        if reset_body:
            core.reset(stream_id, ErrorCodes.NO_ERROR)
    conn.flush_soon()
