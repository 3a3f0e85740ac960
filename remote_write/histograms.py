"""Native histogram samples as columns: THE structure every wire format decodes
into and the head stores (issue 10).

One `HistogramBatch` holds any number of native histogram samples (integer or
float counts, any schema including custom buckets `-53`), one row per sample,
with no Python object per sample:

- per-row scalar columns: `series_idx` (into the owning `WriteBatch.series`),
  `timestamps`, `schema`, `count`, `sum`, `zero_threshold`, `zero_count`,
  `reset_hint` (the protobuf enum: 0 unknown, 1 yes, 2 no, 3 gauge) and
  `float_counts` (the sender used float counts: a FloatHistogram);
- buckets, sparse and *absolute* (spans and deltas already expanded): row i's
  positive buckets are `pos_index[pos_offsets[i]:pos_offsets[i+1]]` (bucket
  index in the row's schema, ascending) with counts `pos_counts[...]`; the
  same for negative buckets with `neg_*`. Empty buckets inside spans are kept
  (as sent), so a histogram round-trips exactly;
- custom bucket bounds (schema -53): `custom_values[cv_offsets[i]:cv_offsets[i+1]]`,
  empty for exponential schemas.

A stale marker is a row whose `sum` has the stale NaN bit pattern
(`remote_write.batch.STALE_NAN_BITS`), as in Prometheus.

The one appender entry point for histogram samples is the ordinary
`Appender.append(batch)` with `WriteBatch.histograms` set to a
`HistogramBatch` whose `series_idx` points into the same `batch.series`
(a batch may carry floats, histograms or both). Decoders that see protobuf
`Histogram` messages (remote write 1.0 `TimeSeries.histograms`, and 2.0's
`Histogram`, which has the same field numbers) can use
`remote_write.histdecode.decode_histogram_messages`; decoders with their own
columns use `buckets_from_spans` to expand spans and deltas in bulk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

CUSTOM_BUCKETS_SCHEMA = -53
"""Schema of histograms with custom bucket bounds (`custom_values`)."""
MIN_SCHEMA, MAX_SCHEMA = -4, 8
"""The exponential schemas Prometheus accepts."""

RESET_UNKNOWN, RESET_YES, RESET_NO, RESET_GAUGE = 0, 1, 2, 3

_I32 = np.zeros(0, dtype=np.int32)
_F64 = np.zeros(0, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class HistogramBatch:
    """Native histogram samples, one row each; see the module docstring."""

    series_idx: NDArray[np.int32]
    timestamps: NDArray[np.int64]
    schema: NDArray[np.int32]
    count: NDArray[np.float64]
    sum: NDArray[np.float64]
    zero_threshold: NDArray[np.float64]
    zero_count: NDArray[np.float64]
    reset_hint: NDArray[np.uint8]
    float_counts: NDArray[np.bool_]
    pos_offsets: NDArray[np.int64]
    pos_index: NDArray[np.int32]
    pos_counts: NDArray[np.float64]
    neg_offsets: NDArray[np.int64]
    neg_index: NDArray[np.int32]
    neg_counts: NDArray[np.float64]
    cv_offsets: NDArray[np.int64]
    custom_values: NDArray[np.float64]

    def __post_init__(self) -> None:
        n = len(self.timestamps)
        for name in (
            "series_idx",
            "schema",
            "count",
            "sum",
            "zero_threshold",
            "zero_count",
            "reset_hint",
            "float_counts",
        ):
            if len(getattr(self, name)) != n:
                raise ValueError(f"histogram column {name} must have one entry per sample")
        for prefix, data in (("pos", self.pos_index), ("neg", self.neg_index)):
            off = getattr(self, f"{prefix}_offsets")
            if len(off) != n + 1 or int(off[-1]) != len(data):
                raise ValueError(
                    f"{prefix}_offsets must have n+1 entries ending at the bucket count"
                )
            if len(getattr(self, f"{prefix}_counts")) != len(data):
                raise ValueError(f"{prefix}_index and {prefix}_counts must have the same length")
        if len(self.cv_offsets) != n + 1 or int(self.cv_offsets[-1]) != len(self.custom_values):
            raise ValueError("cv_offsets must have n+1 entries ending at len(custom_values)")

    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def num_samples(self) -> int:
        return len(self.timestamps)

    @classmethod
    def empty(cls) -> HistogramBatch:
        zero = np.zeros(1, dtype=np.int64)
        return cls(
            series_idx=_I32,
            timestamps=np.zeros(0, dtype=np.int64),
            schema=_I32,
            count=_F64,
            sum=_F64,
            zero_threshold=_F64,
            zero_count=_F64,
            reset_hint=np.zeros(0, dtype=np.uint8),
            float_counts=np.zeros(0, dtype=np.bool_),
            pos_offsets=zero,
            pos_index=_I32,
            pos_counts=_F64,
            neg_offsets=zero,
            neg_index=_I32,
            neg_counts=_F64,
            cv_offsets=zero,
            custom_values=_F64,
        )

    def take(self, rows: NDArray[np.int64]) -> HistogramBatch:
        """The rows `rows` (in that order) as a new batch; buckets gathered in bulk."""
        rows = np.asarray(rows, dtype=np.int64)
        pos_off, pos_sel = _gather_ragged(self.pos_offsets, rows)
        neg_off, neg_sel = _gather_ragged(self.neg_offsets, rows)
        cv_off, cv_sel = _gather_ragged(self.cv_offsets, rows)
        return HistogramBatch(
            series_idx=self.series_idx[rows],
            timestamps=self.timestamps[rows],
            schema=self.schema[rows],
            count=self.count[rows],
            sum=self.sum[rows],
            zero_threshold=self.zero_threshold[rows],
            zero_count=self.zero_count[rows],
            reset_hint=self.reset_hint[rows],
            float_counts=self.float_counts[rows],
            pos_offsets=pos_off,
            pos_index=self.pos_index[pos_sel],
            pos_counts=self.pos_counts[pos_sel],
            neg_offsets=neg_off,
            neg_index=self.neg_index[neg_sel],
            neg_counts=self.neg_counts[neg_sel],
            cv_offsets=cv_off,
            custom_values=self.custom_values[cv_sel],
        )

    def with_series_idx(self, series_idx: NDArray[np.int32]) -> HistogramBatch:
        """The same samples attributed to other series (e.g. series ids in storage)."""
        return _replace(self, series_idx=np.asarray(series_idx))

    @staticmethod
    def concat(parts: Sequence[HistogramBatch]) -> HistogramBatch:
        """All rows of `parts`, in order, as one batch."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return HistogramBatch.empty()
        if len(parts) == 1:
            return parts[0]

        def cat(name: str) -> NDArray:
            return np.concatenate([getattr(p, name) for p in parts])

        def offsets(name: str) -> NDArray[np.int64]:
            out = [np.zeros(1, dtype=np.int64)]
            base = 0
            for p in parts:
                off = getattr(p, name)
                out.append(off[1:] + (base - int(off[0])))
                base += int(off[-1] - off[0])
            return np.concatenate(out)

        return HistogramBatch(
            series_idx=cat("series_idx"),
            timestamps=cat("timestamps"),
            schema=cat("schema"),
            count=cat("count"),
            sum=cat("sum"),
            zero_threshold=cat("zero_threshold"),
            zero_count=cat("zero_count"),
            reset_hint=cat("reset_hint"),
            float_counts=cat("float_counts"),
            pos_offsets=offsets("pos_offsets"),
            pos_index=cat("pos_index"),
            pos_counts=cat("pos_counts"),
            neg_offsets=offsets("neg_offsets"),
            neg_index=cat("neg_index"),
            neg_counts=cat("neg_counts"),
            cv_offsets=offsets("cv_offsets"),
            custom_values=cat("custom_values"),
        )

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in self.__dataclass_fields__)


