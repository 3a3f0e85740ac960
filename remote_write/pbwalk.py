"""A protobuf field walker over many messages at once, with numpy.

`walk` reads every top-level field of many serialized messages that lie in
one buffer: one step per field *position*, for all messages together, so the
Python work is proportional to the number of fields in the longest message,
not to the number of messages. Used for native histograms (a dozen fields
each, hundreds per request) and their bucket spans.

The walk is shaped by where the time goes: numpy's cost per call, not per
element, at a few hundred messages. Messages from one sender have the same
fields in the same order, so a step usually finds one tag in every message;
such a step is read with a dozen numpy calls and kept as it is (`Step`, no
per-field table, no sort), and a field's column is then the step's values
themselves. Steps where the messages differ take a general path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

import numpy as np
from numpy.typing import NDArray

from remote_write.errors import DecodeError

VARINT_MAX = 10
PAD = 16
"""Bytes a buffer needs past its last message: reads may run that far."""
WIRE_VARINT, WIRE_I64, WIRE_LEN, WIRE_I32 = 0, 1, 2, 5
_SHIFTS = np.arange(VARINT_MAX, dtype=np.uint64) * np.uint64(7)
_WIDTHS = np.arange(VARINT_MAX)
_U64 = np.uint64
_HIGH = _U64(0x8080808080808080)
_LOW7 = _U64(0x7F7F7F7F7F7F7F7F)
_PACK = (
    (_U64(0x007F007F007F007F), _U64(0x7F007F007F007F00), _U64(1)),
    (_U64(0x00003FFF00003FFF), _U64(0x3FFF00003FFF0000), _U64(2)),
    (_U64(0x000000000FFFFFFF), _U64(0x0FFFFFFF00000000), _U64(4)),
)
_EMPTY_I64 = np.zeros(0, dtype=np.int64)
_max, _min = np.maximum.reduce, np.minimum.reduce
_LEN_MAX = (1 << 31) - 1
"""Longest length-delimited field accepted (protobuf's own limit is 2 GiB)."""
_WIRES = (WIRE_VARINT, WIRE_I64, WIRE_LEN, WIRE_I32)


@dataclass(frozen=True, slots=True)
class Step:
    """The k-th field of every message that has one.

    `rows`: the messages (None: all of them); `tag`: the field tag (number << 3
    | wire), one int when every row has the same, else one per row; `value`:
    the varint, or the fixed64/fixed32 bits, or for a length-delimited field
    its length; `start`: where its payload starts (after the length prefix);
    `end`: where the field ends (the next one starts).
    """

    rows: NDArray[np.int64] | None
    tag: int | NDArray[np.int64]
    value: NDArray[np.uint64]
    start: NDArray[np.int64]
    end: NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Piece:
    """The fields of one number found at one step: `rows` (None: every
    message), their wire type (an int, or one per row), value and start as
    in `Step`."""

    rows: NDArray[np.int64] | None
    wire: int | NDArray[np.int64]
    value: NDArray[np.uint64]
    start: NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Walk:
    """Every field of `n` messages, step by step (see `Step`), and the pieces of
    each field number (see `Piece`), in step order."""

    n: int
    steps: list[Step]
    by_number: dict[int, list[Piece]]

    def column(
        self, number: int, wire: int, default: int = 0
    ) -> tuple[NDArray[np.uint64], NDArray[np.bool_] | None]:
        """Per message the last value of field `number` with wire type `wire`
        (its raw 64 bits; `default` where absent), and where it is present
        (None: in every message). The column may be a step's own array: read only."""
        hits = []
        for p in self.pieces(number):
            if isinstance(p.wire, int):
                if p.wire == wire:
                    hits.append((p.rows, p.value))
                continue
            hit = p.wire == wire
            if hit.any():
                rows = np.flatnonzero(hit) if p.rows is None else p.rows[hit]
                hits.append((rows, p.value[hit]))
        if len(hits) == 1 and hits[0][0] is None:
            return hits[0][1], None
        out = np.full(self.n, default, dtype=np.uint64)
        present = np.zeros(self.n, dtype=np.bool_)
        for rows, vals in hits:
            if rows is None:
                out[:] = vals
                present[:] = True
            else:
                out[rows] = vals
                present[rows] = True
        return out, present

    def pieces(self, number: int) -> list[Piece]:
        """The fields numbered `number` at each step, in step order."""
        return self.by_number.get(number, [])


def _index(steps: list[Step]) -> dict[int, list[Piece]]:
    """The pieces of every field number found."""
    out: dict[int, list[Piece]] = {}
    for st in steps:
        if isinstance(st.tag, int):
            out.setdefault(st.tag >> 3, []).append(Piece(st.rows, st.tag & 7, st.value, st.start))
            continue
        numbers = st.tag >> 3
        for number in np.unique(numbers).tolist():
            hit = np.flatnonzero(numbers == number)
            rows = hit if st.rows is None else st.rows[hit]
            piece = Piece(rows, st.tag[hit] & 7, st.value[hit], st.start[hit])
            out.setdefault(number, []).append(piece)
    return out


def words_of(buf: NDArray[np.uint8]) -> NDArray[np.uint64]:
    """The little-endian 8 bytes at every position of `buf` (a strided view, no copy)."""
    return np.ndarray(shape=(max(len(buf) - 7, 0),), dtype="<u8", buffer=buf, strides=(1,))


def read_varints(
    buf: NDArray[np.uint8], words: NDArray[np.uint64], pos: NDArray[np.int64]
) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
    """The varints at `pos` and their byte widths; DecodeError if one runs past 10 bytes.

    Varints of up to 8 bytes (values below 2**56) are read from one 64-bit word
    each, their 7-bit groups packed with shifts; longer ones byte by byte.
    """
    if not len(pos):
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    first = buf[pos]
    if _max(first) < 0x80:  # the usual case for tags, lengths and small numbers
        return first.astype(np.uint64), np.ones(len(pos), dtype=np.int64)
    w = words[pos]
    term = ~w & _HIGH  # the high bit of every byte that ends a varint
    if not term.all():
        return _read_long_varints(buf, pos)
    mask = ((term & (~term + _U64(1))) << _U64(1)) - _U64(1)  # bytes up to the first end
    x = w & mask & _LOW7
    for keep, move, shift in _PACK:
        x = (x & keep) | ((x & move) >> shift)
    return x, (np.bitwise_count(mask) >> 3).astype(np.int64)


def _read_long_varints(
    buf: NDArray[np.uint8], pos: NDArray[np.int64]
) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
    window = buf[pos[:, None] + _WIDTHS]
    last = window < 0x80
    if not last.any(axis=1).all():
        raise DecodeError("protobuf: varint longer than 10 bytes")
    width = last.argmax(axis=1) + 1
    used = _WIDTHS < width[:, None]
    payload = np.where(used, window & 0x7F, 0).astype(np.uint64)
    return np.bitwise_or.reduce(payload << _SHIFTS, axis=1), width.astype(np.int64)


def walk(
    buf: NDArray[np.uint8],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    *,
    what: str = "Histogram",
) -> Walk:
    """All fields of the messages `buf[starts[i]:ends[i]]` (buf padded by `PAD`).

    Raises DecodeError naming `what`, the message (#k) and the byte for a
    field that runs past its message, a varint over 10 bytes, field number 0
    or a wire type protobuf 3 does not use (groups).
    """
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    pos = starts
    n = len(pos)
    words = words_of(buf)
    steps: list[Step] = []
    rows: NDArray[np.int64] | None = None  # None: every message is still going
    all_live = n > 0 and bool((pos < ends).all())
    while n:
        if not all_live:  # some message ended at the last step
            live = pos < ends
            if not live.any():
                break
            keep = np.flatnonzero(live)
            rows = keep if rows is None else rows[keep]
            pos, ends = pos[keep], ends[keep]
        try:
            first = buf[pos]
            t0 = int(first[0])
            if t0 < 0x80 and _min(first) == _max(first):  # one one-byte tag in every message
                if t0 < 8:
                    raise DecodeError("field number 0")
                value, start, nxt = _read_kind(buf, words, t0 & 7, pos + 1)
                tag: int | NDArray[np.int64] = t0
            else:
                value, start, nxt, tag = _read_mixed(buf, words, pos, ends)
            left = int(_min(ends - nxt))
            if left < 0:
                raise DecodeError("past the end")
        except DecodeError:
            _fail(buf, pos, ends, starts, rows, what)
        all_live = left > 0
        steps.append(Step(rows, tag, value, start, nxt))
        pos = nxt
    return Walk(n, steps, _index(steps))


def _read_kind(
    buf: NDArray[np.uint8], words: NDArray[np.uint64], wire: int, body: NDArray[np.int64]
) -> tuple[NDArray[np.uint64], NDArray[np.int64], NDArray[np.int64]]:
    """Value, payload start and next position of fields of one wire type."""
    if wire == WIRE_VARINT:
        v, w = read_varints(buf, words, body)
        return v, body, body + w
    if wire == WIRE_I64:
        return words[body], body, body + 8
    if wire == WIRE_LEN:
        v, w = read_varints(buf, words, body)
        if _max(v) > _LEN_MAX:  # no message is that long; also keeps positions from wrapping
            raise DecodeError("length past the end")
        start = body + w
        return v, start, start + v.astype(np.int64)
    if wire == WIRE_I32:
        return words[body] & _U64(0xFFFFFFFF), body, body + 4
    raise DecodeError(f"wire type {wire}")


def _read_mixed(
    buf: NDArray[np.uint8],
    words: NDArray[np.uint64],
    pos: NDArray[np.int64],
    ends: NDArray[np.int64],
) -> tuple[NDArray[np.uint64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """A step whose messages have different tags: value, start, next position, tag."""
    tag_u, tag_w = read_varints(buf, words, pos)
    tag = tag_u.astype(np.int64)
    body = pos + tag_w
    wire = tag & 7
    # Every field has a byte after its tag; numbers start at 1; no groups.
    if (body >= ends).any() or (tag < 8).any() or not np.isin(wire, _WIRES).all():
        raise DecodeError("malformed tag")
    value = np.zeros(len(pos), dtype=np.uint64)
    start = body.copy()
    nxt = np.empty(len(pos), dtype=np.int64)
    for kind in np.unique(wire).tolist():
        sel = np.flatnonzero(wire == kind)
        value[sel], start[sel], nxt[sel] = _read_kind(buf, words, kind, body[sel])
    return value, start, nxt, tag


def _fail(
    buf: NDArray[np.uint8],
    pos: NDArray[np.int64],
    ends: NDArray[np.int64],
    starts: NDArray[np.int64],
    rows: NDArray[np.int64] | None,
    what: str,
) -> NoReturn:
    """Raise the DecodeError for the first message whose field at `pos` is malformed."""
    msgs = np.arange(len(pos)) if rows is None else rows
    tag, tag_w = _careful_varints(buf, pos)
    wire, number = tag & 7, tag >> 3
    body = pos + tag_w
    v, w = _careful_varints(buf, body)
    bad_varint = (tag_w == 0) | (((wire == WIRE_VARINT) | (wire == WIRE_LEN)) & (w == 0))
    end = np.select(
        [wire == WIRE_VARINT, wire == WIRE_LEN, wire == WIRE_I64, wire == WIRE_I32],
        [body + w, body + w + np.minimum(v, _LEN_MAX + 1).astype(np.int64), body + 8, body + 4],
        default=ends + 1,
    )
    bad = bad_varint | (number == 0) | (end > ends)
    k = int(np.argmax(bad))
    msg = int(msgs[k])
    if bad_varint[k]:
        raise DecodeError(f"protobuf: malformed varint in {what} #{msg} (over 10 bytes)")
    raise DecodeError(
        f"protobuf: {what} #{msg} is malformed at byte {int(pos[k] - starts[msg])} "
        f"(field {int(number[k])}, wire type {int(wire[k])}, runs past its end "
        "or is not protobuf 3)"
    )


def _careful_varints(
    buf: NDArray[np.uint8], pos: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Varints read byte by byte, reads clipped to the buffer: (value as int64,
    width; 0 for one over 10 bytes). For error messages only."""
    window = buf.take(pos[:, None] + _WIDTHS, mode="clip")
    last = window < 0x80
    width = np.where(last.any(axis=1), last.argmax(axis=1) + 1, 0)
    used = _WIDTHS < width[:, None]
    payload = np.where(used, window & 0x7F, 0).astype(np.uint64)
    value = np.bitwise_or.reduce(payload << _SHIFTS, axis=1)
    return np.minimum(value, _U64(1 << 62)).astype(np.int64), width


def packed_varints(
    buf: NDArray[np.uint8], start: NDArray[np.int64], length: NDArray[np.int64]
) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
    """Decode packed varint payloads `buf[start[k]:start[k]+length[k]]` in bulk:
    all values in order, and how many each payload held."""
    if not len(start):
        return np.zeros(0, dtype=np.uint64), _EMPTY_I64
    size = int(length[0])
    if (length == size).all():  # the usual case: payloads of one byte length
        data = buf[start[:, None] + np.arange(size)].ravel()
        if (data < 0x80).all():  # and one-byte values
            return data.astype(np.uint64), length.astype(np.int64)
    else:
        data = buf[ragged_index(start, length)]
    total = len(data)
    if not total:
        return np.zeros(0, dtype=np.uint64), np.zeros(len(start), dtype=np.int64)
    base = np.zeros(len(start) + 1, dtype=np.int64)
    np.cumsum(length, out=base[1:])
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
    words = words_of(buf)
    size = int(counts[0]) if len(counts) else 0
    if len(counts) and (counts == size).all():
        at = start[:, None] + np.arange(size) * 8
        return words[at.ravel()].view(np.float64), counts
    total = int(counts.sum())
    base = np.zeros(len(start) + 1, dtype=np.int64)
    np.cumsum(counts, out=base[1:])
    first = np.repeat(start - base[:-1] * 8, counts) + np.arange(total, dtype=np.int64) * 8
    return words[first].view(np.float64), counts


def ragged_index(start: NDArray[np.int64], length: NDArray[np.int64]) -> NDArray[np.int64]:
    """Every position of the ranges `[start[k], start[k] + length[k])`, range after range."""
    base = np.zeros(len(start) + 1, dtype=np.int64)
    np.cumsum(length, out=base[1:])
    total = int(base[-1])
    return np.repeat(start - base[:-1], length) + np.arange(total, dtype=np.int64)


def zigzag(values: NDArray[np.uint64]) -> NDArray[np.int64]:
    """Protobuf sint decoding."""
    v = values.astype(np.uint64, copy=False)
    return (v >> np.uint64(1)).view(np.int64) ^ -(v & np.uint64(1)).view(np.int64)
