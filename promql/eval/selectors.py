"""Vector and range selection over a whole query's steps at once.

A `SeriesSet` holds every selected series' samples in one flat CSR block. To
find, for every (series, step), the sample(s) it sees, each series' timestamps
are shifted into a disjoint key range (`key = (ts - base) + series * span`), so
that one `np.searchsorted` over the flat keys answers all series and all steps
together. Timestamps are sorted per series, so the keys are globally sorted.

Staleness (Prometheus 3): an instant selector takes the newest sample in
`(t - lookback, t]`; if that sample is a stale marker the series is absent at
`t`. A range selector sees the samples in `(t - range, t]` (left-open), with
stale markers removed.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from promql.value import HistCells, StepRange, StepVector
from remote_write.histograms import HistogramBatch
from storage.interfaces import SeriesSet
from storage.labels import Labels

STALE_NAN_BITS = np.uint64(0x7FF0000000000002)
_KEY_LIMIT = 1 << 62

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]


def is_stale(values: F64) -> NDArray[np.bool_]:
    """Which values are Prometheus stale markers (a NaN with a special bit pattern)."""
    return values.view(np.uint64) == STALE_NAN_BITS


def count_le(offsets: I64, ts: I64, times: I64) -> I64:
    """Global index one past each series' last sample `<= times[j]`, shape `[series, steps]`.

    `times` must be ascending and shared by all series. Each sample is binned
    by the first step that sees it (a search in the short `times` array), the
    bins are counted per series with one `bincount` and accumulated over the
    steps: O(samples + series x steps), no per-(series, step) binary search.
    """
    n = len(offsets) - 1
    steps = len(times)
    if n == 0:
        return np.zeros((0, steps), dtype=np.int64)
    if steps <= 2:
        # Instant queries: one comparison pass per time beats binning.
        out = np.empty((n, steps), dtype=np.int64)
        cs = np.zeros(len(ts) + 1, dtype=np.int64)
        for j, t in enumerate(times.tolist()):
            np.cumsum(ts <= t, out=cs[1:])
            out[:, j] = cs[offsets[1:]] - cs[offsets[:-1]] + offsets[:-1]
        return out
    bins = _first_step(times, ts)
    bins += np.repeat(np.arange(0, n * (steps + 1), steps + 1, dtype=np.int64), np.diff(offsets))
    hist = np.bincount(bins, minlength=n * (steps + 1)).reshape(n, steps + 1)
    hist[:, 0] += offsets[:-1]
    return np.cumsum(hist[:, :steps], axis=1)


def _first_step(times: I64, ts: I64) -> I64:
    """Per sample, the index of the first of `times` at or after it (`len(times)` if none)."""
    steps = len(times)
    if steps > 1:
        step = int(times[1] - times[0])
        t0 = int(times[0])
        if step > 0 and int(times[-1]) == t0 + (steps - 1) * step:
            # Evenly spaced (every query and subquery grid): arithmetic, no search.
            # Float math is exact here (ms timestamps < 2**53) and much faster
            # than int64 floor division.
            idx = ts.astype(np.float64)
            idx -= t0
            idx /= step
            np.ceil(idx, out=idx)
            np.clip(idx, 0, steps, out=idx)
            return idx.astype(np.int64)
    return np.searchsorted(times, ts, side="left")


def _ascending(times: I64) -> bool:
    return times.ndim == 1 and bool(np.all(times[1:] >= times[:-1]))


def search(offsets: I64, ts: I64, times: I64, side: str) -> I64:
    """Global sample indices: per series `i` and time `times[i, j]` (or `times[j]`).

    Returns `searchsorted(ts[series i], t, side) + offsets[i]` for all pairs,
    shape `[series, steps]`, computed with one vectorized search.
    """
    n = len(offsets) - 1
    times = np.asarray(times, dtype=np.int64)
    if side == "right" and _ascending(times):
        return count_le(offsets, ts, times)
    t2 = times if times.ndim == 2 else np.broadcast_to(times, (n, times.shape[-1]))
    if n == 0:
        return np.zeros((0, t2.shape[-1]), dtype=np.int64)
    tmin = int(t2.min())
    tmax = int(t2.max())
    if len(ts):
        tmin = min(tmin, int(ts.min()))
        tmax = max(tmax, int(ts.max()))
    span = tmax - tmin + 2
    if span * (n + 1) < _KEY_LIMIT:
        counts = np.diff(offsets)
        sid = np.repeat(np.arange(n, dtype=np.int64) * span, counts)
        keys = (ts - tmin) + sid
        qkeys = (t2 - tmin) + (np.arange(n, dtype=np.int64) * span)[:, None]
        flat = np.searchsorted(keys, qkeys.ravel(), side=side)  # type: ignore[call-overload]
        return flat.reshape(t2.shape).astype(np.int64, copy=False)
    # Keys would overflow (absurd time spans): one search per series.
    out = np.empty(t2.shape, dtype=np.int64)
    for i in range(n):
        lo, hi = int(offsets[i]), int(offsets[i + 1])
        out[i] = np.searchsorted(ts[lo:hi], t2[i], side=side) + lo  # type: ignore[call-overload]
    return out


def _constant(times: I64) -> bool:
    return len(times) > 1 and bool(times[0] == times[-1]) and bool(np.all(times == times[0]))


def instant_vector(
    ss: SeriesSet,
    times: I64,
    lookback_ms: int,
    *,
    with_timestamps: bool = False,
    hist: tuple[I64, HistogramBatch] | None = None,
) -> tuple[StepVector, I64 | None]:
    """The instant vector of `ss` at each of `times` (already offset / `@`-adjusted).

    Returns the vector and, if asked, each (series, step)'s sample timestamp
    (for `timestamp()`).
    """
    times = np.asarray(times, dtype=np.int64)
    steps = len(times)
    if _constant(times):
        vec, sts = instant_vector(
            ss, times[:1], lookback_ms, with_timestamps=with_timestamps, hist=hist
        )
        values = np.repeat(vec.values, steps, axis=1)
        present = np.repeat(vec.present, steps, axis=1)
        out_ts = np.repeat(sts, steps, axis=1) if sts is not None else None
        cells_ = None
        if vec.hist is not None:
            cells_ = HistCells(np.repeat(vec.hist.ref, steps, axis=1), vec.hist.table)
        return StepVector(vec.labels, values, present, None, cells_), out_ts
    n = len(ss.labels)
    if n == 0 or len(ss.timestamps) == 0:
        empty = StepVector([], np.zeros((0, steps)), np.zeros((0, steps), dtype=bool))
        return empty, (np.zeros((0, steps), dtype=np.int64) if with_timestamps else None)
    idx = search(ss.offsets, ss.timestamps, times, "right") - 1
    starts = ss.offsets[:-1][:, None]
    valid = idx >= starts
    safe = np.where(valid, idx, 0)
    sample_ts = ss.timestamps[safe]
    values = ss.values[safe]
    valid &= sample_ts > (times[None, :] - lookback_ms)
    valid &= ~is_stale(values)
    vec = StepVector(list(ss.labels), values, valid)
    if hist is not None:
        href, table = hist
        vec.hist = HistCells(np.where(valid, href[safe], -1), table)
    return vec, (sample_ts if with_timestamps else None)


def drop_stale(ss: SeriesSet, href: I64 | None = None) -> tuple[I64, I64, F64]:
    """The set's samples without stale markers: (offsets, timestamps, values).
    With `href` (histogram rows per sample), that is filtered in place alike
    (use `drop_stale_hist`)."""
    stale = is_stale(ss.values)
    if not stale.any():
        return ss.offsets, ss.timestamps, ss.values
    keep = ~stale
    n = len(ss.labels)
    sid = np.repeat(np.arange(n), np.diff(ss.offsets))
    counts = np.bincount(sid[keep], minlength=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets, ss.timestamps[keep], ss.values[keep]


def range_vector(
    labels: list[Labels],
    offsets: I64,
    timestamps: I64,
    values: F64,
    window_end: I64,
    range_ms: int,
    drop_name: NDArray[np.bool_] | None = None,
) -> StepRange:
    """Windows `(end - range, end]` of CSR samples (stale markers already removed)."""
    window_end = np.asarray(window_end, dtype=np.int64)
    n = len(labels)
    if n == 0:
        z = np.zeros((0, len(window_end)), dtype=np.int64)
        return StepRange(
            [], offsets, timestamps, values, z, z.copy(), window_end, range_ms, drop_name
        )
    steps = len(window_end)
    step = int(window_end[1] - window_end[0]) if steps > 1 else 0
    if steps == 1 or _constant(window_end):
        end = int(window_end[0])
        both = count_le(offsets, timestamps, np.array([end - range_ms, end], dtype=np.int64))
        lo = np.repeat(both[:, :1], steps, axis=1)
        hi = np.repeat(both[:, 1:], steps, axis=1)
    elif (
        step > 0
        and range_ms % step == 0
        and int(window_end[-1]) == int(window_end[0]) + (steps - 1) * step
    ):
        # Range a multiple of the step: window starts lie on the same grid, so
        # one pass over the samples gives both ends of every window.
        shift = range_ms // step
        grid = int(window_end[0]) - range_ms + step * np.arange(steps + shift, dtype=np.int64)
        both = count_le(offsets, timestamps, grid)
        lo = both[:, :steps]
        hi = both[:, shift:]
    else:
        lo = search(offsets, timestamps, window_end - range_ms, "right")
        hi = search(offsets, timestamps, window_end, "right")
    return StepRange(
        list(labels), offsets, timestamps, values, lo, hi, window_end, range_ms, drop_name
    )


def vector_to_csr(vec: StepVector, steps: I64) -> tuple[I64, I64, F64]:
    """Flatten a step vector's present points into CSR samples (for subqueries)."""
    present = vec.present
    counts = present.sum(axis=1)
    offsets = np.zeros(len(vec.labels) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    rows, cols = np.nonzero(present)
    return offsets, np.asarray(steps, dtype=np.int64)[cols], vec.values[rows, cols]


def drop_stale_hist(ss: SeriesSet, href: I64) -> tuple[I64, I64, F64, I64]:
    """`drop_stale` that also filters the per-sample histogram rows `href`."""
    keep = ~is_stale(ss.values)
    offsets, ts, vals = drop_stale(ss)
    return offsets, ts, vals, href[keep]
