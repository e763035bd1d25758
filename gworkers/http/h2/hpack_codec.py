"""HPACK (RFC 7541) for the server: a decoder with its dynamic table, and a stateless encoder.

Why our own and not the ``hpack`` package's ``Decoder``/``Encoder``: those cost about a third of
an HTTP/2 request (a generic loop, logging calls, a table search per field). Two facts make a
server's side cheap:

* Clients send the same header block again and again (h2load, browsers, gRPC: after the first
  request the block is indexed references only). A block that changes nothing in the dynamic
  table decodes to the same fields for as long as the table stays as it is, so the decoder keeps
  ``block -> fields`` for such blocks and forgets them all when the table changes (``_cache``).
* The encoder never inserts into the client's dynamic table: each field is a static-table index
  or a literal *without indexing*, so encoding has no state (the encoded bytes of a field are
  memoised) and the client's SETTINGS_HEADER_TABLE_SIZE only asks for one size update (to 0)
  at the start of the next block. The cost is bytes on the wire (no dynamic-table references
  for repeated response fields), not correctness; nginx's HTTP/2 encodes responses the same
  way.

Only the Huffman code table and the static table come from the ``hpack`` package (the data of
RFC 7541 appendices A and B); Huffman strings are decoded with its ``decode_huffman``.
"""

from __future__ import annotations

from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

Fields = list[tuple[bytes, bytes]]

STATIC = HeaderTable.STATIC_TABLE  # index 1 .. 61 at positions 0 .. 60
_STATIC_LEN = len(STATIC)
_ENTRY_OVERHEAD = 32  # RFC 7541 4.1
# The block cache's bounds, per connection: a repeated block is a few dozen bytes once the
# client indexes its fields; larger or too many distinct ones are decoded each time, so a
# client cannot make the cache hold more than about 64 KiB of blocks.
_CACHE_MAX = 128
_CACHED_BLOCK_MAX = 512
_MAX_INT_BYTES = 4  # continuation bytes of an integer: up to 2**28, far above any limit


class HPACKError(Exception):
    """A header block that does not decode: COMPRESSION_ERROR (RFC 9113 4.3)."""


class HeaderListTooLarge(Exception):
    """The decoded list passes SETTINGS_MAX_HEADER_LIST_SIZE (an HPACK bomb at the extreme:
    a few bytes referencing a large table entry many times)."""


