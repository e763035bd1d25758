"""The WebSocket opening handshake's rules that hold on every protocol carrying it.

RFC 6455 (HTTP/1.1 ``Upgrade``) and RFC 8441 (HTTP/2 extended CONNECT) share the
``Sec-WebSocket-Version``, ``-Protocol`` and ``-Extensions`` fields; only HTTP/1.1 has the
``Sec-WebSocket-Key``/``-Accept`` pair and the GET request form. ``read_handshake`` checks the
shared part and reads a key when one is sent; each protocol's ``HandshakeResponder.check``
(``channel.py``) adds its own rules around it. The accept response's fields that the session
chooses (extension, subprotocol, the app's own) are built here too, protocol-neutral.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any, NamedTuple

from ..errors import AppProtocolError, BadRequest, ProtocolError
from ..http.fields import check_header

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_SUBPROTOCOL_CHARS = frozenset(
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
# Fields of the accept response that the handshake itself owns: the app's copies are dropped.
OWN_FIELDS = frozenset(
    (b"upgrade", b"connection", b"sec-websocket-accept", b"sec-websocket-extensions",
     b"content-length", b"transfer-encoding")
)
# What a 426 answer names: the one version this server speaks (RFC 6455 4.4).
VERSION_FIELD = (b"sec-websocket-version", b"13")


class UpgradeRequired(ProtocolError):
    status = 426


class Handshake(NamedTuple):
    """A valid opening request: its key (HTTP/1.1 only, else None), the subprotocols the
    client offers in order, and its raw ``Sec-WebSocket-Extensions`` offers."""

    key: bytes | None
    subprotocols: list[str]
    offers: list[bytes]


def read_handshake(scope: dict) -> Handshake:
    """The shared checks (RFC 6455 4.2.1, RFC 8441 5): one ``Sec-WebSocket-Version``, and it is
    13 (else 426); at most one ``Sec-WebSocket-Key``, a base64 nonce of 16 bytes when present.

    Raises BadRequest (400) or UpgradeRequired (426).
    """
    key = version = None
    protocols: list[str] = []
    offers: list[bytes] = []
    for name, value in scope["headers"]:
        if name[:14] != b"sec-websocket-":
            continue
        if name == b"sec-websocket-key":
            if key is not None:
                raise BadRequest("more than one Sec-WebSocket-Key")
            key = value
        elif name == b"sec-websocket-version":
            if version is not None:
                raise BadRequest("more than one Sec-WebSocket-Version")
            version = value
        elif name == b"sec-websocket-protocol":
            protocols.extend(p.strip() for p in value.decode("latin-1").split(",") if p.strip())
        elif name == b"sec-websocket-extensions":
            offers.append(value)
    if version is None:
        raise BadRequest("missing Sec-WebSocket-Version")
    if version.strip() != b"13":
        raise UpgradeRequired("unsupported Sec-WebSocket-Version")
    if key is not None:
        try:
            raw = base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 16:
            raise BadRequest("invalid Sec-WebSocket-Key")
    return Handshake(key, protocols, offers)


def accept_token(key: bytes) -> bytes:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def accept_fields(extension: bytes | None, subprotocol: Any, headers: Any) -> list:
    """The accept response's fields the session decides: the negotiated extension, the app's
    subprotocol (checked: a token) and the app's own fields (checked; those the handshake
    owns are dropped). The protocol adds its own (HTTP/1.1: Upgrade, Connection, Accept)."""
    fields = []
    if extension is not None:
        fields.append((b"sec-websocket-extensions", extension))
    if subprotocol is not None:
        raw = subprotocol.encode("ascii", "replace") if isinstance(subprotocol, str) else b""
        if not raw or not all(c in _SUBPROTOCOL_CHARS for c in raw):
            raise AppProtocolError(f"invalid subprotocol {subprotocol!r}")
        fields.append((b"sec-websocket-protocol", raw))
    for name, value in headers:
        check_header(name, value)
        lname = name.lower()
        if lname in OWN_FIELDS or subprotocol is not None and lname == b"sec-websocket-protocol":
            continue
        fields.append((name, value))
    return fields


def websocket_scope(http_scope: dict, handshake: Handshake | None) -> dict:
    """The ASGI ``websocket`` scope for the opening request's ``http`` scope."""
    scope = dict(http_scope)
    del scope["method"]
    scope["type"] = "websocket"
    scope["scheme"] = "wss" if scope["scheme"] in ("https", "wss") else "ws"
    scope["subprotocols"] = handshake.subprotocols if handshake is not None else []
    # the connection's HTTP response extensions (pathsend, early hints...) do not apply
    extensions = {k: v for k, v in (scope.get("extensions") or {}).items() if k[:5] != "http."}
    extensions["websocket.http.response"] = {}
    scope["extensions"] = extensions
    return scope
