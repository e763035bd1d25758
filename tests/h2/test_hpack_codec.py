"""Sans-IO tests of gworkers' HPACK codec (gworkers/http/h2/hpack_codec.py).

The decoder is checked against RFC 7541 Appendix C (bytes typed from the RFC's text), against
the ``hpack`` package's encoder (which indexes, uses Huffman, evicts and sends size updates),
for its block cache, and for every COMPRESSION_ERROR it must raise. The encoder is checked by
decoding its output with the ``hpack`` package's decoder, the reference.
"""

from __future__ import annotations

import random

import hpack
import pytest
from hpack import NeverIndexedHeaderTuple

from gworkers.http.h2.hpack_codec import Decoder, Encoder, HeaderListTooLarge, HPACKError

BIG_LIST = 1 << 20  # a header list limit that no test but the limit's own reaches


def block(text: str) -> bytes:
    """A header block written as in the RFC's examples: hex, spaces between groups."""
    return bytes.fromhex(text.replace(" ", ""))


def literal(prefix: int, name: bytes, value: bytes) -> bytes:
    """A literal field with a new name and short (< 127 byte) plain strings."""
    return bytes((prefix, len(name))) + name + bytes((len(value),)) + value


# ---------------------------------------------------------------------- RFC 7541 Appendix C
def test_c2_1_literal_with_indexing():
    decoder = Decoder(BIG_LIST)
    fields = decoder.decode(block(
        "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"))
    assert fields == [(b"custom-key", b"custom-header")]
    assert decoder.entries == [(b"custom-key", b"custom-header")]
    assert decoder.size == 55


@pytest.mark.parametrize(("text", "field"), [
    ("040c 2f73 616d 706c 652f 7061 7468", (b":path", b"/sample/path")),  # C.2.2
    ("1008 7061 7373 776f 7264 0673 6563 7265 74", (b"password", b"secret")),  # C.2.3
    ("82", (b":method", b"GET")),  # C.2.4
], ids=["C.2.2-without-indexing", "C.2.3-never-indexed", "C.2.4-indexed"])
def test_c2_fields_that_do_not_index(text, field):
    decoder = Decoder(BIG_LIST)
    assert decoder.decode(block(text)) == [field]
    assert decoder.entries == []
    assert decoder.size == 0


REQUEST_1 = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
             (b":authority", b"www.example.com")]
REQUEST_2 = [*REQUEST_1, (b"cache-control", b"no-cache")]
REQUEST_3 = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/index.html"),
             (b":authority", b"www.example.com"), (b"custom-key", b"custom-value")]
REQUEST_TABLES = [
    ([(b":authority", b"www.example.com")], 57),
    ([(b"cache-control", b"no-cache"), (b":authority", b"www.example.com")], 110),
    ([(b"custom-key", b"custom-value"), (b"cache-control", b"no-cache"),
      (b":authority", b"www.example.com")], 164),
]
C3 = ["8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
      "8286 84be 5808 6e6f 2d63 6163 6865",
      "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"]
C4 = ["8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
      "8286 84be 5886 a8eb 1064 9cbf",
      "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"]


@pytest.mark.parametrize("blocks", [C3, C4], ids=["C.3-plain", "C.4-huffman"])
def test_c3_c4_request_sequence_on_one_decoder(blocks):
    decoder = Decoder(BIG_LIST)
    for text, request, (entries, size) in zip(blocks, [REQUEST_1, REQUEST_2, REQUEST_3],
                                              REQUEST_TABLES, strict=True):
        assert decoder.decode(block(text)) == request
        assert decoder.entries == entries
        assert decoder.size == size