def _integer(block: bytes, pos: int, mask: int) -> tuple[int, int]:
    """The integer whose prefix (``mask`` bits) is in ``block[pos]`` (RFC 7541 5.1)."""
    value = block[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    for _ in range(_MAX_INT_BYTES + 1):
        if pos >= len(block):
            raise HPACKError("integer truncated")
        byte = block[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise HPACKError("integer too large")


def _string(block: bytes, pos: int) -> tuple[bytes, int]:
    """A string literal at ``pos`` (RFC 7541 5.2)."""
    if pos >= len(block):
        raise HPACKError("string literal missing")
    huffman = block[pos] & 0x80
    length, pos = _integer(block, pos, 0x7F)
    end = pos + length
    if end > len(block):
        raise HPACKError("string literal past the end of the block")
    if huffman:
        try:
            return decode_huffman(block[pos:end]), end
        except Exception as exc:  # hpack's HPACKDecodingError: bad padding, EOS
            raise HPACKError(f"invalid Huffman string: {exc}") from None
    return block[pos:end], end


class Decoder:
    """One connection's request header decoder (the client's encoder is its peer)."""

    __slots__ = ("_cache", "entries", "max_list", "max_size", "settings_size", "size")

    def __init__(self, max_header_list_size: int, settings_size: int = 4096) -> None:
        self.entries: list[tuple[bytes, bytes]] = []  # newest first: index 62 is entries[0]
        self.size = 0
        self.settings_size = settings_size  # our SETTINGS_HEADER_TABLE_SIZE: the cap
        self.max_size = settings_size  # the size the client's last update set
        self.max_list = max_header_list_size
        self._cache: dict[bytes, Fields] = {}

    def decode(self, block: bytes) -> Fields:
        """The fields of one complete header block. The list returned may be shared with
        later calls: read it, do not change it."""
        fields = self._cache.get(block)
        if fields is not None:
            return fields
        entries_before = self.entries
        try:
            fields = self._decode(block)
        except (HPACKError, HeaderListTooLarge):
            self._cache = {}  # (the table may have changed before the error)
            raise
        if self.entries is entries_before:  # nothing inserted, no size update: reusable
            if len(block) > _CACHED_BLOCK_MAX:
                return fields
            cache = self._cache
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            cache[block] = fields
        else:
            self._cache = {}
        return fields

    def _decode(self, block: bytes) -> Fields:
        fields: Fields = []
        append = fields.append
        listed = 0
        pos, end = 0, len(block)
        while pos < end:
            byte = block[pos]
            if byte & 0x80:  # indexed field (6.1)
                index, pos = _integer(block, pos, 0x7F)
                field = self._entry(index)
            elif byte & 0x40:  # literal with incremental indexing (6.2.1)
                field, pos = self._literal(block, pos, 0x3F)
                self._insert(field)
            elif byte & 0x20:  # dynamic table size update (6.3)
                if fields:
                    raise HPACKError("table size update after a field (RFC 7541 4.2)")
                size, pos = _integer(block, pos, 0x1F)
                self._resize(size)
                continue
            else:  # literal without indexing (6.2.2) or never indexed (6.2.3)
                field, pos = self._literal(block, pos, 0x0F)
            listed += len(field[0]) + len(field[1]) + _ENTRY_OVERHEAD
            if listed > self.max_list:
                raise HeaderListTooLarge("header list larger than SETTINGS_MAX_HEADER_LIST_SIZE")
            append(field)
        return fields

    def _entry(self, index: int) -> tuple[bytes, bytes]:
        if 0 < index <= _STATIC_LEN:
            return STATIC[index - 1]
        dynamic = index - _STATIC_LEN - 1
        if index and dynamic < len(self.entries):
            return self.entries[dynamic]
        raise HPACKError(f"no table entry {index}")

    def _literal(self, block: bytes, pos: int, mask: int) -> tuple[tuple[bytes, bytes], int]:
        index, pos = _integer(block, pos, mask)
        if index:
            name = self._entry(index)[0]
        else:
            name, pos = _string(block, pos)
        value, pos = _string(block, pos)
        return (name, value), pos

    def _insert(self, field: tuple[bytes, bytes]) -> None:
        """A new entry (RFC 7541 4.4). The list is replaced, not changed in place: ``decode``
        tells a block that changed the table by its identity."""
        size = len(field[0]) + len(field[1]) + _ENTRY_OVERHEAD
        self.entries = [field, *self.entries]
        self.size += size
        self._evict()

    def _resize(self, size: int) -> None:
        if size > self.settings_size:
            raise HPACKError("table size update above SETTINGS_HEADER_TABLE_SIZE (RFC 7541 6.3)")
        self.max_size = size
        self.entries = list(self.entries)
        self._evict()

    def _evict(self) -> None:
        entries = self.entries
        while self.size > self.max_size and entries:
            name, value = entries.pop()
            self.size -= len(name) + len(value) + _ENTRY_OVERHEAD


def _encode_integer(value: int, mask: int, first: int) -> bytes:
    if value < mask:
        return bytes((first | value,))
    out = bytearray((first | mask,))
    value -= mask
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _encode_string(value: bytes) -> bytes:
    return _encode_integer(len(value), 0x7F, 0) + value


_STATIC_FIELD = {field: i + 1 for i, field in reversed(list(enumerate(STATIC)))}
_STATIC_NAME = {name: i + 1 for i, (name, _) in reversed(list(enumerate(STATIC)))}


def encode_field(field: tuple[bytes, bytes]) -> bytes:
    """One response field, indexing nothing in the client's table (see the module docstring).
    ``field``'s name is lower-case already (RFC 9113 8.2.1)."""
    index = _STATIC_FIELD.get(field)
    if index is not None:
        return _encode_integer(index, 0x7F, 0x80)
    name, value = field
    index = _STATIC_NAME.get(name)
    if index is not None:
        return _encode_integer(index, 0x0F, 0x00) + _encode_string(value)
    return b"\x00" + _encode_string(name) + _encode_string(value)


class Encoder:
    """One connection's response header encoder (stateless but for the size update owed)."""

    __slots__ = ("size_update",)

    # field -> its encoding, shared by every connection (the fields are the app's response
    # fields and the server's defaults: few distinct ones, but bounded all the same, in
    # entries and in the size of a field remembered)
    memo: dict[tuple[bytes, bytes], bytes] = {}
    MEMO_MAX = 4096
    MEMO_FIELD_MAX = 256

    def __init__(self) -> None:
        self.size_update = False

    def table_size_changed(self) -> None:
        """The client's SETTINGS_HEADER_TABLE_SIZE changed: the next block starts with a size
        update (RFC 7541 4.2), to 0, which no setting is below."""
        self.size_update = True

    def encode(self, fields: Fields) -> bytes:
        memo = self.memo
        try:
            block = b"".join([memo[field] for field in fields])
        except (KeyError, TypeError):
            if len(memo) >= self.MEMO_MAX:
                memo.clear()
            parts = []
            for field in fields:
                field = (field[0], field[1])
                encoded = memo.get(field)
                if encoded is None:
                    encoded = encode_field(field)
                    if len(encoded) <= self.MEMO_FIELD_MAX:
                        memo[field] = encoded
                parts.append(encoded)
            block = b"".join(parts)
        if self.size_update:
            self.size_update = False
            return b"\x20" + block
        return block