def _replace(batch: HistogramBatch, **changes: object) -> HistogramBatch:
    fields = {name: getattr(batch, name) for name in batch.__dataclass_fields__}
    fields.update(changes)
    return HistogramBatch(**fields)


def _gather_ragged(
    offsets: NDArray[np.int64], rows: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """For ragged rows `offsets`, the offsets and flat element indices of `rows`."""
    lo = offsets[rows]
    counts = offsets[rows + 1] - lo
    new_off = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts, out=new_off[1:])
    total = int(new_off[-1])
    sel = np.repeat(lo - new_off[:-1], counts) + np.arange(total, dtype=np.int64)
    return new_off, sel


def segment_cumsum(values: NDArray, offsets: NDArray[np.int64]) -> NDArray:
    """Running sums restarting at every segment start (segment k is
    `values[offsets[k]:offsets[k+1]]`, `offsets[0] == 0`)."""
    if not len(values):
        return np.asarray(values).copy()
    values = np.asarray(values)
    n = len(offsets) - 1
    size = len(values) // n if n > 0 else 0
    if (
        values.dtype.kind in "iu"  # exact either way; floats keep one rounding order
        and size
        and size * n == len(values)
        and (np.diff(offsets) == size).all()
    ):
        return values.reshape(n, size).cumsum(axis=1).ravel()  # segments of one length
    total = np.cumsum(values)
    before = np.concatenate((np.zeros(1, dtype=total.dtype), total))[offsets[:-1]]
    return total - np.repeat(before, np.diff(offsets))


