"""A protobuf field walker over many messages at once, with numpy.

`walk_fields` reads every top-level field of many serialized messages that
lie in one buffer: one numpy step per field *position*, for all messages
together, so the Python work is proportional to the number of fields in the
longest message, not to the number of messages. Used for native histograms,
whose messages have a dozen fields each and may be many per request.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from remote_write.errors import DecodeError

VARINT_MAX = 10
PAD = VARINT_MAX + 8
"""Bytes a buffer needs past its last message: reads may run that far."""
_SHIFTS = np.arange(VARINT_MAX, dtype=np.uint64) * np.uint64(7)


@dataclass(frozen=True, slots=True)
class Fields:
    """Every field found, sorted by (message, wire order).

    `msg[k]` is the message of field k, `number[k]` its field number,
    `wire[k]` its wire type; `value[k]` its varint (wire type 0) or its 8 raw
    bytes as uint64 (wire type 1); `start[k]`/`length[k]` its payload (wire
    type 2: the bytes after the length prefix).
    """

    msg: NDArray[np.int64]
    number: NDArray[np.int64]
    wire: NDArray[np.int64]
    value: NDArray[np.uint64]
    start: NDArray[np.int64]
    length: NDArray[np.int64]

    def select(self, number: int, wire: int) -> NDArray[np.int64]:
        """Indices of the fields with this number and wire type, in order."""
        return np.flatnonzero((self.number == number) & (self.wire == wire))


def read_varints(
    buf: NDArray[np.uint8], pos: NDArray[np.int64]
) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
    """The varints at `pos` and their byte widths; DecodeError if one runs past 10 bytes."""
    if not len(pos):
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    first = buf[pos]
    long = first >= 0x80
    if not long.any():  # the usual case: tags, lengths and small numbers take one byte
        return first.astype(np.uint64), np.ones(len(pos), dtype=np.int64)
    if not long.all():
        values = first.astype(np.uint64)
        width = np.ones(len(pos), dtype=np.int64)
        sel = np.flatnonzero(long)
        values[sel], width[sel] = read_varints(buf, pos[sel])
        return values, width
    window = buf[pos[:, None] + np.arange(VARINT_MAX)]
    last = window < 0x80
    if not last.any(axis=1).all():
        raise DecodeError("protobuf: varint longer than 10 bytes")
    width = last.argmax(axis=1) + 1
    used = np.arange(VARINT_MAX) < width[:, None]
    payload = np.where(used, window & 0x7F, 0).astype(np.uint64)
    return np.bitwise_or.reduce(payload << _SHIFTS, axis=1), width.astype(np.int64)


def walk_fields(
    buf: NDArray[np.uint8], starts: NDArray[np.int64], ends: NDArray[np.int64]
) -> Fields:
    """All fields of the messages `buf[starts[i]:ends[i]]` (buf padded by `PAD`)."""
    pos = np.asarray(starts, dtype=np.int64).copy()
    ends = np.asarray(ends, dtype=np.int64)
    found: list[tuple[NDArray[np.int64], ...]] = []
    msgs = np.arange(len(pos), dtype=np.int64)
    words = np.ndarray(shape=(max(len(buf) - 7, 0),), dtype="<u8", buffer=buf, strides=(1,))
    step = 0
    while True:
        live = pos < ends
        if len(pos) and live.all():
            active = msgs
            at = pos
        else:
            active = np.flatnonzero(live)
            if not len(active):
                break
            at = pos[active]
        tag, tag_w = read_varints(buf, at)
        tag = tag.astype(np.int64)
        body = at + tag_w
        t0 = int(tag[0])
        if (tag == t0).all():  # the usual case: every message has the same field here
            value, start, length, nxt = _one_kind(buf, words, t0 & 7, body)
            if t0 >> 3 == 0:
                raise DecodeError("protobuf: bad field tag in histogram")
            number = np.full(len(active), t0 >> 3, dtype=np.int64)
            wire = np.full(len(active), t0 & 7, dtype=np.int64)
        else:
            wire = tag & 7
            number = tag >> 3
            value = np.zeros(len(active), dtype=np.uint64)
            start = body.copy()
            length = np.zeros(len(active), dtype=np.int64)
            nxt = np.empty(len(active), dtype=np.int64)
            for kind in (0, 1, 2, 5):
                sel = wire == kind
                if sel.any():
                    value[sel], start[sel], length[sel], nxt[sel] = _one_kind(
                        buf, words, kind, body[sel]
                    )
            known = (wire == 0) | (wire == 1) | (wire == 2) | (wire == 5)
            if not known.all() or (number[known] == 0).any():
                raise DecodeError("protobuf: bad field tag in histogram")
        if (nxt > (ends if active is msgs else ends[active])).any():
            raise DecodeError("protobuf: field runs past the end of its message")
        if active is msgs:
            pos = nxt
        else:
            pos[active] = nxt
        steps = np.full(len(active), step, dtype=np.int64)
        found.append((active, steps, number, wire, value.view(np.int64), start, length))
        step += 1
    if not found:
        z = np.zeros(0, dtype=np.int64)
        return Fields(z, z, z, z.view(np.uint64), z, z)
    cols = [np.concatenate(c) for c in zip(*found, strict=True)]
    order = np.argsort(cols[0], kind="stable")  # fields were found in wire order per message
    msg, _, number, wire, value, start, length = (c[order] for c in cols)
    return Fields(msg, number, wire, value.view(np.uint64), start, length)


def _one_kind(
    buf: NDArray[np.uint8], words: NDArray[np.uint64], wire: int, body: NDArray[np.int64]
) -> tuple[NDArray[np.uint64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Value, payload start, payload length and next position of fields of one wire type."""
    n = len(body)
    if wire == 0:
        v, w = read_varints(buf, body)
        return v, body, np.zeros(n, dtype=np.int64), body + w
    if wire == 1:
        return words[body].astype(np.uint64), body, np.zeros(n, dtype=np.int64), body + 8
    if wire == 2:
        v, w = read_varints(buf, body)
        start = body + w
        length = v.astype(np.int64)
        return np.zeros(n, dtype=np.uint64), start, length, start + length
    if wire == 5:
        v = (words[body] & np.uint64(0xFFFFFFFF)).astype(np.uint64)
        return v, body, np.zeros(n, dtype=np.int64), body + 4
    raise DecodeError(f"protobuf: unsupported wire type {wire} in histogram")


