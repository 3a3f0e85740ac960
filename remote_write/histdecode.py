"""Serialized protobuf `Histogram` messages -> `HistogramBatch`, in bulk.

Remote write 1.0 (`prometheus.Histogram`) and 2.0 (`io.prometheus.write.v2.Histogram`)
share the field numbers this reads: 1 count_int, 2 count_float, 3 sum,
4 schema, 5 zero_threshold, 6 zero_count_int, 7 zero_count_float,
8/11 negative/positive spans, 9/12 negative/positive deltas (integer
histograms), 10/13 negative/positive counts (float histograms),
14 reset_hint, 15 timestamp, 16 custom_values. All messages are walked
together (`remote_write.pbwalk`), so no Python object is made per histogram.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from remote_write.errors import DecodeError
from remote_write.histograms import HistogramBatch, buckets_from_spans
from remote_write.pbwalk import (
    PAD,
    Fields,
    packed_doubles,
    packed_varints,
    walk_fields,
    zigzag,
)


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
    f = walk_fields(buf, starts, ends)

    def scalar(number: int, wire: int, dtype: str, default: float = 0) -> NDArray:
        out = np.full(n, default, dtype=np.uint64 if wire == 0 else np.float64)
        k = f.select(number, wire)
        if wire == 0:
            out[f.msg[k]] = f.value[k]
        else:
            out[f.msg[k]] = f.value[k].view(np.float64)
        return out.astype(dtype) if wire == 0 else out

    count_int = scalar(1, 0, "uint64")
    has_count_float = np.zeros(n, dtype=np.bool_)
    has_count_float[f.msg[f.select(2, 1)]] = True
    count_float = scalar(2, 1, "f8")
    zc_int = scalar(6, 0, "uint64")
    has_zc_float = np.zeros(n, dtype=np.bool_)
    has_zc_float[f.msg[f.select(7, 1)]] = True
    zc_float = scalar(7, 1, "f8")
    schema = zigzag(scalar(4, 0, "uint64")).astype(np.int32)
    timestamps = scalar(15, 0, "uint64").view(np.int64)
    reset = scalar(14, 0, "uint64").astype(np.uint8)

    pos_counts_f, pos_cnt_off = _repeated_doubles(buf, f, 13, n)
    neg_counts_f, neg_cnt_off = _repeated_doubles(buf, f, 10, n)
    pos_deltas, pos_delta_off = _repeated_sint64(buf, f, 12, n)
    neg_deltas, neg_delta_off = _repeated_sint64(buf, f, 9, n)
    cv, cv_off = _repeated_doubles(buf, f, 16, n)
    # A float histogram: its count is a double, or it has float bucket counts.
    is_float = has_count_float | (np.diff(pos_cnt_off) > 0) | (np.diff(neg_cnt_off) > 0)
    if (is_float & ((np.diff(pos_delta_off) > 0) | (np.diff(neg_delta_off) > 0))).any():
        raise DecodeError("histogram has both integer deltas and float counts")

    def side(spans_field: int, deltas, delta_off, counts_f, cnt_off):
        span_off, span_o, span_l = _spans(buf, f, spans_field, n)
        # Per histogram, take the delta values (integer) or the counts (float).
        val_counts = np.where(is_float, np.diff(cnt_off), np.diff(delta_off))
        val_off = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(val_counts, out=val_off[1:])
        int_rows = ~is_float
        vals = np.zeros(int(val_off[-1]), dtype=np.float64)
        if len(deltas):
            # deltas of integer rows, running sums restart per histogram
            cum = _segment_cumsum_int(deltas, delta_off).astype(np.float64)
            dst = _ragged_positions(val_off, delta_off, np.flatnonzero(int_rows))
            vals[dst[0]] = cum[dst[1]]
        if len(counts_f):
            dst = _ragged_positions(val_off, cnt_off, np.flatnonzero(is_float))
            vals[dst[0]] = counts_f[dst[1]]
        try:
            return buckets_from_spans(span_off, span_o, span_l, val_off, vals, deltas=False)
        except ValueError as exc:
            raise DecodeError(f"native histogram: {exc}") from None

    pos_off, pos_idx, pos_cnt = side(11, pos_deltas, pos_delta_off, pos_counts_f, pos_cnt_off)
    neg_off, neg_idx, neg_cnt = side(8, neg_deltas, neg_delta_off, neg_counts_f, neg_cnt_off)
    return HistogramBatch(
        series_idx=np.asarray(series_idx, dtype=np.int32),
        timestamps=timestamps,
        schema=schema,
        count=np.where(has_count_float, count_float, count_int.astype(np.float64)),
        sum=scalar(3, 1, "f8"),
        zero_threshold=scalar(5, 1, "f8"),
        zero_count=np.where(has_zc_float, zc_float, zc_int.astype(np.float64)),
        reset_hint=reset,
        float_counts=is_float,
        pos_offsets=pos_off,
        pos_index=pos_idx,
        pos_counts=pos_cnt,
        neg_offsets=neg_off,
        neg_index=neg_idx,
        neg_counts=neg_cnt,
        cv_offsets=cv_off,
        custom_values=cv,
    )


def _segment_cumsum_int(values: NDArray[np.int64], offsets: NDArray[np.int64]) -> NDArray[np.int64]:
    total = np.cumsum(values)
    before = np.concatenate((np.zeros(1, dtype=np.int64), total))[offsets[:-1]]
    return total - np.repeat(before, np.diff(offsets))


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


def _per_msg_offsets(
    msg: NDArray[np.int64], counts: NDArray[np.int64], n: int
) -> NDArray[np.int64]:
    per = np.bincount(msg, weights=counts, minlength=n).astype(np.int64) if len(msg) else None
    off = np.zeros(n + 1, dtype=np.int64)
    if per is not None:
        np.cumsum(per, out=off[1:])
    return off


def _repeated(
    buf: NDArray[np.uint8], f: Fields, number: int, n: int, scalar_wire: int, packed_fn, conv
) -> tuple[NDArray, NDArray[np.int64]]:
    """A repeated scalar field, packed or not (both may mix), in wire order."""
    k = np.flatnonzero((f.number == number) & ((f.wire == 2) | (f.wire == scalar_wire)))
    if not len(k):
        return conv(np.zeros(0, dtype=np.uint64)), np.zeros(n + 1, dtype=np.int64)
    packed = f.wire[k] == 2
    counts = np.ones(len(k), dtype=np.int64)
    pvals, pcounts = packed_fn(buf, f.start[k[packed]], f.length[k[packed]])
    counts[packed] = pcounts
    base = np.zeros(len(k) + 1, dtype=np.int64)
    np.cumsum(counts, out=base[1:])
    out = np.zeros(int(base[-1]), dtype=np.uint64)
    pk = np.flatnonzero(packed)
    if len(pk):
        src_base = np.zeros(len(pk) + 1, dtype=np.int64)
        np.cumsum(pcounts, out=src_base[1:])
        within = np.arange(int(src_base[-1])) - np.repeat(src_base[:-1], pcounts)
        out[np.repeat(base[pk], pcounts) + within] = pvals.view(np.uint64)
    sk = np.flatnonzero(~packed)
    out[base[sk]] = f.value[k[sk]]
    return conv(out), _per_msg_offsets(f.msg[k], counts, n)


def _repeated_doubles(buf, f: Fields, number: int, n: int):
    return _repeated(buf, f, number, n, 1, packed_doubles, lambda v: v.view(np.float64))


def _repeated_sint64(buf, f: Fields, number: int, n: int):
    return _repeated(buf, f, number, n, 0, packed_varints, zigzag)


def _spans(
    buf: NDArray[np.uint8], f: Fields, number: int, n: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Per-histogram span offsets and the spans' (offset, length) columns."""
    k = f.select(number, 2)
    sub = walk_fields(buf, f.start[k], f.start[k] + f.length[k])
    offset = np.zeros(len(k), dtype=np.int64)
    length = np.zeros(len(k), dtype=np.int64)
    j = sub.select(1, 0)
    offset[sub.msg[j]] = zigzag(sub.value[j])
    j = sub.select(2, 0)
    length[sub.msg[j]] = sub.value[j].astype(np.int64)
    return _per_msg_offsets(f.msg[k], np.ones(len(k), dtype=np.int64), n), offset, length
