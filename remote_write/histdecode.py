"""Serialized protobuf `Histogram` messages -> `HistogramBatch`, in bulk.

Remote write 1.0 (`prometheus.Histogram`) and 2.0 (`io.prometheus.write.v2.Histogram`)
share the field numbers this reads: 1 count_int, 2 count_float, 3 sum,
4 schema, 5 zero_threshold, 6 zero_count_int, 7 zero_count_float,
8/11 negative/positive spans, 9/12 negative/positive deltas (integer
histograms), 10/13 negative/positive counts (float histograms),
14 reset_hint, 15 timestamp, 16 custom_values. All messages are walked
together (`remote_write.pbwalk`), so no Python object is made per histogram.

Cost is in numpy calls, not elements (a request holds a few hundred
histograms): where every message has a field at the same step (one sender's
histograms do), its column is that step's values as they are, and where
every message has as many spans or bucket values, ragged sums become a
`reshape(...).cumsum(axis=1)`. Other layouts take general paths.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from remote_write.errors import DecodeError
from remote_write.histograms import HistogramBatch, segment_cumsum
from remote_write.pbwalk import (
    PAD,
    WIRE_I64,
    WIRE_LEN,
    WIRE_VARINT,
    Walk,
    packed_doubles,
    packed_varints,
    walk,
    zigzag,
)

_F64 = np.float64


def decode_histogram_messages(
    messages: Sequence[bytes], series_idx: NDArray[np.int32]
) -> HistogramBatch:
    """Decode one serialized Histogram per entry of `messages`; `series_idx[i]`
    is the series message i belongs to. Raises DecodeError for bytes that are
    not Histogram messages or whose spans and buckets disagree."""
    n = len(messages)
    if not n:
        return HistogramBatch.empty()
    lengths = np.fromiter(map(len, messages), dtype=np.int64, count=n)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    buf = np.frombuffer(b"".join(messages) + bytes(PAD), dtype=np.uint8)
    return decode_histogram_spans(buf, starts, starts + lengths, series_idx)


def decode_histogram_spans(
    buf: NDArray[np.uint8],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    series_idx: NDArray[np.int32],
) -> HistogramBatch:
    """`decode_histogram_messages` for messages already in one buffer (padded by `PAD`)."""
    n = len(starts)
    if not n:
        return HistogramBatch.empty()
    w = walk(buf, starts, ends)
    count, count_is_float = _int_or_float(w, 1, 2)
    zero_count, _ = _int_or_float(w, 6, 7)

    pos_counts = _repeated(buf, w, 13, WIRE_I64, packed_doubles)
    neg_counts = _repeated(buf, w, 10, WIRE_I64, packed_doubles)
    pos_deltas = _repeated(buf, w, 12, WIRE_VARINT, packed_varints)
    neg_deltas = _repeated(buf, w, 9, WIRE_VARINT, packed_varints)
    cv = _repeated(buf, w, 16, WIRE_I64, packed_doubles)
    # A float histogram: its count is a double, or it has float bucket counts.
    is_float: NDArray[np.bool_] | None = None
    if count_is_float is not None or pos_counts is not None or neg_counts is not None:
        is_float = np.zeros(n, dtype=np.bool_) if count_is_float is None else count_is_float
        for r in (pos_counts, neg_counts):
            if r is not None:
                is_float = is_float | (np.diff(r[1]) > 0)
        for r in (pos_deltas, neg_deltas):
            if r is not None and (is_float & (np.diff(r[1]) > 0)).any():
                raise DecodeError("histogram has both integer deltas and float counts")
        if not is_float.any():
            is_float = None

    def side(spans_field: int, deltas, counts) -> tuple:
        span_count, span_o, span_l = _spans(buf, w, spans_field)
        vals, val_off = _bucket_values(deltas, counts, is_float, n)
        try:
            return _expand(span_count, span_o, span_l, vals, val_off, n)
        except ValueError as exc:
            raise DecodeError(f"native histogram: {exc}") from None

    pos_off, pos_idx, pos_cnt = side(11, pos_deltas, pos_counts)
    neg_off, neg_idx, neg_cnt = side(8, neg_deltas, neg_counts)
    if cv is None:
        custom_values, cv_off = np.zeros(0, dtype=_F64), np.zeros(n + 1, dtype=np.int64)
    else:
        custom_values, cv_off = cv[0].view(_F64), cv[1]
    return HistogramBatch(
        series_idx=np.asarray(series_idx, dtype=np.int32),
        timestamps=w.column(15, WIRE_VARINT)[0].view(np.int64),
        schema=zigzag(w.column(4, WIRE_VARINT)[0]).astype(np.int32),
        count=count,
        sum=w.column(3, WIRE_I64)[0].view(_F64),
        zero_threshold=w.column(5, WIRE_I64)[0].view(_F64),
        zero_count=zero_count,
        reset_hint=w.column(14, WIRE_VARINT)[0].astype(np.uint8),
        float_counts=np.zeros(n, dtype=np.bool_) if is_float is None else is_float,
        pos_offsets=pos_off,
        pos_index=pos_idx,
        pos_counts=pos_cnt,
        neg_offsets=neg_off,
        neg_index=neg_idx,
        neg_counts=neg_cnt,
        cv_offsets=cv_off,
        custom_values=custom_values,
    )


def _int_or_float(
    w: Walk, int_field: int, float_field: int
) -> tuple[NDArray[np.float64], NDArray[np.bool_] | None]:
    """A oneof of a uint64 and a double as float64, and where the double was sent
    (None: nowhere)."""
    ints = w.column(int_field, WIRE_VARINT)[0].astype(_F64)
    if not w.pieces(float_field):
        return ints, None
    floats, has = w.column(float_field, WIRE_I64)
    if has is None:
        return floats.view(_F64), np.ones(w.n, dtype=np.bool_)
    if not has.any():
        return ints, None
    return np.where(has, floats.view(_F64), ints), has


Repeated = tuple[NDArray[np.uint64], NDArray[np.int64]]


def _repeated(
    buf: NDArray[np.uint8],
    w: Walk,
    number: int,
    scalar_wire: int,
    packed_fn: Callable[[NDArray[np.uint8], NDArray[np.int64], NDArray[np.int64]], tuple],
) -> Repeated | None:
    """A repeated scalar field, packed or not (both may mix), in wire order: all
    values (raw 64 bits) and per-message offsets into them; None if no message has it."""
    pieces = [
        p for p in w.pieces(number) if not isinstance(p.wire, int) or p.wire in (2, scalar_wire)
    ]
    if not pieces:
        return None
    n = w.n
    if len(pieces) == 1 and pieces[0].rows is None and pieces[0].wire == WIRE_LEN:
        p = pieces[0]  # one packed field in every message (what senders do)
        vals, counts = packed_fn(buf, p.start, p.value.view(np.int64))
        off = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=off[1:])
        return vals.view(np.uint64), off
    rows_l, wire_l, value_l, start_l = [], [], [], []
    for p in pieces:
        m = n if p.rows is None else len(p.rows)
        rows_l.append(np.arange(n, dtype=np.int64) if p.rows is None else p.rows)
        wire_l.append(np.full(m, p.wire, dtype=np.int64) if isinstance(p.wire, int) else p.wire)
        value_l.append(p.value)
        start_l.append(p.start)
    rows = np.concatenate(rows_l)
    order = np.argsort(rows, kind="stable")  # by message, then wire order
    rows = rows[order]
    wire = np.concatenate(wire_l)[order]
    value = np.concatenate(value_l)[order]
    start = np.concatenate(start_l)[order]
    keep = (wire == WIRE_LEN) | (wire == scalar_wire)
    rows, wire, value, start = rows[keep], wire[keep], value[keep], start[keep]
    packed = wire == WIRE_LEN
    counts = np.ones(len(rows), dtype=np.int64)
    pvals, pcounts = packed_fn(buf, start[packed], value[packed].view(np.int64))
    counts[packed] = pcounts
    base = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts, out=base[1:])
    out = np.zeros(int(base[-1]), dtype=np.uint64)
    pk = np.flatnonzero(packed)
    if len(pk):
        src_base = np.zeros(len(pk) + 1, dtype=np.int64)
        np.cumsum(pcounts, out=src_base[1:])
        within = np.arange(int(src_base[-1])) - np.repeat(src_base[:-1], pcounts)
        out[np.repeat(base[pk], pcounts) + within] = pvals.view(np.uint64)
    sk = np.flatnonzero(~packed)
    out[base[sk]] = value[sk]
    per = np.bincount(rows, weights=counts, minlength=n).astype(np.int64)
    off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(per, out=off[1:])
    return out, off


def _bucket_values(
    deltas: Repeated | None,
    counts: Repeated | None,
    is_float: NDArray[np.bool_] | None,
    n: int,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """One side's absolute bucket counts of every histogram (the running sums of
    an integer histogram's deltas, a float histogram's counts) and their offsets."""
    if counts is None or is_float is None:  # integer histograms only
        if deltas is None:
            return np.zeros(0, dtype=_F64), np.zeros(n + 1, dtype=np.int64)
        raw, off = deltas
        return segment_cumsum(zigzag(raw), off).astype(_F64), off
    if deltas is None or is_float.all():  # float histograms only
        return counts[0].view(_F64), counts[1]
    # Both kinds: per histogram, the deltas' sums (integer) or the counts (float).
    delta_vals, delta_off = deltas
    cnt_vals, cnt_off = counts
    val_counts = np.where(is_float, np.diff(cnt_off), np.diff(delta_off))
    val_off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(val_counts, out=val_off[1:])
    vals = np.zeros(int(val_off[-1]), dtype=_F64)
    cum = segment_cumsum(zigzag(delta_vals), delta_off).astype(_F64)
    dst = _ragged_positions(val_off, delta_off, np.flatnonzero(~is_float))
    vals[dst[0]] = cum[dst[1]]
    dst = _ragged_positions(val_off, cnt_off, np.flatnonzero(is_float))
    vals[dst[0]] = cnt_vals.view(_F64)[dst[1]]
    return vals, val_off


def _ragged_positions(
    dst_off: NDArray[np.int64], src_off: NDArray[np.int64], rows: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Flat (destination, source) element indices of `rows` of two ragged layouts
    whose rows have equal lengths."""
    counts = src_off[rows + 1] - src_off[rows]
    total = int(counts.sum())
    base = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts, out=base[1:])
    within = np.arange(total, dtype=np.int64) - np.repeat(base[:-1], counts)
    return np.repeat(dst_off[rows], counts) + within, np.repeat(src_off[rows], counts) + within


