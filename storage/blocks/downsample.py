"""Downsampling raw samples into windows of count, sum, min, max and counter (as Thanos does).

Windows are aligned to the resolution (`ts // resolution`); each is stamped
with the time of its last sample, so downsampled points never lie outside
the raw data. NaN samples (stale markers included) are left out, as Thanos
leaves them out. The counter is the series' value with every reset undone
(a drop counts the value after it as the increase, as `rate` does), shifted
so that the block's last window equals the series' last raw value: what it
removed is kept per series as `counter_loss` (see `synthesize`).

Everything but the counter is one `reduceat` over all series; the counter
is accumulated per series (a cumulative sum over all series at once would
lose precision on large counters).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from storage.blocks.writer import SeriesBatch
from storage.labels import Labels


def downsample(
    labels: Sequence[Labels],
    offsets: NDArray[np.int64],
    timestamps: NDArray[np.int64],
    values: NDArray[np.float64],
    resolution_ms: int,
) -> SeriesBatch:
    """Windows of `resolution_ms` of every series (CSR input, series in block order)."""
    counts = np.diff(offsets)
    series_of = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    keep = ~np.isnan(values)
    ts, vals, series = timestamps[keep], values[keep], series_of[keep]
    n_series = len(counts)
    kept = np.bincount(series, minlength=n_series)
    if not len(ts):
        return _empty_batch(labels, n_series)
    window = ts // resolution_ms
    starts = np.flatnonzero(
        np.concatenate(([True], (series[1:] != series[:-1]) | (window[1:] != window[:-1])))
    )
    ends = np.concatenate((starts[1:], [len(ts)])) - 1
    window_series = series[starts]
    count = np.diff(np.concatenate((starts, [len(ts)])))
    columns: dict[str, NDArray] = {
        "count": count.astype(np.int64),
        "sum": np.add.reduceat(vals, starts),
        "min": np.minimum.reduceat(vals, starts),
        "max": np.maximum.reduceat(vals, starts),
    }
    series_start = np.zeros(n_series + 1, dtype=np.int64)
    np.cumsum(kept, out=series_start[1:])
    counter = np.empty(len(starts), dtype=np.float64)
    loss = np.zeros(n_series, dtype=np.float64)
    first_value = np.full(n_series, np.nan)
    last_value = np.full(n_series, np.nan)
    window_start = np.zeros(n_series + 1, dtype=np.int64)
    np.cumsum(np.bincount(window_series, minlength=n_series), out=window_start[1:])
    for s in np.flatnonzero(kept).tolist():
        a, b = int(series_start[s]), int(series_start[s + 1])
        v = vals[a:b]
        step = np.diff(v)
        resets = step < 0
        step[resets] = v[1:][resets]
        total = v[0] + np.concatenate(([0.0], np.cumsum(step)))
        loss[s] = total[-1] - v[-1]
        wa, wb = int(window_start[s]), int(window_start[s + 1])
        # Counted back from the last raw value, so the last window is that value exactly.
        counter[wa:wb] = v[-1] - (total[-1] - total[ends[wa:wb] - a])
        first_value[s], last_value[s] = v[0], v[-1]
    columns["counter"] = counter
    win_counts = np.bincount(window_series, minlength=n_series)
    out_offsets = np.zeros(n_series + 1, dtype=np.int64)
    np.cumsum(win_counts, out=out_offsets[1:])
    return SeriesBatch(
        labels,
        out_offsets,
        ts[ends],
        columns,
        first_value,
        last_value,
        {"counter_loss": loss},
    )


def _empty_batch(labels: Sequence[Labels], n_series: int) -> SeriesBatch:
    empty = np.zeros(0, dtype=np.float64)
    nan = np.full(n_series, np.nan)
    return SeriesBatch(
        labels,
        np.zeros(n_series + 1, dtype=np.int64),
        np.zeros(0, dtype=np.int64),
        {
            "count": np.zeros(0, dtype=np.int64),
            "sum": empty,
            "min": empty,
            "max": empty,
            "counter": empty,
        },
        nan,
        nan,
        {"counter_loss": np.zeros(n_series)},
    )
