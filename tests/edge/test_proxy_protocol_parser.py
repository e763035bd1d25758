"""The PROXY protocol header parser, sans-IO: every case whole, byte by byte, and followed by
the relayed connection's first bytes (which must come back untouched in ``rest``).

The encoder here is written from HAProxy's doc/proxy-protocol.txt; the HAProxy-made headers are
in tests/deploy/test_haproxy.py.
"""

from __future__ import annotations

import socket
import struct

import pytest

from gworkers.proxy_protocol import (
    V2_SIGNATURE,
    HeaderReader,
    ProxyHeader,
    ProxyProtocolError,
    crc32c,
    looks_like_header,
    parse,
)

TRAILING = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack(">BH", kind, len(value)) + value


def v2(command: int = 1, fam: int = 0x11, addresses: bytes = b"", tlvs: bytes = b"",
       version: int = 2, length: int | None = None, crc: bool = False) -> bytes:
    """A v2 header; ``crc`` appends a PP2_TYPE_CRC32C TLV holding the right checksum."""
    body = addresses + tlvs
    if crc:
        body += tlv(0x03, b"\0\0\0\0")
    size = len(body) if length is None else length
    header = V2_SIGNATURE + bytes([(version << 4) | command, fam]) + struct.pack(">H", size) + body
    if crc:
        header = header[:-4] + struct.pack(">I", crc32c(header))
    return header


def inet(src: str, dst: str, sport: int, dport: int) -> bytes:
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack(">HH", sport, dport)


def inet6(src: str, dst: str, sport: int, dport: int) -> bytes:
    return (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
            + struct.pack(">HH", sport, dport))


def unix(src: bytes, dst: bytes) -> bytes:
    return src.ljust(108, b"\0") + dst.ljust(108, b"\0")


SSL_TLV = tlv(0x20, bytes([0x01]) + struct.pack(">I", 0) + tlv(0x21, b"TLSv1.3")
              + tlv(0x23, b"TLS_AES_128_GCM_SHA256"))
ADDR4 = inet("203.0.113.7", "198.51.100.1", 56324, 443)
CLIENT4 = ("203.0.113.7", 56324)
SERVER4 = ("198.51.100.1", 443)
UNKNOWN1 = ProxyHeader(1, True, "UNKNOWN")
UNKNOWN2 = ProxyHeader(2, True, "UNKNOWN")

VALID = {
    # --- v1
    "v1-tcp4": (b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 443\r\n",
                ProxyHeader(1, False, "TCP4", CLIENT4, SERVER4)),
    "v1-tcp4-extremes": (b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n",
                         ProxyHeader(1, False, "TCP4", ("0.0.0.0", 0), ("255.255.255.255", 65535))),
    "v1-tcp6": (b"PROXY TCP6 2001:db8::7 2001:db8::1 56324 443\r\n",
                ProxyHeader(1, False, "TCP6", ("2001:db8::7", 56324), ("2001:db8::1", 443))),
    "v1-tcp6-full-uppercase": (
        b"PROXY TCP6 2001:0DB8:0000:0000:0000:0000:0000:0007 ::1 1 2\r\n",
        ProxyHeader(1, False, "TCP6", ("2001:db8::7", 1), ("::1", 2))),
    "v1-tcp6-v4-mapped": (b"PROXY TCP6 ::ffff:203.0.113.7 ::ffff:198.51.100.1 1 2\r\n",
                          ProxyHeader(1, False, "TCP6", ("::ffff:203.0.113.7", 1),
                                      ("::ffff:198.51.100.1", 2))),
    "v1-unknown-short": (b"PROXY UNKNOWN\r\n", UNKNOWN1),
    "v1-unknown-long": (b"PROXY UNKNOWN 2001:db8::7 2001:db8::1 56324 443\r\n", UNKNOWN1),
    # the longest line the spec allows: 107 bytes, CRLF included
    "v1-unknown-107": (b"PROXY UNKNOWN " + b"f" * 91 + b"\r\n", UNKNOWN1),
    # --- v2
    "v2-inet": (v2(addresses=ADDR4), ProxyHeader(2, False, "TCP4", CLIENT4, SERVER4)),
    "v2-inet6": (v2(fam=0x21, addresses=inet6("2001:db8::7", "2001:db8::1", 56324, 443)),
                 ProxyHeader(2, False, "TCP6", ("2001:db8::7", 56324), ("2001:db8::1", 443))),
    "v2-unix": (v2(fam=0x31, addresses=unix(b"/run/client.sock", b"/run/haproxy.sock")),
                ProxyHeader(2, False, "UNIX", ("/run/client.sock", None),
                            ("/run/haproxy.sock", None))),
    "v2-unix-abstract": (v2(fam=0x31, addresses=unix(b"\0peer", b"")),
                         ProxyHeader(2, False, "UNIX", ("@peer", None), ("", None))),
    "v2-local": (v2(command=0, fam=0x00), UNKNOWN2),
    # LOCAL: the length is honoured whatever it covers, and the family is ignored
    "v2-local-with-block": (v2(command=0, fam=0x11, addresses=ADDR4 + b"\xff\xff"), UNKNOWN2),
    "v2-unspec": (v2(fam=0x00, addresses=b"anything at all"), UNKNOWN2),
    # datagrams: the spec lets a receiver fall back to the real endpoints
    "v2-udp4": (v2(fam=0x12, addresses=ADDR4), UNKNOWN2),
    "v2-udp6-unix-dgram": (v2(fam=0x32, addresses=unix(b"/a", b"/b")), UNKNOWN2),
    "v2-tlvs": (v2(addresses=ADDR4, tlvs=tlv(0x01, b"http/1.1") + tlv(0x02, b"example.com")
                   + tlv(0x04, b"") + tlv(0x05, b"id-1") + tlv(0xE0, b"custom")),
                ProxyHeader(2, False, "TCP4", CLIENT4, SERVER4, False,
                            ((0x01, b"http/1.1"), (0x02, b"example.com"), (0x04, b""),
                             (0x05, b"id-1"), (0xE0, b"custom")))),
    "v2-ssl": (v2(addresses=ADDR4, tlvs=SSL_TLV),
               ProxyHeader(2, False, "TCP4", CLIENT4, SERVER4, True, ((0x20, SSL_TLV[3:]),))),
    "v2-ssl-not-tls": (v2(addresses=ADDR4, tlvs=tlv(0x20, b"\x00\x00\x00\x00\x00")),
                       ProxyHeader(2, False, "TCP4", CLIENT4, SERVER4, False,
                                   ((0x20, b"\x00\x00\x00\x00\x00"),))),
    "v2-crc32c": (v2(addresses=ADDR4, tlvs=tlv(0x01, b"h2"), crc=True), None),
    "v2-inet-block-longer-than-addresses-no-tlv": (
        v2(addresses=ADDR4, tlvs=tlv(0x04, b"\0" * 300)),
        ProxyHeader(2, False, "TCP4", CLIENT4, SERVER4, False, ((0x04, b"\0" * 300),))),
}

