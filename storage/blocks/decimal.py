"""Lossless integer coding of decimal float values (the idea VictoriaMetrics uses).

Most metric values are integers (counters, bucket counts, bytes) or decimals
with few digits (CPU seconds with two decimals, load averages). As float64
their bits look random to a compressor; as integers their deltas are small.
So each series (per value column) gets a decimal scale `k`: a value `v` is
stored as the int64 `n = round(v * 10**k)` when `n / 10**k` gives back `v`
bit for bit (IEEE division is correctly rounded, so this holds exactly when
`v` is the float nearest to the decimal `n·10⁻ᵏ`). Values that do not round
trip (NaN, stale markers, infinities, -0.0, rare odd values) stay float64 in
a separate column; a series whose values are mostly not decimal keeps all of
them as float64.

Everything is numpy over whole columns; the only loop is over the candidate
scales (at most `MAX_SCALE + 1` passes, each over the still undecided rows).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

MAX_SCALE = 12
FLOAT = -1
"""Scale of a series stored entirely as float64."""
POW10 = np.array([10.0**k for k in range(MAX_SCALE + 1)], dtype=np.float64)
"""10**k, exact in float64 for every k used."""
MIN_SHARE = 0.99
"""Share of a series' values that must round trip at a scale for it to be chosen."""
_EXACT = float(2**53)


def _round_trips(
    values: NDArray[np.float64], k: int
) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    """Per value: whether it round-trips at scale k, and the integer.

    The check decodes exactly as readers do (int64 -> float64, divided by
    10**k), so -0.0 (whose integer is 0) and anything else that would not
    come back bit for bit stays a float.
    """
    m = POW10[k]
    with np.errstate(invalid="ignore", over="ignore"):
        n = np.rint(values * m)
        ok = np.abs(n) < _EXACT
        ints = np.where(ok, n, 0.0).astype(np.int64)
        back = ints.astype(np.float64) / m
    ok &= back.view(np.uint64) == values.view(np.uint64)
    return ok, ints


def choose_scales(values: NDArray[np.float64], offsets: NDArray[np.int64]) -> NDArray[np.int8]:
    """The smallest scale per series (rows [offsets[i], offsets[i+1])) at which at
    least MIN_SHARE of its finite values round trip, or FLOAT."""
    n_series = len(offsets) - 1
    scales = np.full(n_series, FLOAT, dtype=np.int8)
    if not len(values):
        return scales
    counts = np.diff(offsets)
    row_series = np.repeat(np.arange(n_series), counts)
    finite = np.isfinite(values)
    need = np.bincount(row_series[finite], minlength=n_series) * MIN_SHARE
    undecided = (counts > 0) & (need > 0)
    rows = np.flatnonzero(finite & undecided[row_series])
    for k in range(MAX_SCALE + 1):
        if not len(rows):
            break
        ok, _ = _round_trips(values[rows], k)
        passed = np.bincount(row_series[rows[ok]], minlength=n_series)
        chosen = undecided & (passed >= need)
        if chosen.any():
            scales[chosen] = k
            undecided &= ~chosen
            rows = rows[undecided[row_series[rows]]]
    return scales


def split(
    values: NDArray[np.float64], offsets: NDArray[np.int64], scales: NDArray[np.int8]
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """(integers, is_int) per row: where `is_int`, the value is integers / 10**scale."""
    counts = np.diff(offsets)
    row_scale = np.repeat(scales, counts)
    is_int = np.zeros(len(values), dtype=bool)
    ints = np.zeros(len(values), dtype=np.int64)
    for k in np.unique(scales).tolist():
        if k == FLOAT:
            continue
        rows = np.flatnonzero(row_scale == k)
        ok, n = _round_trips(values[rows], k)
        is_int[rows[ok]] = True
        ints[rows[ok]] = n[ok]
    return ints, is_int


def join(
    floats: NDArray[np.float64],
    ints: NDArray[np.int64],
    is_int: NDArray[np.bool_],
    row_scale: NDArray[np.int8],
) -> NDArray[np.float64]:
    """The values `split` took apart, bit for bit (`floats` is read where not `is_int`)."""
    out = floats.copy() if not is_int.any() else np.where(is_int, 0.0, floats)
    if is_int.any():
        rows = np.flatnonzero(is_int)
        out[rows] = ints[rows].astype(np.float64) / POW10[row_scale[rows].clip(0)]
    return out
