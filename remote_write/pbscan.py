"""Protobuf fields of many messages at once, with numpy: the remote write 2.0 walk.

`scan_fields` steps through every message of a set together, one field per
step for all of them: per step a handful of numpy operations over the
messages still going, never a Python object per field. What comes out is
one flat table of fields (message, number, wire type, payload span, varint
value), from which the codec picks samples, exemplars, metadata and so on
by field number. `packed_varints` decodes packed repeated varint fields (the
`labels_refs` of remote write 2.0) of many spans in one pass.

A message with more fields than `max_steps` makes the scan return None, so
that the caller can take a per-message path instead of paying one numpy
round per field of one long message.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from remote_write.errors import DecodeError

PAD = 16
"""Bytes a buffer needs past its last message: varint reads may run that far."""

WIRE_VARINT, WIRE_I64, WIRE_LEN, WIRE_I32 = 0, 1, 2, 5
_SHIFTS = np.arange(10, dtype=np.uint64) * np.uint64(7)


@dataclass(frozen=True, slots=True)
class Fields:
    """Every field of a set of messages, message by message in wire order.

    Field k belongs to message `msg[k]`, has number `number[k]` and wire type
    `wire[k]`; its payload is `buf[start[k]:end[k]]` (for a varint, the
    varint's bytes, decoded in `value[k]`).
    """

    msg: NDArray[np.int64]
    number: NDArray[np.int64]
    wire: NDArray[np.int64]
    start: NDArray[np.int64]
    end: NDArray[np.int64]
    value: NDArray[np.uint64]

    def pick(self, number: int, wire: int) -> NDArray[np.int64]:
        """Positions (into this table) of the fields with this number and wire type."""
        return np.flatnonzero((self.number == number) & (self.wire == wire))

    def other(self, known: dict[int, int]) -> NDArray[np.int64]:
        """Positions of fields whose number is in `known` with another wire type."""
        out = np.zeros(len(self.number), dtype=np.bool_)
        for number, wire in known.items():
            out |= (self.number == number) & (self.wire != wire)
        return np.flatnonzero(out)


def read_varints(
    buf: NDArray[np.uint8], at: NDArray[np.int64]
) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
    """The varint at each position of `at`: (value, width in bytes); width 0 marks
    a varint longer than 10 bytes (malformed). `buf` must have PAD bytes after."""
    first = buf[at]
    if not (first >= 0x80).any():
        return first.astype(np.uint64), np.ones(len(at), dtype=np.int64)
    raw = buf[at[:, None] + np.arange(10)]
    last = raw < 0x80
    width = np.where(last.any(axis=1), last.argmax(axis=1) + 1, 0)
    keep = np.arange(10) < width[:, None]
    payload = np.where(keep, raw & 0x7F, 0).astype(np.uint64)
    return np.bitwise_or.reduce(payload << _SHIFTS, axis=1), width


def scan_fields(
    buf: NDArray[np.uint8],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    *,
    what: str,
    max_steps: int | None = None,
) -> Fields | None:
    """All fields of the messages `buf[starts[i]:ends[i]]` (see `Fields`).

    Raises DecodeError naming `what` (e.g. "TimeSeries") for a field running
    past its message or a wire type protobuf 3 does not use (groups); returns
    None once some message has more than `max_steps` fields.
    """
    n = len(starts)
    live = np.arange(n, dtype=np.int64)
    pos = np.asarray(starts, dtype=np.int64).copy()
    stop = np.asarray(ends, dtype=np.int64)
    parts: list[tuple[NDArray[np.int64], ...]] = []
    values: list[NDArray[np.uint64]] = []
    steps = 0
    while True:
        going = pos < stop[live] if len(live) else np.zeros(0, dtype=np.bool_)
        if not going.all():
            live, pos = live[going], pos[going]
        if not len(live):
            break
        steps += 1
        if max_steps is not None and steps > max_steps:
            return None
        tag, tag_width = read_varints(buf, pos)
        wire = (tag & np.uint64(7)).astype(np.int64)
        number = (tag >> np.uint64(3)).astype(np.int64)
        at = pos + tag_width
        value = np.zeros(len(live), dtype=np.uint64)
        start = at.copy()
        end = at.copy()
        is_len = wire == WIRE_LEN
        is_var = wire == WIRE_VARINT
        if is_len.any() or is_var.any():
            v, w = read_varints(buf, at)
            bad_varint = (is_len | is_var) & (w == 0)
            if bad_varint.any() or (tag_width == 0).any():
                raise DecodeError(f"protobuf: malformed varint in {what} #{int(live[0])}")
            start = np.where(is_len, at + w, at)
            length = np.where(is_len, v, 0).astype(np.int64)
            end = np.where(is_len, start + length, np.where(is_var, at + w, at))
            value = np.where(is_var, v, np.uint64(0))
        end = np.where(wire == WIRE_I64, at + 8, np.where(wire == WIRE_I32, at + 4, end))
        bad = ~np.isin(wire, (WIRE_VARINT, WIRE_I64, WIRE_LEN, WIRE_I32)) | (number == 0)
        bad |= (end > stop[live]) | (end < start)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise DecodeError(
                f"protobuf: {what} #{int(live[k])} is malformed at byte "
                f"{int(pos[k] - starts[live[k]])} (field {int(number[k])}, wire type "
                f"{int(wire[k])}, runs past its end or is not protobuf 3)"
            )
        parts.append((live, number, wire, start, end))
        values.append(value)
        pos = end
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return Fields(empty, empty, empty, empty, empty, np.zeros(0, dtype=np.uint64))
    cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
    order = np.argsort(cols[0], kind="stable")  # step-major -> message by message
    msg, number, wire, start, end = (c[order] for c in cols)
    return Fields(msg, number, wire, start, end, np.concatenate(values)[order])


def ragged_index(starts: NDArray[np.int64], lengths: NDArray[np.int64]) -> NDArray[np.int64]:
    """Positions `starts[i] .. starts[i] + lengths[i] - 1`, span after span."""
    total = int(lengths.sum())
    before = np.cumsum(lengths) - lengths
    return np.repeat(starts - before, lengths) + np.arange(total, dtype=np.int64)


def packed_varints(
    buf: NDArray[np.uint8], starts: NDArray[np.int64], ends: NDArray[np.int64]
) -> tuple[NDArray[np.uint64], NDArray[np.int64], NDArray[np.bool_]]:
    """Decode the packed varints of each span `buf[starts[i]:ends[i]]`.

    Returns the values of all spans, flat, how many each span has, and per
    span whether it is well formed (its last byte ends a varint, no varint is
    longer than 10 bytes). A span's last byte always ends its last varint, so
    a malformed span never spills into the next; the caller drops its values.
    """
    n = len(starts)
    lengths = ends - starts
    bounds = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=bounds[1:])
    raw = buf[ragged_index(starts, lengths)]
    last = raw < 0x80
    span_end = bounds[1:] - 1
    ok = np.ones(n, dtype=np.bool_)
    if (lengths == 0).any():
        nonempty = np.flatnonzero(lengths > 0)
        span_end = span_end[nonempty]
        ok[nonempty] = last[span_end]
    else:
        ok = last[span_end]
    if not ok.all():
        last[span_end] = True
    term = np.flatnonzero(last)
    counts = np.diff(np.searchsorted(term, bounds))
    if not len(term):
        return np.zeros(0, dtype=np.uint64), counts, ok
    if len(term) == len(raw):  # every varint one byte (tables under 128 symbols)
        return raw.astype(np.uint64), counts, ok
    cont = np.flatnonzero(~last)
    if last[cont + 1].all():  # at most two bytes each (tables under 16384 symbols)
        low = (raw & 0x7F).astype(np.int64)
        low[cont + 1] = (low[cont + 1] << 7) | low[cont]
        return low[term].view(np.uint64), counts, ok
    first = np.empty_like(term)
    first[0] = 0
    first[1:] = term[:-1] + 1
    width = term - first + 1
    widest = int(width.max())
    if widest > 10:
        span_of_term = np.searchsorted(bounds, term, side="right") - 1
        ok[span_of_term[width > 10]] = False
    if widest <= 3:  # references below 2 million: no shift table, no reduceat
        low = raw & 0x7F
        small = low[term].astype(np.int64)
        for k in range(1, widest):
            longer = np.flatnonzero(width > k)
            small[longer] = (small[longer] << 7) | low[term[longer] - k]
        return small.view(np.uint64), counts, ok
    shifts = (np.arange(len(raw), dtype=np.int64) - np.repeat(first, width)) * 7
    parts = (raw & 0x7F).astype(np.uint64) << np.minimum(shifts, 63).astype(np.uint64)
    return np.bitwise_or.reduceat(parts, first), counts, ok
