"""Protobuf fields of many messages at once as one table: the remote write 2.0 view.

`scan_fields` walks every message of a set together with the one field
walker (`remote_write.pbwalk.walk`: one step per field position for all
messages, never a Python object per field) and lays what it found out as one
flat table (message, number, wire type, payload span, varint value), from
which the 2.0 codec picks samples, exemplars, metadata and so on by field
number. `packed_varints` decodes packed repeated varint fields (the
`labels_refs` of remote write 2.0) of many spans in one pass, marking
malformed spans instead of failing the request.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from remote_write.pbwalk import (
    PAD,
    WIRE_I32,
    WIRE_I64,
    WIRE_LEN,
    WIRE_VARINT,
    ragged_index,
    walk,
)

__all__ = [
    "PAD",
    "WIRE_I32",
    "WIRE_I64",
    "WIRE_LEN",
    "WIRE_VARINT",
    "Fields",
    "packed_varints",
    "ragged_index",
    "scan_fields",
]


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


def scan_fields(
    buf: NDArray[np.uint8], starts: NDArray[np.int64], ends: NDArray[np.int64], *, what: str
) -> Fields:
    """All fields of the messages `buf[starts[i]:ends[i]]` (see `Fields`), found by
    `remote_write.pbwalk.walk` and laid out as one table, message by message.

    Raises DecodeError naming `what` (e.g. "TimeSeries"), the message and the
    byte for a field running past its message, a varint over 10 bytes or a
    wire type protobuf 3 does not use (groups).
    """
    w = walk(buf, starts, ends, what=what)
    if not w.steps:
        empty = np.zeros(0, dtype=np.int64)
        return Fields(empty, empty, empty, empty, empty, np.zeros(0, dtype=np.uint64))
    every = np.arange(w.n, dtype=np.int64)
    msg = np.concatenate([every if st.rows is None else st.rows for st in w.steps])
    tag = np.concatenate(
        [np.full(len(st.start), st.tag) if isinstance(st.tag, int) else st.tag for st in w.steps]
    )
    order = np.argsort(msg, kind="stable")  # step-major -> message by message
    tag = tag[order]
    wire = tag & 7
    value = np.concatenate([st.value for st in w.steps])[order]
    return Fields(
        msg[order],
        tag >> 3,
        wire,
        np.concatenate([st.start for st in w.steps])[order],
        np.concatenate([st.end for st in w.steps])[order],
        np.where(wire == WIRE_VARINT, value, np.uint64(0)),  # a varint's value only
    )


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
