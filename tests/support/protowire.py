"""Protobuf wire encoding by hand, for tests that need layouts a generated encoder
will not write (fields out of order, repeated scalars, unknown fields, bad lengths)."""

from __future__ import annotations

from remote_write.varint import encode_uvarint


def varint(n: int) -> bytes:
    """Base-128 varint of `n` taken as a uint64 (negative numbers take ten bytes)."""
    return encode_uvarint(n & ((1 << 64) - 1))


def zigzag(n: int) -> int:
    """sint64's mapping of signed to unsigned."""
    return (n << 1) ^ (n >> 63)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return tag(number, 2) + varint(len(payload)) + payload


def uint(number: int, value: int) -> bytes:
    """A varint field (wire type 0)."""
    return tag(number, 0) + varint(value)
