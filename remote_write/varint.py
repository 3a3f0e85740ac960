"""One varint at a time, for the small messages built or read field by field (label
keys, remote-read frames and responses); bulk decoding is `pbwalk`'s numpy walk."""

from __future__ import annotations

from remote_write.errors import DecodeError


def encode_uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    """The varint at `pos` and the position after it."""
    result = shift = 0
    while pos < len(buf) and shift < 64:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
    raise DecodeError("protobuf: truncated or overlong varint")
