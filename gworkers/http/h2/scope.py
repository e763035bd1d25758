"""The ASGI HTTP scope of an HTTP/2 request (ASGI spec 2.4, ``http_version`` "2").

The pseudo-header fields are gone from ``headers`` (``:authority`` became ``host`` in
``request.py``); ``scheme`` comes from the transport, never from ``:scheme`` (a client could
claim https over cleartext); the proxy-header trust rules and ``root_path`` apply as on
HTTP/1.1, through the same ``ProxyTrust``.
"""

from __future__ import annotations

from typing import Any

from ..extensions import with_trailers
from ..target import decode_path
from .request import Request

_ASGI = {"version": "3.0", "spec_version": "2.4"}


def http_scope(conn: Any, request: Request) -> dict:
    """The scope for ``request`` on the connection ``conn`` (an ``H2Protocol``)."""
    raw_path, _, query = request.path.partition(b"?")
    path = raw_path.decode("latin-1")
    if "%" in path:
        path = decode_path(raw_path)
    root = conn.config.root_path
    state = conn.context.lifespan_state
    scope = {
        "type": "http",
        "asgi": _ASGI,
        "http_version": "2",
        "server": conn.sockname,
        "client": conn.client,
        "scheme": conn.scheme,
        "method": request.method.decode("ascii"),
        "root_path": root,
        "path": root + path if root else path,
        "raw_path": root.encode() + raw_path if root else raw_path,
        "query_string": query,
        "headers": list(request.fields),  # (a request may be shared: connection.py)
        "state": state.copy() if state else {},
        "extensions": with_trailers(conn.extensions) if request.te_trailers
        else conn.extensions,
    }
    if conn.trusted:
        conn.context.proxy.apply(scope, conn, None)
    return scope
