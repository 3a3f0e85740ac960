"""Label keys: one `str` per label that names it exactly, cut from the wire in bulk.

A label's key is its Label field as remote write carries it, without the field
tag: the varint length of the Label message, then the message itself
(`0x0A len name 0x12 len value`: both fields, in this order, minimal varints),
read as latin-1, one character per byte. Equal labels have equal keys and a
key decodes to exactly one (name, value) pair, so storage can keep its label
pairs in a dict by key and recognize a label it has seen with one lookup.

Why this shape: a request's label keys come out of one `decode` and one
`split` of the request's label bytes (`remote_write.codec`), with no Python
object per label besides the key itself, and a label sent in the usual
layout (which is this one) needs no decoding at all once storage knows it.
Labels sent otherwise (other field order, empty value left out, long
varints) get the same key from `label_key` after being decoded one by one.

A leaf module (numpy only): `batch`, `codec` and `storage` all speak keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from remote_write.varint import encode_uvarint, read_uvarint

_SEP = 0x00
_PAD = 8  # reads past a key's end stay inside the buffer


def label_key(name: str, value: str) -> str:
    """The key of the label `name="value"` (see the module docstring).

    Text that came in as invalid UTF-8 (kept as surrogate escapes) maps back
    to the bytes that were sent, so its key is the one the wire gives.
    """
    size = len(name) + len(value) + 4
    if size < 0x80 and name.isascii() and value.isascii():  # one-byte lengths: text as is
        return f"{chr(size)}\n{chr(len(name))}{name}\x12{chr(len(value))}{value}"
    n = _utf8(name)
    v = _utf8(value)
    message = b"\x0a" + encode_uvarint(len(n)) + n + b"\x12" + encode_uvarint(len(v)) + v
    return (encode_uvarint(len(message)) + message).decode("latin-1")


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that no decoder made: keep it visible
        return text.encode("utf-8", "surrogatepass")


def decode_label_keys(keys: Sequence[str]) -> tuple[list[str], list[str]]:
    """Names and values of label keys, as the sender wrote them (invalid UTF-8
    as surrogate escapes, so validation can name and refuse it).

    Keys of short labels (name and value under 128 bytes: one-byte lengths)
    are decoded together: their length bytes become separators the text does
    not contain, and one `decode` and one `split` yield every name and value.
    Any other key is decoded on its own.
    """
    n = len(keys)
    if n == 0:
        return [], []
    raw = "".join(keys).encode("latin-1")
    lengths = np.fromiter(map(len, keys), dtype=np.int64, count=n)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    buf = np.frombuffer(raw + bytes(_PAD + 256), dtype=np.uint8)
    name_len = buf[starts + 2].astype(np.int64)
    value_tag = starts + 3 + name_len
    value_len = buf[value_tag + 1].astype(np.int64)
    ok = (
        (buf[starts] < 0x80)
        & (buf[starts] == lengths - 1)
        & (buf[starts + 1] == 0x0A)
        & (name_len < 0x80)
        & (buf[value_tag] == 0x12)
        & (value_len < 0x80)
        & (name_len + value_len + 5 == lengths)
    )
    names = [""] * n
    values = [""] * n
    good = np.flatnonzero(ok)
    if len(good) == n:
        split = _split_short(buf[: len(raw)].copy(), starts, value_tag, raw.isascii())
        if split is not None:
            return split
        good = good[:0]
    elif len(good):
        g_len = lengths[good]
        g_starts = np.zeros(len(good), dtype=np.int64)
        np.cumsum(g_len[:-1], out=g_starts[1:])
        gather = np.repeat(starts[good] - g_starts, g_len) + np.arange(int(g_len.sum()))
        text = buf[gather]
        split = _split_short(
            text, g_starts, g_starts + (value_tag[good] - starts[good]), text.max() < 0x80
        )
        if split is None:
            good = good[:0]
        else:
            where = good.tolist()
            for i, name, value in zip(where, *split, strict=True):
                names[i] = name
                values[i] = value
    rest = np.ones(n, dtype=bool)
    rest[good] = False
    for i in np.flatnonzero(rest).tolist():
        names[i], values[i] = decode_label_key(keys[i])
    return names, values


def _split_short(
    text: NDArray[np.uint8], starts: NDArray[np.int64], value_tag: NDArray[np.int64], ascii: bool
) -> tuple[list[str], list[str]] | None:
    """Names and values of short keys laid end to end in `text` (modified in place);
    None if some name or value contains the separator."""
    # Per key: [len][0x0A][name len] name [0x12][value len] value -> 5 separators.
    for pos in (starts, starts + 1, starts + 2, value_tag, value_tag + 1):
        text[pos] = _SEP
    if np.count_nonzero(text == _SEP) != 5 * len(starts):
        return None
    data = text.tobytes()
    decoded = data.decode("ascii") if ascii else data.decode("utf-8", "surrogateescape")
    parts = decoded.split(chr(_SEP))
    # "", "", "", name, "", value, then "", "", name, "", value for each further key.
    return parts[3::5], parts[5::5]


def decode_label_key(key: str) -> tuple[str, str]:
    """Name and value of one key, in any layout a key can have."""
    raw = key.encode("latin-1")
    size, pos = read_uvarint(raw, 0)
    if pos + size != len(raw):
        raise ValueError(f"malformed label key {key!r}")
    fields = {1: b"", 2: b""}
    while pos < len(raw):
        tag, pos = read_uvarint(raw, pos)
        length, pos = read_uvarint(raw, pos)
        if tag not in (0x0A, 0x12) or pos + length > len(raw):
            raise ValueError(f"malformed label key {key!r}")
        fields[tag >> 3] = raw[pos : pos + length]
        pos += length
    return (
        fields[1].decode("utf-8", "surrogateescape"),
        fields[2].decode("utf-8", "surrogateescape"),
    )
