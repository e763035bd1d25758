"""The scope side of the ASGI HTTP extensions: what ``scope["extensions"]`` advertises, and the
``tls`` extension's contents. The message side (pathsend, zerocopysend, trailers, early hints)
is the stream's (``stream.py``); the bytes are the protocol's.

The dict is built once per connection; a request whose client sent ``TE: trailers`` gets a copy
with ``http.response.trailers`` added.
"""

from __future__ import annotations

import ssl
from typing import Any

_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
_cipher_ids: dict[str, int] = {}


def _cipher_id(context: ssl.SSLContext | None, name: str | None) -> int | None:
    if name is None:
        return None
    if not _cipher_ids and context is not None:
        for cipher in context.get_ciphers():
            _cipher_ids[cipher["name"]] = cipher["id"] & 0xFFFF
    return _cipher_ids.get(name)


def _rfc4514(subject: Any) -> str | None:
    """``getpeercert()['subject']`` as an RFC 4514 string (most specific RDN first)."""
    if not subject:
        return None
    names = {
        "commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
        "countryName": "C", "stateOrProvinceName": "ST", "localityName": "L",
        "streetAddress": "STREET", "domainComponent": "DC", "userId": "UID",
        "emailAddress": "emailAddress",
    }
    rdns = []
    for rdn in reversed(subject):
        parts = []
        for key, value in rdn:
            escaped = "".join("\\" + c if c in ',+"\\<>;' else c for c in value)
            if escaped[:1] in ("#", " "):
                escaped = "\\" + escaped
            parts.append(f"{names.get(key, key)}={escaped}")
        rdns.append("+".join(parts))
    return ",".join(rdns)


def tls_info(transport: Any, server_cert: str | None) -> dict | None:
    """The ASGI TLS extension for a TLS transport; None for a plain one."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    cipher = ssl_object.cipher()
    der = ssl_object.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
    name = _rfc4514(ssl_object.getpeercert().get("subject")) if der else None
    return {
        "server_cert": server_cert,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version()),
        "cipher_suite": _cipher_id(ssl_object.context, cipher[0] if cipher else None),
    }


def connection_extensions(transport: Any, server_cert: str | None) -> dict:
    extensions: dict[str, Any] = {
        "http.response.pathsend": {},
        "http.response.zerocopysend": {},
        "http.response.early_hint": {},
    }
    info = tls_info(transport, server_cert)
    if info is not None:
        extensions["tls"] = info
    return extensions


def with_trailers(extensions: dict) -> dict:
    """The scope's extensions plus ``http.response.trailers`` (the client sent TE: trailers)."""
    result = dict(extensions)
    result["http.response.trailers"] = {}
    return result
