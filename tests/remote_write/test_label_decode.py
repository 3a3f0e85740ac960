"""The label decoder's fast path (short name then value) agrees with the general parser."""

import pytest

from remote_write.wirelabels import decode_label, decode_label_fields


def field(number: int, payload: bytes) -> bytes:
    out = bytearray([number << 3 | 2])
    n = len(payload)
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + payload


@pytest.mark.parametrize(
    "raw",
    [
        field(1, b"job") + field(2, b"api"),
        field(1, b"job") + field(2, b"v" * 127),
        field(1, b"job") + field(2, b"v" * 128),  # two-byte length: general parser
        field(1, b"n" * 127) + field(2, b"x"),
        field(1, b"job"),  # empty value omitted on the wire
        field(2, b"api") + field(1, b"job"),  # reverse order
        field(1, b"job") + field(2, b"a\xffb"),  # invalid UTF-8 kept as escapes
        field(1, "zöne".encode()) + field(2, "日本".encode()),
        field(1, b"job") + field(2, b"api") + field(3, b"unknown"),
    ],
)
def test_fast_path_agrees_with_general_parser(raw):
    assert decode_label(raw) == decode_label_fields(raw)


def test_invalid_utf8_survives_as_surrogate_escapes():
    name, value = decode_label(field(1, b"job") + field(2, b"a\xffb"))
    assert name == "job"
    assert value.encode("utf-8", "surrogateescape") == b"a\xffb"