def packed_varints(
    buf: NDArray[np.uint8], start: NDArray[np.int64], length: NDArray[np.int64]
) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
    """Decode packed varint payloads `buf[start[k]:start[k]+length[k]]` in bulk:
    all values in order, and how many each payload held."""
    total = int(length.sum())
    if not total:
        return np.zeros(0, dtype=np.uint64), np.zeros(len(start), dtype=np.int64)
    base = np.zeros(len(start) + 1, dtype=np.int64)
    np.cumsum(length, out=base[1:])
    idx = np.repeat(start - base[:-1], length) + np.arange(total, dtype=np.int64)
    data = buf[idx]
    is_last = data < 0x80
    # A payload must end on a varint's last byte.
    nonempty = length > 0
    if not is_last[base[1:][nonempty] - 1].all():
        raise DecodeError("protobuf: truncated packed varint")
    group = np.zeros(total, dtype=np.int64)
    group[1:] = np.cumsum(is_last[:-1])
    first = np.flatnonzero(np.concatenate(([True], is_last[:-1])))
    within = np.arange(total, dtype=np.int64) - first[group]
    if (within >= VARINT_MAX).any():
        raise DecodeError("protobuf: varint longer than 10 bytes")
    parts = (data & 0x7F).astype(np.uint64) << (within.astype(np.uint64) * np.uint64(7))
    values = np.bitwise_or.reduceat(parts, first)
    ends_cum = np.concatenate(([0], np.cumsum(is_last)))
    counts = ends_cum[base[1:]] - ends_cum[base[:-1]]
    return values, counts


def packed_doubles(
    buf: NDArray[np.uint8], start: NDArray[np.int64], length: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Decode packed double payloads in bulk: all values, and the count per payload."""
    if (length % 8).any():
        raise DecodeError("protobuf: packed doubles not a multiple of 8 bytes")
    counts = length // 8
    total = int(counts.sum())
    base = np.zeros(len(start) + 1, dtype=np.int64)
    np.cumsum(counts, out=base[1:])
    first = np.repeat(start - base[:-1] * 8, counts) + np.arange(total, dtype=np.int64) * 8
    raw = buf[first[:, None] + np.arange(8)].copy()
    return raw.view("<f8").ravel(), counts


def zigzag(values: NDArray[np.uint64]) -> NDArray[np.int64]:
    """Protobuf sint decoding."""
    v = values.astype(np.uint64)
    return (v >> np.uint64(1)).astype(np.int64) ^ -(v & np.uint64(1)).astype(np.int64)
