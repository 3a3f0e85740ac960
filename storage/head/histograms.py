"""Native histogram samples in the head: checks on ingest, a columnar store, reads.

Layout (README "Native histograms", `storage.head.histstore`): the rows'
scalar columns sorted by (series id, time) with a per-row WAL sequence
number, new rows in a pending list folded in (one lexsort over the scalars)
once they reach half the sorted ones; buckets appended once into chunked
pools that a fold never moves. A read takes the requested series' row
ranges by `searchsorted` and the matching pending rows by a mask, sorts and
de-duplicates only those (the earliest written sample wins a timestamp, as
for floats), and gathers their buckets.

Checks, vectorised over a request's histograms: structure (schema, negative
or inconsistent counts, custom bounds), too far in the future, too old
(retention), out of order beyond the window (against the series' newest
sample, float or histogram: Prometheus keeps one head series for both).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from remote_write.batch import STALE_NAN_BITS, Rejection
from remote_write.histograms import (
    CUSTOM_BUCKETS_SCHEMA,
    MAX_SCHEMA,
    MIN_SCHEMA,
    HistogramBatch,
)
from storage.head import messages
from storage.head.head import NO_SAMPLE, Head
from storage.labels import format_labels

_REASONS = {
    1: ("invalid_native_histogram", "native histogram is invalid: {why}"),
    2: ("sample_too_far_in_future", "native histogram sample too far in the future"),
    3: ("sample_too_old", "native histogram sample too old"),
    4: ("out_of_order_sample", "native histogram sample out of order"),
}


def invalid_reasons(hb: HistogramBatch) -> tuple[NDArray[np.int8], list[str]]:
    """Per row 0 (valid) or the index+1 of its problem in the returned wording list."""
    n = len(hb)
    why = np.zeros(n, dtype=np.int8)
    words: list[str] = []

    def mark(bad: NDArray[np.bool_], text: str) -> None:
        bad = bad & (why == 0)
        if bad.any():
            words.append(text)
            why[bad] = len(words)

    stale = hb.sum.view(np.uint64) == STALE_NAN_BITS
    schema = hb.schema
    custom = schema == CUSTOM_BUCKETS_SCHEMA
    mark(
        ~stale & ~custom & ((schema < MIN_SCHEMA) | (schema > MAX_SCHEMA)),
        f"schema must be between {MIN_SCHEMA} and {MAX_SCHEMA}, or {CUSTOM_BUCKETS_SCHEMA} "
        "for custom buckets",
    )
    row_of_pos = np.repeat(np.arange(n), np.diff(hb.pos_offsets))
    row_of_neg = np.repeat(np.arange(n), np.diff(hb.neg_offsets))
    neg_bucket = np.zeros(n, dtype=bool)
    neg_bucket[row_of_pos[hb.pos_counts < 0]] = True
    neg_bucket[row_of_neg[hb.neg_counts < 0]] = True
    mark(~stale & (neg_bucket | (hb.zero_count < 0)), "a bucket has a negative count")
    mark(~stale & (hb.count < 0), "the count is negative")
    total = (
        np.bincount(row_of_pos, weights=hb.pos_counts, minlength=n)
        + np.bincount(row_of_neg, weights=hb.neg_counts, minlength=n)
        + hb.zero_count
    )
    # Integer histograms: count must equal the buckets' total (at least it, when sum is NaN).
    ints = ~stale & ~hb.float_counts
    mark(
        ints & ~np.isnan(hb.sum) & (hb.count != total),
        "the count does not equal the number of observations in the buckets",
    )
    mark(
        ints & np.isnan(hb.sum) & (hb.count < total),
        "the count is less than the number of observations in the buckets",
    )
    cv_rows = np.diff(hb.cv_offsets) > 0
    mark(~stale & ~custom & cv_rows, "custom bucket bounds are only allowed with schema -53")
    if custom.any():
        cv = hb.custom_values
        row_of_cv = np.repeat(np.arange(n), np.diff(hb.cv_offsets))
        same_row = row_of_cv[1:] == row_of_cv[:-1]
        unsorted = np.zeros(n, dtype=bool)
        unsorted[row_of_cv[1:][same_row & (cv[1:] <= cv[:-1])]] = True
        mark(~stale & custom & unsorted, "custom bucket bounds must be strictly increasing")
        nb = np.diff(hb.cv_offsets)
        top = np.zeros(n, dtype=np.int64) - 1
        if len(hb.pos_index):
            np.maximum.at(top, row_of_pos, hb.pos_index.astype(np.int64))
        mark(
            ~stale & custom & ((top > nb) | (np.diff(hb.neg_offsets) > 0)),
            "custom bucket indexes must lie within the custom bounds, with no negative buckets",
        )
        low = np.zeros(n, dtype=bool)
        low[row_of_pos[hb.pos_index < 0]] = True
        mark(~stale & custom & low, "custom bucket indexes must not be negative")
    return why, words


def apply_histograms(
    head: Head, hb: HistogramBatch, sids: NDArray[np.int64], now_ms: int
) -> tuple[int, int, int, list[Rejection]]:
    """Check and store a request's histograms (`series_idx` into the batch's series,
    `sids` the head ids of those series, -1 for refused ones).

    Returns (accepted, stored, newest stored timestamp or NO_SAMPLE, rejections).
    """
    n = len(hb)
    if not n:
        return 0, 0, NO_SAMPLE, []
    sid = sids[hb.series_idx]
    why, words = invalid_reasons(hb)
    code = np.where(why > 0, 1, 0).astype(np.int8)
    code[sid < 0] = -1  # series refused already (reported by series resolution)
    opts = head.options
    ts = hb.timestamps
    code[(code == 0) & (ts > now_ms + opts.max_future_ms)] = 2
    min_valid = head.min_valid_time()
    code[(code == 0) & (ts < min_valid)] = 3
    window = max(opts.out_of_order_window_ms, opts.late_window_ms)
    ok = code == 0
    newest = np.where(ok, head.max_ts[np.maximum(sid, 0)], NO_SAMPLE)
    code[ok & (ts < newest - window)] = 4
    rows = np.flatnonzero(code == 0)
    rejections = _rejections(head, hb, sid, code, why, words)
    if not len(rows):
        return 0, 0, NO_SAMPLE, rejections
    good = hb if len(rows) == n else hb.take(rows)
    s = sid[rows]
    good = good.with_series_idx(s.astype(np.int32))
    head.histograms.add(good, head.seq)
    t = good.timestamps
    np.maximum.at(head.max_ts, s, t)
    np.minimum.at(head.min_ts, s, t)
    newest_ts = int(t.max())
    head.max_time = max(head.max_time, newest_ts)
    return len(rows), len(rows), newest_ts, rejections


def _rejections(
    head: Head,
    hb: HistogramBatch,
    sid: NDArray[np.int64],
    code: NDArray[np.int8],
    why: NDArray[np.int8],
    words: list[str],
) -> list[Rejection]:
    out: list[Rejection] = []
    bad = np.flatnonzero(code > 0)
    if not len(bad):
        return out
    key = (hb.series_idx[bad].astype(np.int64) * 8 + code[bad]) * 128 + why[bad]
    _, first, counts = np.unique(key, return_index=True, return_counts=True)
    for f, c in zip(first.tolist(), counts.tolist(), strict=True):
        row = int(bad[f])
        k = int(code[row])
        reason, text = _REASONS[k]
        labels = format_labels(head.index.labels(int(sid[row])) or ())
        detail = text.format(why=words[int(why[row]) - 1] if k == 1 else "")
        msg = (
            f"{detail} for series {labels} at {messages.format_ts(int(hb.timestamps[row]))} "
            f"(timestamp {int(hb.timestamps[row])}), {c} sample{'s' if c != 1 else ''}"
        )
        out.append(Rejection(series=labels, reason=reason, message=msg, samples=c))
    return out