MALFORMED = {
    # --- not a header at all
    "http": b"GET / HTTP/1.1\r\n\r\n",
    "tls-client-hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    "lowercase-proxy": b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    "crlf-first": b"\r\nGET / HTTP/1.1\r\n\r\n",
    # --- v1
    "v1-no-space": b"PROXY\r\n",
    "v1-proto": b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
    "v1-udp": b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
    "v1-missing-field": b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
    "v1-extra-field": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
    "v1-double-space": b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
    "v1-trailing-space": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
    "v1-tab": b"PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n",
    "v1-ipv4-leading-zero": b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
    "v1-ipv4-octet": b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
    "v1-ipv4-three-parts": b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
    "v1-ipv4-name": b"PROXY TCP4 localhost 5.6.7.8 1 2\r\n",
    "v1-ipv6-in-tcp4": b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
    "v1-ipv4-in-tcp6": b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
    "v1-ipv6-zone": b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
    "v1-ipv6-two-gaps": b"PROXY TCP6 1::2::3 ::1 1 2\r\n",
    "v1-ipv6-brackets": b"PROXY TCP6 [::1] ::1 1 2\r\n",
    "v1-port-too-big": b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
    "v1-port-leading-zero": b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n",
    "v1-port-sign": b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n",
    "v1-port-negative": b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
    "v1-port-unicode-digit": "PROXY TCP4 1.2.3.4 5.6.7.8 ٨٠ 2\r\n".encode(),
    "v1-bare-lf": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
    "v1-bare-cr": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
    "v1-cr-inside": b"PROXY UNKNOWN \r \r\n",
    "v1-lf-inside": b"PROXY UNKNOWN \n \r\n",
    "v1-108-bytes": b"PROXY UNKNOWN " + b"f" * 92 + b"\r\n",
    "v1-no-crlf-ever": b"PROXY UNKNOWN " + b"f" * 200,
    # --- v2
    "v2-signature": V2_SIGNATURE[:11] + b"\x0b\x21\x11\x00\x0c" + ADDR4,
    "v2-version-1": v2(version=1, addresses=ADDR4),
    "v2-version-3": v2(version=3, addresses=ADDR4),
    "v2-command-2": v2(command=2, addresses=ADDR4),
    "v2-command-15": v2(command=15, addresses=ADDR4),
    "v2-family-4": v2(fam=0x41, addresses=ADDR4),
    "v2-transport-3": v2(fam=0x13, addresses=ADDR4),
    "v2-unspec-stream": v2(fam=0x01, addresses=ADDR4),
    "v2-inet-unspec-transport": v2(fam=0x10, addresses=ADDR4),
    "v2-inet-short": v2(addresses=ADDR4[:11]),
    "v2-inet6-short": v2(fam=0x21, addresses=b"\0" * 35),
    "v2-unix-short": v2(fam=0x31, addresses=b"\0" * 215),
    "v2-tlv-truncated": v2(addresses=ADDR4, tlvs=b"\x01\x00"),
    "v2-tlv-overrun": v2(addresses=ADDR4, tlvs=b"\x01\x00\x05abc"),
    "v2-ssl-short": v2(addresses=ADDR4, tlvs=tlv(0x20, b"\x01\0\0\0")),
    "v2-ssl-sub-overrun": v2(addresses=ADDR4, tlvs=tlv(0x20, b"\x01\0\0\0\0" + b"\x21\x00\x09TLS")),
    "v2-ssl-sub-truncated": v2(addresses=ADDR4, tlvs=tlv(0x20, b"\x01\0\0\0\0\x21")),
    "v2-crc-wrong": v2(addresses=ADDR4, tlvs=tlv(0x03, b"\x12\x34\x56\x78")),
    "v2-crc-length": v2(addresses=ADDR4, tlvs=tlv(0x03, b"\0\0\0")),
    "v2-crc-twice": v2(addresses=ADDR4, tlvs=tlv(0x03, b"\0\0\0\0") * 2),
}


