"""Vectorized primitives over the windows of a `StepRange`.

A range-vector function sees, for every (series, step), the samples with
flat indices `[lo, hi)`. Everything here works on all windows at once:

- `iter_blocks` cuts the series into blocks of about 64k samples and 64k
  windows, so every temporary array stays in cache and prefix sums stay
  local to a block (their magnitude, and so their rounding, is that of the
  block's data, not of the whole query).
- `prefix` (compensated prefix sums) and `scans` (exact replays of
  Prometheus's sequential loops) are the two halves of the sum-like
  functions.
- `window_extreme` (sparse table / reduceat) and `window_quantiles`
  (sorted window rows) serve min/max and quantiles.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from promql.value import StepRange

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
BOOL = NDArray[np.bool_]
ScalarT = TypeVar("ScalarT", bound=np.generic)

BLOCK_TARGET = 1 << 16
"""Samples and windows per block: keeps temporaries within L2 cache."""


class Block:
    """Series rows `[s0, s1)` of a StepRange and their flat samples `[a, b)`.

    `abs_lo`, `abs_hi` are the windows as absolute flat indices (views, no
    copy); `lo`, `hi` the same as block-local indices into `x` / `t`
    (`0 <= lo <= hi <= b - a`), computed on first use; `n = hi - lo`.
    """

    __slots__ = (
        "_hi",
        "_lo",
        "a",
        "abs_hi",
        "abs_lo",
        "b",
        "n",
        "out",
        "out_present",
        "s0",
        "s1",
        "t",
        "x",
    )

    def __init__(self, rng: StepRange, s0: int, s1: int) -> None:
        self.s0 = s0
        self.s1 = s1
        self.a = a = int(rng.offsets[s0])
        self.b = b = int(rng.offsets[s1])
        self.x: F64 = rng.values[a:b]
        self.t: I64 = rng.timestamps[a:b]
        self.abs_lo: I64 = rng.lo[s0:s1]
        self.abs_hi: I64 = rng.hi[s0:s1]
        self.n: I64 = self.abs_hi - self.abs_lo
        self._lo: I64 | None = None
        self._hi: I64 | None = None
        self.out: F64 | None = None
        """This block's rows of the result (set by `map_blocks`); a block
        function may write its values and presence there and return None."""
        self.out_present: BOOL | None = None

    @property
    def lo(self) -> I64:
        if self._lo is None:
            self._lo = self.abs_lo - self.a
        return self._lo

    @property
    def hi(self) -> I64:
        if self._hi is None:
            self._hi = self.abs_hi - self.a
        return self._hi


def iter_blocks(rng: StepRange, target: int | None = None) -> Iterator[Block]:
    """Blocks of whole series, each with about `target` samples and windows."""
    if target is None:
        target = BLOCK_TARGET
    nseries = rng.num_series
    nsteps = rng.lo.shape[1] if rng.lo.ndim == 2 else 0
    offsets = rng.offsets
    rows_cap = max(1, target // max(nsteps, 1))
    s0 = 0
    while s0 < nseries:
        by_samples = int(np.searchsorted(offsets, offsets[s0] + target, side="right")) - 1
        s1 = min(nseries, s0 + rows_cap, max(s0 + 1, by_samples))
        yield Block(rng, s0, s1)
        s0 = s1


def map_blocks(rng: StepRange, fn: Callable[[Block], tuple[F64, BOOL] | None]) -> tuple[F64, BOOL]:
    """Run `fn` over every block; returns the `[series x steps]` values and presence.

    `fn` returns its block's (values, presence), or fills `blk.out` and
    `blk.out_present` itself and returns None (one copy less).
    """
    shape = rng.lo.shape
    values = np.empty(shape)
    present = np.empty(shape, dtype=np.bool_)
    with np.errstate(all="ignore"):
        for blk in iter_blocks(rng):
            blk.out = values[blk.s0 : blk.s1]
            blk.out_present = present[blk.s0 : blk.s1]
            res = fn(blk)
            if res is not None:
                blk.out[...] = res[0]
                blk.out_present[...] = res[1]
    return values, present


def gather(arr: NDArray[ScalarT], idx: I64) -> NDArray[ScalarT]:
    """`arr[idx]` with out-of-range indices clipped (callers mask those windows)."""
    if not len(arr):
        return np.zeros(idx.shape, dtype=arr.dtype)
    return np.take(arr, idx, mode="clip")


def series_starts(blk: Block, offsets: I64) -> I64:
    """Block-local indices where a series other than the block's first starts."""
    starts = offsets[blk.s0 + 1 : blk.s1] - blk.a
    return starts[(starts > 0) & (starts < blk.b - blk.a)]


def padded(x: F64, fill: float = np.nan) -> F64:
    """`x` plus one trailing element, so that `x[lo]` is safe for empty windows at the end."""
    out = np.empty(len(x) + 1, dtype=x.dtype)
    out[:-1] = x
    out[-1] = fill
    return out


# --- min / max ---------------------------------------------------------------


