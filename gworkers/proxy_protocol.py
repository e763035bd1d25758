"""PROXY protocol v1 and v2 headers, sans-IO: bytes in, a header (or "need more", or an error) out.

HAProxy's specification (doc/proxy-protocol.txt) is the reference. A proxy that speaks it puts
one header before the first byte of the relayed connection, telling the receiver the addresses
the proxy saw: who connected (the client) and to what (the server). The receiver must be told by
configuration that the header is there and must not guess, so the parser has no "maybe" answer:
bytes that cannot begin a header are an error as soon as they arrive, and so is any header that
does not match the grammar exactly (the specification asks receivers to abort those).

* v1 is one text line: ``PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\\r\\n``, or ``PROXY UNKNOWN``
  followed by anything up to the CRLF; 107 bytes at most, CRLF included. Addresses in canonical
  form (no leading zeros in IPv4, no zone in IPv6), ports decimal without leading zeros.
* v2 is binary: a 12-byte signature, version 2, command LOCAL or PROXY, an address family and
  transport, a length, the addresses, then TLVs. Only the combinations the specification lists
  are accepted; DGRAM ones fall back to the real endpoints, as it allows. The TLV list must fill
  the header exactly; a CRC32C TLV is verified, and PP2_TYPE_SSL says whether the client spoke
  TLS to the proxy.

LOCAL (a health check from the proxy itself), ``UNKNOWN`` and AF_UNSPEC carry no usable address:
the result says ``local`` and the connection keeps its own endpoints.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

V1_PREFIX = b"PROXY "
V1_MAX = 107  # the longest v1 line, CRLF included
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED = 16  # signature, version/command, family/transport, length

# v2 commands
LOCAL = 0x0
PROXY = 0x1
# v2 family/transport bytes the specification lists, and the address block each one needs
_V2_ADDRESS_SIZE = {0x00: 0, 0x11: 12, 0x12: 12, 0x21: 36, 0x22: 36, 0x31: 216, 0x32: 216}
_V2_STREAM = {0x11: "TCP4", 0x21: "TCP6", 0x31: "UNIX"}  # the ones whose addresses are used
UNIX_PATH = 108  # sizeof(sun_path)

# TLV types read here (the others are kept but not interpreted)
PP2_TYPE_CRC32C = 0x03
PP2_TYPE_SSL = 0x20
PP2_CLIENT_SSL = 0x01

_HEX6 = frozenset(b"0123456789abcdefABCDEF:.")


class ProxyProtocolError(ValueError):
    """The bytes are not a valid PROXY protocol header: the connection must be dropped."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """What one header said.

    ``local``: use the connection's own endpoints (LOCAL, ``UNKNOWN``, AF_UNSPEC, datagrams).
    Otherwise ``client`` and ``server`` are ``(host, port)`` for TCP, or ``(path, None)`` for a
    unix socket (``family`` says which). ``tls``: v2's PP2_TYPE_SSL said the client connected to
    the proxy over TLS. ``tlvs``: every v2 TLV, ``(type, value)``, in order.
    """

    version: int
    local: bool
    family: str  # TCP4, TCP6, UNIX, or UNKNOWN
    client: tuple | None = None
    server: tuple | None = None
    tls: bool = False
    tlvs: tuple[tuple[int, bytes], ...] = ()


def parse(data: bytes, v1: bool = True, v2: bool = True) -> tuple[ProxyHeader, int] | None:
    """The header at the start of ``data`` and its length in bytes, or None if more is needed.

    ``v1`` / ``v2``: which versions are accepted. Raises ProxyProtocolError as soon as the bytes
    cannot be (the start of) an accepted header.
    """
    if not data:
        return None
    first = data[0]
    if v2 and first == V2_SIGNATURE[0]:
        return _parse_v2(data)
    if v1 and first == V1_PREFIX[0]:
        return _parse_v1(data)
    versions = "v1 or v2" if v1 and v2 else "v1" if v1 else "v2"
    raise ProxyProtocolError(f"the connection does not start with a PROXY protocol {versions} header")


def looks_like_header(data: bytes) -> bool | None:
    """Whether ``data`` starts like a PROXY header of either version; None: too short to tell.

    For peers that may not send one: their header is refused instead of parsed as HTTP.
    """
    undecided = False
    for prefix in (V1_PREFIX, V2_SIGNATURE):
        n = min(len(data), len(prefix))
        if data[:n] == prefix[:n]:
            if n == len(prefix):
                return True
            undecided = True
    return None if undecided else False


class HeaderReader:
    """Buffers bytes until a whole header is there: ``feed`` returns it, or None for more.

    After a header, ``rest`` holds the bytes that followed it (the relayed connection's first
    bytes). Errors are raised by ``feed`` as ProxyProtocolError.
    """

    __slots__ = ("buffer", "rest", "v1", "v2")

    def __init__(self, v1: bool = True, v2: bool = True) -> None:
        self.v1 = v1
        self.v2 = v2
        self.buffer = b""
        self.rest = b""

    def feed(self, data: bytes) -> ProxyHeader | None:
        buffer = self.buffer + data if self.buffer else data
        found = parse(buffer, self.v1, self.v2)
        if found is None:
            self.buffer = buffer
            return None
        header, size = found
        self.buffer = b""
        self.rest = buffer[size:]
        return header


# ---------------------------------------------------------------------- version 1
def _parse_v1(data: bytes) -> tuple[ProxyHeader, int] | None:
    n = min(len(data), len(V1_PREFIX))
    if data[:n] != V1_PREFIX[:n]:
        raise ProxyProtocolError("not a PROXY protocol v1 line")
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        window = data[:V1_MAX]
        if b"\n" in window or b"\r" in window[:-1]:
            raise ProxyProtocolError("v1 line ends with a bare CR or LF")
        if len(data) >= V1_MAX:
            raise ProxyProtocolError(f"v1 line without CRLF in its first {V1_MAX} bytes")
        return None
    line = data[len(V1_PREFIX) : end]
    if b"\r" in line or b"\n" in line:
        raise ProxyProtocolError("bare CR or LF in a v1 line")
    size = end + 2
    if line == b"UNKNOWN" or line.startswith(b"UNKNOWN "):
        return ProxyHeader(1, True, "UNKNOWN"), size  # the rest of the line is ignored
    fields = line.split(b" ")
    if len(fields) != 5:
        raise ProxyProtocolError("v1 line does not have exactly five fields after PROXY")
    proto, src, dst, sport, dport = fields
    if proto == b"TCP4":
        check = _ipv4
    elif proto == b"TCP6":
        check = _ipv6
    else:
        raise ProxyProtocolError("v1 protocol is not TCP4, TCP6 or UNKNOWN")
    client = (check(src), _port(sport))
    server = (check(dst), _port(dport))
    return ProxyHeader(1, False, proto.decode(), client, server), size


def _ipv4(text: bytes) -> str:
    # canonical form is what inet_ntop gives back: four decimal numbers 0-255, no leading zeros
    try:
        value = text.decode("ascii")
        canonical = socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, value))
    except (UnicodeDecodeError, OSError):
        canonical = None
    if canonical != value:
        raise ProxyProtocolError("not an IPv4 address in canonical form")
    return value


def _ipv6(text: bytes) -> str:
    if not text or not set(text) <= _HEX6:
        raise ProxyProtocolError("not an IPv6 address")
    try:
        packed = socket.inet_pton(socket.AF_INET6, text.decode())
    except OSError:
        raise ProxyProtocolError("not an IPv6 address") from None
    return socket.inet_ntop(socket.AF_INET6, packed)


def _decimal(text: bytes, top: int) -> int | None:
    """A decimal number without leading zeros, at most ``top``; None if not."""
    # (bytes.isdigit is ASCII-only)
    if not text.isdigit() or len(text) > 5 or (len(text) > 1 and text[0] == 48):
        return None
    value = int(text)
    return value if value <= top else None


def _port(text: bytes) -> int:
    value = _decimal(text, 65535)
    if value is None:
        raise ProxyProtocolError("v1 port is not a decimal number 0-65535 without leading zeros")
    return value


# ---------------------------------------------------------------------- version 2
def _parse_v2(data: bytes) -> tuple[ProxyHeader, int] | None:
    n = min(len(data), len(V2_SIGNATURE))
    if data[:n] != V2_SIGNATURE[:n]:
        raise ProxyProtocolError("not a PROXY protocol v2 signature")
    if len(data) > 12:
        version, command = data[12] >> 4, data[12] & 0x0F
        if version != 2:
            raise ProxyProtocolError(f"v2 header with version {version}")
        if command not in (LOCAL, PROXY):
            raise ProxyProtocolError(f"v2 header with unassigned command {command}")
    if len(data) > 13 and data[13] not in _V2_ADDRESS_SIZE:
        raise ProxyProtocolError(f"v2 header with unassigned family/transport 0x{data[13]:02x}")
    if len(data) < V2_FIXED:
        return None
    command, family = data[12] & 0x0F, data[13]
    length = int.from_bytes(data[14:16], "big")
    address_size = _V2_ADDRESS_SIZE[family]
    if command == PROXY and length < address_size:
        raise ProxyProtocolError(f"v2 address block of {length} bytes, family needs {address_size}")
    size = V2_FIXED + length
    if len(data) < size:
        return None
    if command == LOCAL or family == 0x00:
        # the block is skipped unread: its layout is not defined without a family
        return ProxyHeader(2, True, "UNKNOWN"), size
    block = data[V2_FIXED:size]
    tlvs, tls = _tlvs(data, address_size, size)
    kind = _V2_STREAM.get(family)
    if kind is None:  # datagrams: fall back to the real endpoints, as the spec allows
        return ProxyHeader(2, True, "UNKNOWN", tls=tls, tlvs=tlvs), size
    if kind == "TCP4":
        client = (socket.inet_ntop(socket.AF_INET, block[0:4]), int.from_bytes(block[8:10], "big"))
        server = (socket.inet_ntop(socket.AF_INET, block[4:8]), int.from_bytes(block[10:12], "big"))
    elif kind == "TCP6":
        client = (socket.inet_ntop(socket.AF_INET6, block[0:16]), int.from_bytes(block[32:34], "big"))
        server = (socket.inet_ntop(socket.AF_INET6, block[16:32]), int.from_bytes(block[34:36], "big"))
    else:
        client = (_unix_path(block[:UNIX_PATH]), None)
        server = (_unix_path(block[UNIX_PATH : 2 * UNIX_PATH]), None)
    return ProxyHeader(2, False, kind, client, server, tls, tlvs), size


def _unix_path(raw: bytes) -> str:
    """A ``sun_path``: up to its first NUL; a Linux abstract name (leading NUL) as ``@name``."""
    if raw[:1] == b"\x00":
        name = raw[1:].rstrip(b"\x00")
        return "@" + name.decode("utf-8", "surrogateescape") if name else ""
    return raw.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


def _tlvs(data: bytes, start: int, size: int) -> tuple[tuple[tuple[int, bytes], ...], bool]:
    """Walk the TLVs after the addresses (``start`` in the block) to the header's end exactly."""
    found = []
    tls = False
    crc_at = -1
    pos = V2_FIXED + start
    while pos < size:
        if size - pos < 3:
            raise ProxyProtocolError("v2 TLV truncated")
        kind = data[pos]
        length = int.from_bytes(data[pos + 1 : pos + 3], "big")
        pos += 3
        if pos + length > size:
            raise ProxyProtocolError(f"v2 TLV 0x{kind:02x} runs past the header")
        value = data[pos : pos + length]
        if kind == PP2_TYPE_CRC32C:
            if length != 4 or crc_at >= 0:
                raise ProxyProtocolError("v2 CRC32C TLV malformed or repeated")
            crc_at = pos
        elif kind == PP2_TYPE_SSL:
            tls = _ssl_tlv(value) or tls
        found.append((kind, bytes(value)))
        pos += length
    if crc_at >= 0:
        header = bytearray(data[:size])
        header[crc_at : crc_at + 4] = b"\x00\x00\x00\x00"
        if crc32c(header) != int.from_bytes(data[crc_at : crc_at + 4], "big"):
            raise ProxyProtocolError("v2 header fails its CRC32C checksum")
    return tuple(found), tls


def _ssl_tlv(value: bytes) -> bool:
    """PP2_TYPE_SSL: ``client`` flags, ``verify``, then sub-TLVs that must fill the value."""
    if len(value) < 5:
        raise ProxyProtocolError("v2 SSL TLV shorter than its fixed part")
    pos = 5
    while pos < len(value):
        if len(value) - pos < 3:
            raise ProxyProtocolError("v2 SSL sub-TLV truncated")
        length = int.from_bytes(value[pos + 1 : pos + 3], "big")
        pos += 3 + length
        if pos > len(value):
            raise ProxyProtocolError("v2 SSL sub-TLV runs past its TLV")
    return bool(value[0] & PP2_CLIENT_SSL)


# ---------------------------------------------------------------------- CRC32C (RFC 4960 B)
_CRC32C_TABLE: list[int] = []


def crc32c(data: bytes | bytearray) -> int:
    """CRC-32C (Castagnoli), reflected, as SCTP and the PROXY protocol's TLV define it.

    A table-driven loop in Python: headers are a few hundred bytes, and only a proxy configured
    to send the checksum pays for it. The table is built on first use.
    """
    table = _CRC32C_TABLE
    if not table:
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            table.append(c)
    crc = 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