def _spans(
    buf: NDArray[np.uint8], w: Walk, number: int
) -> tuple[int | NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Spans per histogram (one int when every histogram has as many), and the
    spans' (offset, length) columns, histogram by histogram in wire order."""
    pieces = w.pieces(number)
    n = w.n
    if all(p.rows is None and p.wire == WIRE_LEN for p in pieces):
        k = len(pieces)
        if not k:
            return 0, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        if k == 1:
            start, length = pieces[0].start, pieces[0].value.view(np.int64)
        else:
            start = np.stack([p.start for p in pieces], axis=1).ravel()
            length = np.stack([p.value for p in pieces], axis=1).ravel().view(np.int64)
        per: int | NDArray[np.int64] = k
    else:
        rows_l, start_l, len_l = [], [], []
        for p in pieces:
            rows = np.arange(n, dtype=np.int64) if p.rows is None else p.rows
            if isinstance(p.wire, int):
                if p.wire != WIRE_LEN:
                    continue
                rows_l.append(rows)
                start_l.append(p.start)
                len_l.append(p.value.view(np.int64))
            else:
                sel = p.wire == WIRE_LEN
                rows_l.append(rows[sel])
                start_l.append(p.start[sel])
                len_l.append(p.value.view(np.int64)[sel])
        rows = np.concatenate(rows_l) if rows_l else np.zeros(0, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        start = np.concatenate(start_l)[order] if rows_l else rows
        length = np.concatenate(len_l)[order] if rows_l else rows
        per = np.bincount(rows, minlength=n).astype(np.int64)
    sub = walk(buf, start, start + length, what="BucketSpan")
    offset = zigzag(sub.column(1, WIRE_VARINT)[0])
    span_len = sub.column(2, WIRE_VARINT)[0].view(np.int64)
    return per, offset, span_len


def _expand(
    span_count: int | NDArray[np.int64],
    span_offset: NDArray[np.int64],
    span_length: NDArray[np.int64],
    values: NDArray[np.float64],
    value_off: NDArray[np.int64],
    n: int,
) -> tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.float64]]:
    """Bucket offsets, absolute indexes and counts of every histogram from its
    spans (the first offset is the first bucket's index, later ones the gap
    after the previous span) and its bucket values. ValueError naming the
    first histogram whose spans and values disagree in number."""
    span_base = np.zeros(len(span_length) + 1, dtype=np.int64)
    np.cumsum(span_length, out=span_base[1:])
    if isinstance(span_count, int):
        k = span_count
        if k:
            needed = span_base[k::k] - span_base[:-1:k]
            # Index of each span's first bucket: offsets so far plus earlier lengths.
            first = (span_offset + span_length).reshape(n, k).cumsum(axis=1).ravel()
        else:
            needed = np.zeros(n, dtype=np.int64)
            first = span_offset
    else:
        span_off = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(span_count, out=span_off[1:])
        needed = span_base[span_off[1:]] - span_base[span_off[:-1]]
        step = np.cumsum(span_offset + span_length)
        before = np.concatenate((np.zeros(1, dtype=np.int64), step))[span_off[:-1]]
        first = step - np.repeat(before, span_count)
    given = np.diff(value_off)
    if not np.array_equal(needed, given):
        h = int(np.flatnonzero(needed != given)[0])
        raise ValueError(
            f"histogram {h}: spans need {int(needed[h])} buckets but {int(given[h])} were sent"
        )
    total = int(span_base[-1])
    start = first - span_length - span_base[:-1]
    index = np.repeat(start, span_length) + np.arange(total, dtype=np.int64)
    return value_off, index.astype(np.int32), values