def window_extreme(x: F64, lo: I64, hi: I64, ufunc: np.ufunc) -> F64:
    """`ufunc`-reduction (np.fmax / np.fmin) of every non-empty window.

    Overlapping windows (range queries) use a sparse table built level by
    level, each window answered from two entries of the level of its
    length; disjoint windows (instant queries) use one `reduceat`. Empty
    windows give NaN.
    """
    shape = lo.shape
    lo1 = lo.ravel()
    hi1 = hi.ravel()
    n = hi1 - lo1
    nonempty = n > 0
    longest = int(n.max()) if len(n) else 0
    if longest == 0:
        return np.full(shape, np.nan)
    if int(n.sum()) <= 2 * len(x) + 64:
        out = np.full(len(lo1), np.nan)
        sel = np.flatnonzero(nonempty)
        idx = np.empty(2 * len(sel), dtype=np.int64)
        idx[0::2] = lo1[sel]
        idx[1::2] = hi1[sel]
        out[sel] = ufunc.reduceat(padded(x), idx)[0::2]
        return out.reshape(shape)
    # level k covers 2**k samples: floor(log2(n)), from a small lookup table
    levels = np.zeros(longest + 1, dtype=np.int64)
    levels[1:] = np.floor(np.log2(np.arange(1, longest + 1))).astype(np.int64)
    shortest = int(n[nonempty].min())
    table = x
    if levels[shortest] == levels[longest]:
        # the usual case: all windows have about the same length
        top = int(levels[longest])
        for k in range(1, top + 1):
            half = 1 << (k - 1)
            table = ufunc(table[:-half], table[half:])
        out = ufunc(gather(table, lo1), gather(table, hi1 - (1 << top)))
        out[~nonempty] = np.nan
        return out.reshape(shape)
    out = np.full(len(lo1), np.nan)
    level = levels[n]
    level[~nonempty] = -1
    for k in range(int(levels[longest]) + 1):
        if k > 0:
            half = 1 << (k - 1)
            table = ufunc(table[:-half], table[half:])
        sel = np.flatnonzero(level == k)
        if len(sel):
            out[sel] = ufunc(table[lo1[sel]], table[hi1[sel] - (1 << k)])
    return out.reshape(shape)


# --- quantiles over windows --------------------------------------------------


def window_rows(
    x: F64, lo: I64, n: I64, max_elems: int = 1 << 18
) -> Iterator[tuple[NDArray[np.intp], F64, I64]]:
    """Yield (selection, rows, NaN counts) for chunks of non-empty windows.

    Windows are grouped by length, so each chunk is a plain `[rows x n]`
    matrix copied from a sliding-window view of the samples (no padding).
    NaNs are replaced by -Inf and counted: Prometheus orders NaN below every
    number, so after sorting, the first `nan_count` positions of a row are
    its NaNs.
    """
    sel_all = np.flatnonzero(n > 0)
    if not len(sel_all):
        return
    has_nan = bool(np.isnan(x).any())
    order = sel_all[np.argsort(n[sel_all], kind="stable")]
    lengths = n[order]
    cuts = np.flatnonzero(lengths[1:] != lengths[:-1]) + 1
    bounds = [0, *cuts.tolist(), len(order)]
    for g0, g1 in itertools.pairwise(bounds):
        width = int(lengths[g0])
        view = np.lib.stride_tricks.sliding_window_view(x, width)
        rows = max(1, max_elems // width)
        for start in range(g0, g1, rows):
            sel = order[start : min(g1, start + rows)]
            mat = view[lo[sel]]
            if has_nan:
                nan_mask = np.isnan(mat)
                nan_count = nan_mask.sum(axis=1)
                mat[nan_mask] = -np.inf
            else:
                nan_count = np.zeros(len(sel), dtype=np.int64)
            yield sel, mat, nan_count


def rank_weights(q: float, width: int) -> tuple[int, int, float]:
    """Prometheus `quantile`: the two ranks around q*(n-1) and the upper one's weight."""
    rank = q * (width - 1)
    lower = max(0, int(np.floor(rank)))
    upper = min(width - 1, lower + 1)
    return lower, upper, rank - np.floor(rank)


def select_quantile(mat: F64, nan_count: I64, q: float) -> F64:
    """The q-quantile of each row (NaNs counted as smallest), by partial selection."""
    width = mat.shape[1]
    if np.isnan(q):
        return np.full(len(mat), np.nan)
    if q < 0 or q > 1:
        return np.full(len(mat), -np.inf if q < 0 else np.inf)
    lower, upper, weight = rank_weights(q, width)
    mat.partition(sorted({lower, upper}), axis=1)
    lo_v = mat[:, lower]
    up_v = mat[:, upper]
    if nan_count.any():
        lo_v = np.where(lower < nan_count, np.nan, lo_v)
        up_v = np.where(upper < nan_count, np.nan, up_v)
    return lo_v * (1 - weight) + up_v * weight


def sort_rows(mat: F64, nan_count: I64) -> F64:
    """Sort rows in place, NaNs (stored as -Inf, counted) first."""
    mat.sort(axis=1)
    if nan_count.any():
        mat[np.arange(mat.shape[1])[None, :] < nan_count[:, None]] = np.nan
    return mat


def quantile_of_sorted(q: F64, mat: F64, n: I64) -> F64:
    """Prometheus `quantile` on sorted rows: linear interpolation between closest ranks."""
    with np.errstate(all="ignore"):
        nf = n.astype(np.float64)
        rank = q * (nf - 1)
        lower = np.maximum(0.0, np.floor(rank))
        upper = np.minimum(nf - 1, lower + 1)
        weight = rank - np.floor(rank)
        li = np.nan_to_num(lower, nan=0.0).astype(np.int64)
        ui = np.nan_to_num(upper, nan=0.0).astype(np.int64)
        li = np.clip(li, 0, mat.shape[1] - 1)
        ui = np.clip(ui, 0, mat.shape[1] - 1)
        rows = np.arange(len(n))
        res = mat[rows, li] * (1 - weight) + mat[rows, ui] * weight
        res = np.where(np.isnan(q), np.nan, res)
        res = np.where(q < 0, -np.inf, res)
        res = np.where(q > 1, np.inf, res)
    return res
