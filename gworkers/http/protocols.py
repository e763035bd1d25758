"""Which connection class serves a worker's sockets: HTTP/1.1 alone, or a class that negotiates
HTTP/2 (ALPN, the h2c preface, ``Upgrade: h2c``) when ``http_protocols`` has h2.

HTTP/2 lives in ``http/h2`` and needs the ``http2`` extra (hpack), so it is imported
only when asked for; a worker told to serve h2 without it fails to boot with one clear line
instead of serving HTTP/1.1 behind the operator's back.
"""

from __future__ import annotations

from typing import Any

from ..errors import BootError
from .h1.connection import HTTPConnection


def connection_class(config: Any, tls: bool) -> type:
    """``HTTPConnection``, or the negotiating class of ``http/h2`` (see the module docstring)."""
    if "h2" not in config.http_protocols:
        return HTTPConnection
    try:
        from .h2.negotiate import connection_class as negotiating
    except ImportError as exc:
        raise BootError(f"http_protocols has h2 but HTTP/2 cannot be served: {exc} "
                        "(pip install 'gworkers[http2]')") from None
    return negotiating(config, tls)