def expected(data: bytes, want: ProxyHeader | None) -> ProxyHeader:
    if want is None:  # the CRC case: the TLVs hold the checksum just computed
        return ProxyHeader(2, False, "TCP4", CLIENT4, SERVER4, False,
                           ((0x01, b"h2"), (0x03, data[-4:])))
    return want


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_whole(name):
    data, want = VALID[name]
    assert parse(data) == (expected(data, want), len(data))


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_with_trailing_bytes(name):
    data, want = VALID[name]
    reader = HeaderReader()
    assert reader.feed(data + TRAILING) == expected(data, want)
    assert reader.rest == TRAILING


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_byte_by_byte(name):
    data, want = VALID[name]
    reader = HeaderReader()
    for i in range(len(data) - 1):
        assert reader.feed(data[i : i + 1]) is None, f"complete after {i + 1} of {len(data)} bytes"
    assert reader.feed(data[-1:] + TRAILING) == expected(data, want)
    assert reader.rest == TRAILING


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_whole_and_with_trailing_bytes(name):
    data = MALFORMED[name]
    with pytest.raises(ProxyProtocolError):
        parse(data)
    with pytest.raises(ProxyProtocolError):
        HeaderReader().feed(data + TRAILING)


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_byte_by_byte(name):
    """Refused by the time the last byte arrives (often earlier: HTTP at its first byte)."""
    data = MALFORMED[name]
    reader = HeaderReader()
    with pytest.raises(ProxyProtocolError):
        for i in range(len(data)):
            assert reader.feed(data[i : i + 1]) is None


@pytest.mark.parametrize("data", [b"G", b"\x16", b"PROXX", V2_SIGNATURE[:5] + b"X"])
def test_refused_as_soon_as_it_cannot_be_a_header(data):
    with pytest.raises(ProxyProtocolError):
        HeaderReader().feed(data)


def test_v2_length_is_checked_before_the_block_arrives():
    """A PROXY/INET header announcing fewer bytes than its addresses need is refused at its
    16th byte, before any address byte is waited for."""
    with pytest.raises(ProxyProtocolError, match="needs 12"):
        HeaderReader().feed(V2_SIGNATURE + b"\x21\x11\x00\x04")


def test_v2_largest_header_is_read():
    """The length field is 16 bits: a 65,535-byte block (a NOOP TLV pads it) is a header."""
    data = v2(addresses=ADDR4, tlvs=tlv(0x04, b"\0" * (65535 - 12 - 3)))
    assert len(data) == 16 + 65535
    header, size = parse(data + b"x")
    assert size == len(data) and header.client == CLIENT4


def test_versions_can_be_restricted():
    one = VALID["v1-tcp4"][0]
    two = VALID["v2-inet"][0]
    assert parse(one, v1=True, v2=False)[0].version == 1
    assert parse(two, v1=False, v2=True)[0].version == 2
    with pytest.raises(ProxyProtocolError, match="v2 header"):
        parse(one, v1=False, v2=True)
    with pytest.raises(ProxyProtocolError, match="v1 header"):
        parse(two, v1=True, v2=False)


def test_crc32c_known_answer():
    # RFC 3720 B.4 / the common check value of CRC-32C
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"\0" * 32) == 0x8A9136AA


@pytest.mark.parametrize("data,answer", [
    (b"", None), (b"P", None), (b"PROXY", None), (b"PROXY ", True), (b"PROXY TCP4", True),
    (b"\r\n", None), (V2_SIGNATURE[:11], None), (V2_SIGNATURE, True), (V2_SIGNATURE + b"!", True),
    (b"GET", False), (b"PRI * HTTP/2.0", False), (b"PROXX", False), (b"\r\nGET", False),
    (b"\x16\x03\x01", False), (b"proxy ", False),
])
def test_looks_like_header(data, answer):
    assert looks_like_header(data) is answer
