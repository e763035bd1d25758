"""Unmasked server frames for the common case, shared by both engine adapters.

With no extension negotiated a server data frame is a 2-10 byte header and the payload
(RFC 6455 5.2); building it here costs a fraction of a library's general frame serialiser,
and it is on every message the app sends.
"""

from __future__ import annotations

import struct
from typing import Any

_H16 = struct.Struct("!BBH").pack
_H64 = struct.Struct("!BBQ").pack
TEXT = 0x81  # FIN + text
BINARY = 0x82  # FIN + binary
# the 2-byte headers of final text frames with payloads of 0-125 bytes: one index, no packing
SMALL_TEXT = tuple(bytes((TEXT, n)) for n in range(126))


def data_frame(first: int, payload: bytes) -> bytes:
    """One final, unmasked frame: ``first`` is the FIN bit and opcode byte."""
    n = len(payload)
    if n < 126:
        return bytes((first, n)) + payload
    if n < 65536:
        return _H16(first, 126, n) + payload
    return _H64(first, 127, n) + payload


def valid_close_code(code: Any) -> bool:
    """Codes an endpoint may send (RFC 6455 7.4.1/7.4.2): not 1004-1006 or 1015."""
    return type(code) is int and (
        1000 <= code <= 1014 and code not in (1004, 1005, 1006) or 3000 <= code <= 4999
    )
