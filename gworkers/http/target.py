"""The request path as the ASGI scope carries it, whatever protocol brought it."""

from __future__ import annotations

from urllib.parse import unquote


def decode_path(raw_path: bytes) -> str:
    """Percent-decode the path as UTF-8, as the ASGI spec asks."""
    path = raw_path.decode("latin-1")
    if "%" in path:
        return unquote(path)
    return path