def buckets_from_spans(
    span_offsets: NDArray[np.int64],
    span_offset: NDArray[np.int64],
    span_length: NDArray[np.int64],
    value_offsets: NDArray[np.int64],
    values: NDArray,
    *,
    deltas: bool,
) -> tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.float64]]:
    """Expand wire-form buckets of many histograms at once.

    Histogram h has spans `span_offsets[h]:span_offsets[h+1]` of the flat
    `span_offset`/`span_length` columns (the protobuf `BucketSpan`s: the first
    offset is the first bucket's index, later ones the gap after the previous
    span) and bucket values `value_offsets[h]:value_offsets[h+1]` of `values`
    (integer deltas when `deltas`, else absolute float counts).

    Returns per-histogram bucket offsets, absolute bucket indices and absolute
    counts. Raises ValueError when a histogram's spans and values disagree in
    number (the message names the first such histogram by position).
    """
    span_offset = np.asarray(span_offset, dtype=np.int64)
    span_length = np.asarray(span_length, dtype=np.int64)
    n = len(span_offsets) - 1
    per_hist = np.zeros(n, dtype=np.int64)
    if len(span_length):
        hist_of_span = np.repeat(np.arange(n), np.diff(span_offsets))
        per_hist = np.bincount(hist_of_span, weights=span_length, minlength=n).astype(np.int64)
    given = np.diff(value_offsets)
    bad = np.flatnonzero(per_hist != given)
    if len(bad):
        h = int(bad[0])
        raise ValueError(
            f"histogram {h}: spans need {int(per_hist[h])} buckets but {int(given[h])} were sent"
        )
    # Index of each span's first bucket: sum of offsets so far plus lengths of earlier spans.
    starts = segment_cumsum(span_offset, span_offsets) + (
        segment_cumsum(span_length, span_offsets) - span_length
    )
    total = int(span_length.sum())
    span_base = np.zeros(len(span_length) + 1, dtype=np.int64)
    np.cumsum(span_length, out=span_base[1:])
    within = np.arange(total, dtype=np.int64) - np.repeat(span_base[:-1], span_length)
    index = (np.repeat(starts, span_length) + within).astype(np.int32)
    if deltas:
        counts = segment_cumsum(np.asarray(values, dtype=np.int64), value_offsets).astype(
            np.float64
        )
    else:
        counts = np.asarray(values, dtype=np.float64)
    return np.asarray(value_offsets, dtype=np.int64), index, counts


def spans_from_buckets(
    index: NDArray[np.int32],
) -> tuple[list[tuple[int, int]], NDArray[np.int64]]:
    """One histogram's bucket indices (ascending) as protobuf spans (offset, length),
    plus per bucket its position: the inverse of `buckets_from_spans` for one row.
    Used by encoders (per histogram, not per bucket, on their path)."""
    if not len(index):
        return [], np.zeros(0, dtype=np.int64)
    idx = np.asarray(index, dtype=np.int64)
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    begins = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [len(idx)]))
    spans = []
    prev_end = 0
    for k, (b, e) in enumerate(zip(begins.tolist(), ends.tolist(), strict=True)):
        first = int(idx[b])
        spans.append((first if k == 0 else first - prev_end, e - b))
        prev_end = first + (e - b)
    return spans, np.arange(len(idx), dtype=np.int64)
