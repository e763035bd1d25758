"""RFC 7541 (HPACK) conformance, through RFC 9113 4.3: every field representation is decoded
(6.1-6.3), and a block that does not decode -- an index outside both tables (2.3.3, 6.1), a
dynamic table size update past SETTINGS_HEADER_TABLE_SIZE or not at the start of a block
(4.2, 6.3), bad Huffman padding or the EOS symbol (5.2), an integer or a string that runs past
the block (5.1, 5.2) -- is a connection error of type COMPRESSION_ERROR. On both workers over
h2c, a few over TLS. The case list follows h2spec's "generic" 5 and "hpack" groups."""

from __future__ import annotations

from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

from tests.h2.conformance import Case, E, answered, conn_error, corpus_tests
from tests.h2.rawframes import END_HEADERS, END_STREAM, HEADERS, RawH2, frame

_huffman = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH).encode
COMPRESSION = E.COMPRESSION_ERROR


def _string(value: bytes, huffman: bool = False) -> bytes:
    """A string literal (RFC 7541 5.2); lengths stay under the 7-bit prefix here."""
    if huffman:
        value = _huffman(value)
        return bytes([0x80 | len(value)]) + value
    return bytes([len(value)]) + value


def _base(conn: RawH2) -> bytes:
    """The request's pseudo-header fields from the static table and literals, indexing
    nothing, so the dynamic table holds only what a case adds: GET, http(s), /, then
    :authority (name index 1) without indexing."""
    return bytes([0x82, 0x87 if conn.tls else 0x86, 0x84, 0x01]) + _string(b"localhost")


def _block(before: bytes = b"", after: bytes = b""):
    """A case sending one request whose header block is ``before`` + the base + ``after``."""

    def send(conn: RawH2) -> int:
        conn.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, before + _base(conn) + after))
        return 1

    return send


# user-agent is static index 58 (6 bits: 0x3a; 4 bits: 0x0f then 58 - 15 = 43)
_NAME_58_6 = bytes([0x40 | 0x3A])
_NAME_58_4 = bytes([0x0F, 58 - 15])
_NEW = _string(b"x-new")
CASES = [
    # RFC 7541 6.1-6.3: every representation decodes
    Case("6.1/indexed", "RFC 7541 6.1", _block(after=b"\x90"), answered()),
    *[Case(f"6.2.{kind}/{name}{'-huffman' if huff else ''}", f"RFC 7541 6.2.{kind}",
           _block(after=prefix + _string(b"h2-conformance", huff)), answered())
      for kind, (name, prefix) in [
          (1, ("indexed-name", _NAME_58_6)), (1, ("new-name", b"\x40" + _NEW)),
          (2, ("indexed-name", _NAME_58_4)), (2, ("new-name", b"\x00" + _NEW)),
          (3, ("indexed-name", bytes([0x1F, 43]))), (3, ("new-name", b"\x10" + _NEW))]
      for huff in (False, True)],
    Case("6.2.1/new-name-huffman-name", "RFC 7541 6.2.1",
         _block(after=b"\x40" + _string(b"x-new", True) + _string(b"v", True)), answered()),
    Case("6.1/dynamic-table-reference", "RFC 7541 2.3.3, 6.1",
         _block(after=b"\x40" + _NEW + _string(b"one") + b"\xbe"), answered()),
    Case("6.3/table-size-update", "RFC 7541 6.3", _block(before=b"\x3f\xe1\x1f"), answered()),
    Case("6.3/two-table-size-updates", "RFC 7541 4.2, 6.3", _block(before=b"\x20\x3f\xe1\x1f"),
         answered()),
    # decoding errors: COMPRESSION_ERROR (RFC 9113 4.3)
    Case("2.3.3/indexed-invalid-index", "RFC 7541 2.3.3", _block(after=b"\xc6"),
         conn_error(COMPRESSION)),
    Case("2.3.3/literal-invalid-name-index", "RFC 7541 2.3.3", _block(after=b"\x7f\x07\x00"),
         conn_error(COMPRESSION)),
    Case("6.1/index-0", "RFC 7541 6.1", _block(after=b"\x80"), conn_error(COMPRESSION)),
    Case("4.2/table-size-update-at-end", "RFC 7541 4.2", _block(after=b"\x21"),
         conn_error(COMPRESSION)),
    Case("6.3/table-size-update-over-settings", "RFC 7541 6.3",
         _block(before=b"\x3f\xe2\x1f"), conn_error(COMPRESSION)),  # 4097 > 4096
    Case("5.2/huffman-padding-over-7-bits", "RFC 7541 5.2",
         _block(after=b"\x00\x85\xf2\xb2\x4a\x84\xff\x84\x49\x50\x9f\xff"),
         conn_error(COMPRESSION)),
    Case("5.2/huffman-padded-with-zeros", "RFC 7541 5.2",
         _block(after=b"\x00\x85\xf2\xb2\x4a\x84\xff\x83\x49\x50\x90"), conn_error(COMPRESSION)),
    Case("5.2/huffman-eos", "RFC 7541 5.2",
         _block(after=b"\x00\x85\xf2\xb2\x4a\x84\xff\x87\x49\x51\xff\xff\xff\xfa\x7f"),
         conn_error(COMPRESSION)),
    Case("5.1/integer-truncated", "RFC 7541 5.1", _block(after=b"\xff\x80"),
         conn_error(COMPRESSION)),
    Case("5.1/integer-too-large", "RFC 7541 5.1", _block(after=b"\xff" + b"\xff" * 10 + b"\x7f"),
         conn_error(COMPRESSION)),
    Case("5.2/string-past-block", "RFC 7541 5.2", _block(after=b"\x00\x85ab"),
         conn_error(COMPRESSION)),
]
TLS_CASES = ["6.2.1/new-name-huffman", "5.2/huffman-eos"]


test_hpack, test_hpack_over_tls, test_cases_are_named_once = corpus_tests(CASES, TLS_CASES)