DATE_21 = b"Mon, 21 Oct 2013 20:13:21 GMT"
DATE_22 = b"Mon, 21 Oct 2013 20:13:22 GMT"
LOCATION = (b"location", b"https://www.example.com")
COOKIE = (b"set-cookie", b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1")
RESPONSES = [
    [(b":status", b"302"), (b"cache-control", b"private"), (b"date", DATE_21), LOCATION],
    [(b":status", b"307"), (b"cache-control", b"private"), (b"date", DATE_21), LOCATION],
    [(b":status", b"200"), (b"cache-control", b"private"), (b"date", DATE_22), LOCATION,
     (b"content-encoding", b"gzip"), COOKIE],
]
RESPONSE_TABLES = [
    ([LOCATION, (b"date", DATE_21), (b"cache-control", b"private"), (b":status", b"302")], 222),
    ([(b":status", b"307"), LOCATION, (b"date", DATE_21), (b"cache-control", b"private")], 222),
    ([COOKIE, (b"content-encoding", b"gzip"), (b"date", DATE_22)], 215),
]
C5 = ["4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 "
      "303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
      "4803 3330 37c1 c0bf",
      "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 "
      "5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 "
      "5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31"]
C6 = ["4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b "
      "ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
      "4883 640e ffc1 c0bf",
      "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad "
      "94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 "
      "65c0 03ed 4ee5 b106 3d50 07"]


@pytest.mark.parametrize("blocks", [C5, C6], ids=["C.5-plain", "C.6-huffman"])
def test_c5_c6_eviction_in_a_256_byte_table(blocks):
    # the response examples: a table of 256 bytes, so entries are evicted oldest first
    decoder = Decoder(BIG_LIST, settings_size=256)
    for text, fields, (entries, size) in zip(blocks, RESPONSES, RESPONSE_TABLES, strict=True):
        assert decoder.decode(block(text)) == fields
        assert decoder.entries == entries
        assert decoder.size == size


# ---------------------------------------------------------------------- round trips
NAMES = [b":method", b":path", b":authority", b"accept", b"user-agent", b"cookie",
         b"x-request-id", b"x-trace", b"content-type", b"accept-encoding", b"x-long"]
VALUES = [b"GET", b"/", b"/index.html", b"gzip, deflate", b"application/json", b"",
          b"text/html; charset=utf-8"]


def random_fields(rng: random.Random) -> list[tuple[bytes, bytes]]:
    fields = []
    for _ in range(rng.randint(0, 12)):
        name = rng.choice(NAMES)
        if rng.random() < 0.5:
            value = rng.choice(VALUES)
        else:  # new values, some past 127 bytes (integer continuation), some non-ASCII
            value = bytes(rng.randrange(0x20, 0x100) for _ in range(rng.choice([1, 9, 130, 300])))
        fields.append((name, value))
    return fields


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("table_size", [4096, 256, 0], ids=["4096", "256", "0"])
def test_round_trip_from_the_reference_encoder(seed, table_size):
    rng = random.Random(seed)
    encoder = hpack.Encoder()
    encoder.header_table_size = table_size  # 256 and 0: a size update in the first block
    decoder = Decoder(BIG_LIST)
    updates = 0
    for _ in range(150):
        fields = random_fields(rng)
        sent = [NeverIndexedHeaderTuple(*f) if f[0] == b"cookie" else f for f in fields]
        encoded = encoder.encode(sent, huffman=rng.random() < 0.7)
        updates += encoded[:1] != b"" and encoded[0] & 0xE0 == 0x20
        assert decoder.decode(encoded) == fields
        assert decoder.size <= table_size
    assert decoder.max_size == table_size
    assert updates == (table_size != 4096)


def test_round_trip_through_size_changes():
    # the encoder's table shrinks and grows between blocks (size updates, also two in a
    # row): the decoder's table follows, and evicted entries are never referenced
    rng = random.Random(7)
    encoder = hpack.Encoder()
    decoder = Decoder(BIG_LIST)
    for size in [4096, 256, 0, 1024, 64, 4096] * 5:
        encoder.header_table_size = size
        for _ in range(10):
            fields = random_fields(rng)
            assert decoder.decode(encoder.encode(fields)) == fields
        assert decoder.max_size == size
        assert decoder.size <= size


def test_repeated_blocks_decode_alike():
    # a client repeating its request: the second block is index references only
    encoder = hpack.Encoder()
    decoder = Decoder(BIG_LIST)
    fields = [(b":method", b"GET"), (b":path", b"/a"), (b"x-custom", b"one")]
    first, second, third = (encoder.encode(fields) for _ in range(3))
    assert second == third != first
    for encoded in (first, second, third, second):
        assert decoder.decode(encoded) == fields


# ---------------------------------------------------------------------- the block cache
def test_cached_reference_follows_table_changes():
    decoder = Decoder(BIG_LIST)
    newest = b"\xbe"  # index 62: the newest dynamic entry, whatever it is
    decoder.decode(literal(0x40, b"x-a", b"1"))
    assert decoder.decode(newest) == [(b"x-a", b"1")]
    assert decoder.decode(newest) == [(b"x-a", b"1")]
    decoder.decode(literal(0x40, b"x-b", b"2"))
    assert decoder.decode(newest) == [(b"x-b", b"2")]
    assert decoder.decode(b"\xbf") == [(b"x-a", b"1")]
    decoder.decode(b"\x20")  # size update to 0: the table empties
    with pytest.raises(HPACKError):
        decoder.decode(newest)


def test_cached_reference_after_eviction():
    # the table changes by eviction alone (an insert that pushes the old entry out)
    decoder = Decoder(BIG_LIST, settings_size=40)
    decoder.decode(literal(0x40, b"a", b"1"))  # 34 bytes: fits
    assert decoder.decode(b"\xbe") == [(b"a", b"1")]
    decoder.decode(literal(0x40, b"b", b"2"))  # evicts a
    assert decoder.decode(b"\xbe") == [(b"b", b"2")]
    with pytest.raises(HPACKError):
        decoder.decode(b"\xbf")


def test_inserting_block_is_decoded_every_time():
    decoder = Decoder(BIG_LIST)
    inserting = literal(0x40, b"x-a", b"1")
    for count in range(1, 4):
        assert decoder.decode(inserting) == [(b"x-a", b"1")]
        assert decoder.entries == [(b"x-a", b"1")] * count
        assert decoder.size == 36 * count


def test_size_update_block_is_applied_every_time():
    decoder = Decoder(BIG_LIST)
    for _ in range(2):
        decoder.decode(b"\x3f\xe1\x1f" + literal(0x40, b"x-a", b"1"))  # size 4096, insert
        assert decoder.entries == [(b"x-a", b"1")]
        assert decoder.decode(b"\x20") == []  # size 0: evicts all
        assert decoder.entries == []
        assert decoder.max_size == 0


def test_cache_bounded():
    decoder = Decoder(BIG_LIST)
    for n in range(3000):
        assert decoder.decode(literal(0x00, b"x-n", str(n).encode())) == [
            (b"x-n", str(n).encode())]
    assert len(decoder._cache) <= 128


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize("data", [
    pytest.param(b"\x80", id="index-0"),
    pytest.param(b"\xbe", id="index-past-empty-table"),
    pytest.param(b"\xff\x80\x01", id="index-past-table-large"),
    pytest.param(b"\x7f\x00\x01a", id="literal-name-index-past-table"),
    pytest.param(b"\xff", id="integer-truncated"),
    pytest.param(b"\xff\x80\x80", id="integer-truncated-in-continuation"),
    pytest.param(b"\xff" + b"\xff" * 5 + b"\x01", id="integer-too-large"),
    pytest.param(b"\x40", id="literal-missing-name"),
    pytest.param(b"\x40\x01a", id="literal-missing-value"),
    pytest.param(b"\x40\x05ab\x01c", id="name-past-block"),
    pytest.param(b"\x04\x0a/x", id="value-past-block"),
    pytest.param(b"\x04\x81\x18", id="huffman-padding-zeros"),
    pytest.param(b"\x04\x82\x1f\xff", id="huffman-padding-over-7-bits"),
    pytest.param(b"\x04\x84\xff\xff\xff\xff", id="huffman-eos"),
    pytest.param(b"\x82\x20", id="size-update-after-field"),
    pytest.param(b"\x3f\xe2\x1f", id="size-update-above-settings"),
])
def test_compression_errors(data):
    decoder = Decoder(BIG_LIST)
    with pytest.raises(HPACKError):
        decoder.decode(data)


def test_size_update_at_the_settings_size_is_allowed():
    decoder = Decoder(BIG_LIST, settings_size=256)
    assert decoder.decode(b"\x3f\xe1\x01\x82") == [(b":method", b"GET")]  # 256, then a field
    assert decoder.max_size == 256
    with pytest.raises(HPACKError):
        decoder.decode(b"\x3f\xe2\x01")  # 257


def test_header_list_too_large():
    # 10 references to one 1000-byte entry: a 14-byte block, a 10 KB list
    decoder = Decoder(4096)
    big = b"\x40\x01x\x7f\xe9\x06" + b"v" * 1000  # insert (x, 1000 bytes)
    with pytest.raises(HeaderListTooLarge):
        decoder.decode(big + b"\xbe" * 3)
    decoder = Decoder(4096)
    decoder.decode(big)
    assert decoder.decode(b"\xbe" * 3) == [(b"x", b"v" * 1000)] * 3  # 3 * 1033 bytes: within
    with pytest.raises(HeaderListTooLarge):
        decoder.decode(b"\xbe" * 4)  # 4 * 1033 > 4096


def test_header_list_limit_counts_the_overhead():
    # RFC 9113 6.5.2: name + value + 32 for each field
    decoder = Decoder(32 + 7 + 3)
    assert decoder.decode(b"\x82") == [(b":method", b"GET")]
    with pytest.raises(HeaderListTooLarge):
        Decoder(32 + 7 + 3 - 1).decode(b"\x82")


# ---------------------------------------------------------------------- the encoder
def reference_decode(data: bytes) -> list[tuple[bytes, bytes]]:
    return [tuple(field) for field in hpack.Decoder().decode(data, raw=True)]


def test_encoder_static_exact_match():
    assert Encoder().encode([(b":status", b"200"), (b":status", b"404")]) == b"\x88\x8d"


def test_encoder_static_name():
    assert Encoder().encode([(b":status", b"418")]) == b"\x08\x03418"


def test_encoder_new_name():
    assert Encoder().encode([(b"x-a", b"bc")]) == b"\x00\x03x-a\x02bc"


def test_encoder_long_value_integer_continuation():
    value = b"v" * 200  # 200 = 127 + 73: 0x7f then 0x49
    encoded = Encoder().encode([(b"x-long", value)])
    assert encoded == b"\x00\x06x-long\x7f\x49" + value
    value = b"w" * 300  # 300 = 127 + 173: 0x7f, 0xad, 0x01
    assert Encoder().encode([(b"server", value)])[:4] == b"\x0f\x27\x7f\xad"


@pytest.mark.parametrize("fields", [
    [(b":status", b"200")],
    [(b":status", b"200"), (b"content-type", b"text/plain"), (b"content-length", b"12")],
    [(b":status", b"304"), (b"etag", b'"abc"'), (b"x-custom", b"")],
    [(b":status", b"500"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")],
    [(b"x-long", b"x" * 127), (b"x-longer", bytes(range(256)) * 2), (b"s" * 200, b"v")],
    [],
], ids=["status", "static-names", "new-name-empty", "repeated", "long", "empty"])
def test_encoder_output_decodes_with_the_reference(fields):
    encoder = Encoder()
    assert reference_decode(encoder.encode(fields)) == fields
    assert reference_decode(encoder.encode(fields)) == fields  # memoised path


def test_encoder_indexes_nothing():
    # a reference decoder's table stays empty after any of our blocks
    decoder = hpack.Decoder()
    encoder = Encoder()
    for _ in range(3):
        decoder.decode(encoder.encode([(b":status", b"200"), (b"x-a", b"1")]), raw=True)
    assert len(decoder.header_table.dynamic_entries) == 0


def test_encoder_size_update_after_table_size_changed():
    encoder = Encoder()
    fields = [(b":status", b"200"), (b"x-a", b"1")]
    plain = encoder.encode(fields)
    assert plain[:1] != b"\x20"
    encoder.table_size_changed()
    encoder.table_size_changed()  # two changes: still one update
    first = encoder.encode(fields)
    assert first == b"\x20" + plain
    assert encoder.encode(fields) == plain
    decoder = hpack.Decoder()
    assert [tuple(f) for f in decoder.decode(first, raw=True)] == fields
    assert decoder.header_table.maxsize == 0
    assert [tuple(f) for f in decoder.decode(plain, raw=True)] == fields
