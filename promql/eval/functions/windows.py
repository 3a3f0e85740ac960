"""Vectorized primitives over the windows of a `StepRange`.

A range-vector function sees, for every (series, step), the samples with
flat indices `[lo, hi)`. Everything here works on all windows at once:

- `iter_blocks` cuts the series into blocks of about 64k samples and 64k
  windows, so every temporary array stays in cache and prefix sums stay
  local to a block (their magnitude, and so their rounding, is that of the
  block's data, not of the whole query).
- `CompensatedPrefix` gives window sums from prefix sums carrying their own
  rounding errors (TwoSum per step, an error-free transformation), so a
  window sum is accurate to a few ulps of the *window's* magnitude.
- `scan_*` functions replay Prometheus's sequential per-window loops (Kahan
  sums, the avg overflow switch, Welford variance, regression sums) over a
  selection of windows, one vectorized operation per sample position. They
  are the exact fallback for windows the fast paths cannot serve faithfully
  (non-finite values, overflow, catastrophic cancellation).
- `window_extreme` (sparse table / reduceat) and `window_quantiles`
  (sorted window rows) serve min/max and quantiles.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import numpy as np
from numpy.typing import NDArray

from promql.value import StepRange

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
BOOL = NDArray[np.bool_]

BLOCK_TARGET = 1 << 16
"""Samples and windows per block: keeps temporaries within L2 cache."""

U = 2.0**-53
"""Unit roundoff of float64."""


class Block:
    """Series rows `[s0, s1)` of a StepRange and their flat samples `[a, b)`.

    `abs_lo`, `abs_hi` are the windows as absolute flat indices (views, no
    copy); `lo`, `hi` the same as block-local indices into `x` / `t`
    (`0 <= lo <= hi <= b - a`), computed on first use; `n = hi - lo`.
    """

    __slots__ = ("_hi", "_lo", "a", "abs_hi", "abs_lo", "b", "n", "s0", "s1", "t", "x")

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


def iter_blocks(rng: StepRange, target: int = BLOCK_TARGET) -> Iterator[Block]:
    """Blocks of whole series, each with about `target` samples and windows."""
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


def map_blocks(rng: StepRange, fn: Callable[[Block], tuple[F64, BOOL]]) -> tuple[F64, BOOL]:
    """Run `fn` over every block; returns the `[series x steps]` values and presence."""
    shape = rng.lo.shape
    values = np.empty(shape)
    present = np.empty(shape, dtype=np.bool_)
    with np.errstate(all="ignore"):
        for blk in iter_blocks(rng):
            vals, pres = fn(blk)
            values[blk.s0 : blk.s1] = vals
            present[blk.s0 : blk.s1] = pres
    return values, present


def gather(arr: NDArray[np.generic], idx: I64) -> NDArray[np.generic]:
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


def padded_int(x: I64) -> I64:
    out = np.empty(len(x) + 1, dtype=x.dtype)
    out[:-1] = x
    out[-1] = 0
    return out


# --- prefix sums -----------------------------------------------------------


class CompensatedPrefix:
    """Prefix sums of a finite array plus the exact rounding error of each step.

    `P[k] + E[k]` is `sum(x[:k])` to second order: each cumsum step's
    rounding error is recovered exactly with Knuth's TwoSum from the prefix
    values themselves. The errors are tiny next to the prefix, so they are
    summed in int64 fixed point (numpy's integer cumsum is several times
    faster than its float one) at a resolution far below their own size;
    when no step rounded at all (integer data, say), there is nothing to add.
    """

    __slots__ = ("E", "P", "scale")

    def __init__(self, x: F64) -> None:
        n = len(x)
        p = np.empty(n + 1)
        p[0] = 0.0
        np.cumsum(x, out=p[1:])
        prev = p[:-1]
        cur = p[1:]
        bb = cur - prev
        err = cur - bb
        np.subtract(prev, err, out=err)
        np.subtract(x, bb, out=bb)
        err += bb
        self.P = p
        self.E: I64 | None = None
        self.scale = 1.0
        biggest = float(np.abs(err).max()) if n else 0.0
        if biggest == 0.0 or not np.isfinite(biggest):
            return
        # fixed point: the sum of all |err| stays below 2**62
        shift = 62 - int(np.ceil(np.log2(biggest * (n + 1))))
        np.multiply(err, 2.0**shift, out=err)
        np.rint(err, out=err)
        e = np.empty(n + 1, dtype=np.int64)
        e[0] = 0
        np.cumsum(err.astype(np.int64), out=e[1:])
        self.E = e
        self.scale = 2.0**-shift

    def window(self, lo: I64, hi: I64) -> F64:
        s = np.take(self.P, hi)
        s -= np.take(self.P, lo)
        if self.E is not None:
            c = np.take(self.E, hi)
            c -= np.take(self.E, lo)
            s += c * self.scale
        return s


def plain_prefix(x: NDArray[np.generic]) -> NDArray[np.generic]:
    """`[0, x0, x0+x1, ...]` (exact for integer dtypes)."""
    out = np.empty(len(x) + 1, dtype=x.dtype)
    out[0] = 0
    np.cumsum(x, out=out[1:])
    return out


def second_order_floor(total_abs: float, nsamples: int) -> float:
    """Window sums below this magnitude may carry more than ~1e-13 relative error.

    The error of the compensated prefix is bounded by roughly
    `u^2 * n^2 * sum|x|` (the plain cumsum of the rounding errors); windows
    far smaller than their block's total need the exact scan instead.
    """
    return U * U * float(nsamples) * float(nsamples) * total_abs * 1e13


COND_LIMIT = 1e12
"""Windows whose |sum| is this many times smaller than their sum of |x| replay the exact loop."""
OVERFLOW_RISK = 1e300


def nonfinite_windows(x: F64, lo: I64, hi: I64) -> BOOL:
    """Windows holding a NaN or ±Inf."""
    bad = padded_int(plain_prefix((~np.isfinite(x)).astype(np.int64)))
    return (bad[hi] - bad[lo]) > 0


def checked_window_sums(x: F64, lo: I64, hi: I64, n: I64) -> tuple[F64, BOOL]:
    """Fast window sums of `x[lo:hi]`, and the windows they may not serve faithfully.

    Flagged windows (to replay with an exact sequential loop): a NaN or
    ±Inf inside; a sum of |x| that could overflow; heavy cancellation (|sum|
    over 1e12 times smaller than the sum of |x|, where even Prometheus's
    Kahan sum is inexact and only the same loop gives the same answer); and
    non-zero windows so small next to the block's largest values that the
    compensated prefix's second-order error could show.
    """
    finite = np.isfinite(x)
    all_finite = bool(finite.all())
    xf = x if all_finite else np.where(finite, x, 0.0)
    sums = CompensatedPrefix(xf).window(lo, hi)
    if not len(x):
        return sums, np.zeros(lo.shape, dtype=np.bool_)
    abs_sum = np.abs(sums)
    lo_x = float(xf.min())
    hi_x = float(xf.max())
    if lo_x >= 0 or hi_x <= 0:
        # one sign only: no cancellation, the window's |sum| is its sum of |x|
        total = max(abs(lo_x), abs(hi_x)) * len(x)
        window_abs = abs_sum
        fallback = np.zeros(abs_sum.shape, dtype=np.bool_)
    else:
        absx = np.abs(xf)
        total = float(absx.sum())
        window_abs = CompensatedPrefix(absx).window(lo, hi)
        fallback = abs_sum * COND_LIMIT < window_abs
    floor = second_order_floor(total, len(x))
    small = abs_sum < floor
    if small.any():
        nonzero = padded_int(plain_prefix((xf != 0).astype(np.int64)))
        small &= (nonzero[hi] - nonzero[lo]) > 0  # exactly-zero windows are exact
        fallback |= small
    if total >= OVERFLOW_RISK or not np.isfinite(total):
        fallback |= window_abs >= OVERFLOW_RISK
        fallback |= ~np.isfinite(sums)
    if not all_finite:
        fallback |= nonfinite_windows(x, lo, hi)
    fallback &= n > 0
    return sums, fallback


# --- Kahan (Neumaier) summation, vectorized ---------------------------------


def kahan_inc(inc: F64, s: F64, c: F64) -> tuple[F64, F64]:
    """Prometheus `kahansum.Inc` on arrays: returns the new (sum, compensation)."""
    t = s + inc
    big = np.abs(s) >= np.abs(inc)
    comp = np.where(big, (s - t) + inc, (inc - t) + s)
    comp += c
    comp[np.isinf(t)] = 0.0
    return t, comp


class _Scan:
    """Iterate the sample positions of selected windows, longest windows first.

    At position k only windows with more than k samples are active; sorting
    windows by length makes them a prefix `[:m]` of the state arrays.
    """

    def __init__(self, lo: I64, n: I64) -> None:
        self.order = np.argsort(-n, kind="stable")
        self.lo = lo[self.order]
        self.n = n[self.order]
        self.size = len(n)
        self.kmax = int(self.n[0]) if len(n) else 0
        self.active = np.searchsorted(-self.n, -np.arange(self.kmax), side="left")

    def positions(self) -> Iterator[tuple[int, int, I64]]:
        for k in range(self.kmax):
            m = int(self.active[k])
            yield k, m, self.lo[:m] + k

    def unsort(self, sorted_values: F64) -> F64:
        out = np.empty_like(sorted_values)
        out[self.order] = sorted_values
        return out


def scan_sum(x: F64, lo: I64, n: I64) -> F64:
    """sum_over_time exactly as Prometheus: Kahan-Neumaier, then sum + c unless sum is ±Inf."""
    sc = _Scan(lo, n)
    s = np.zeros(sc.size)
    c = np.zeros(sc.size)
    with np.errstate(all="ignore"):
        for _, m, pos in sc.positions():
            s[:m], c[:m] = kahan_inc(x[pos], s[:m], c[:m])
        res = np.where(np.isinf(s), s, s + c)
    return sc.unsort(res)


def scan_avg(x: F64, lo: I64, n: I64) -> F64:
    """avg_over_time exactly as Prometheus: direct Kahan mean, incremental mean after overflow."""
    sc = _Scan(lo, n)
    size = sc.size
    s = np.zeros(size)
    c = np.zeros(size)
    mean = np.zeros(size)
    incr = np.zeros(size, dtype=np.bool_)
    with np.errstate(all="ignore"):
        for k, m, pos in sc.positions():
            v = x[pos]
            if k == 0:
                s[:m] = v
                continue
            count = float(k + 1)
            si, ci, mi, ii = s[:m], c[:m], mean[:m], incr[:m]
            ns, nc = kahan_inc(v, si, ci)
            direct_ok = ~ii & ~np.isinf(ns)
            switch = ~ii & ~direct_ok
            si[direct_ok] = ns[direct_ok]
            ci[direct_ok] = nc[direct_ok]
            if switch.any():
                mi[switch] = si[switch] / (count - 1)
                ci[switch] = ci[switch] / (count - 1)
                ii[switch] = True
            upd = ii
            if upd.any():
                q = (count - 1) / count
                nm, nc2 = kahan_inc(v[upd] / count, q * mi[upd], q * ci[upd])
                mi[upd] = nm
                ci[upd] = nc2
        cnt = sc.n.astype(np.float64)
        res = np.where(incr, mean + c, s / cnt + c / cnt)
    return sc.unsort(res)


def scan_variance(x: F64, lo: I64, n: I64) -> F64:
    """stdvar_over_time exactly as Prometheus: Welford with Kahan-compensated mean and aux."""
    sc = _Scan(lo, n)
    size = sc.size
    mean = np.zeros(size)
    cmean = np.zeros(size)
    aux = np.zeros(size)
    caux = np.zeros(size)
    with np.errstate(all="ignore"):
        for k, m, pos in sc.positions():
            v = x[pos]
            count = float(k + 1)
            delta = v - (mean[:m] + cmean[:m])
            mean[:m], cmean[:m] = kahan_inc(delta / count, mean[:m], cmean[:m])
            aux[:m], caux[:m] = kahan_inc(delta * (v - (mean[:m] + cmean[:m])), aux[:m], caux[:m])
        res = (aux + caux) / sc.n.astype(np.float64)
    return sc.unsort(res)


def scan_regression(x: F64, t: I64, lo: I64, n: I64, intercept_ms: I64) -> tuple[F64, F64]:
    """Prometheus `linearRegression` per window: (slope, intercept at `intercept_ms`)."""
    sc = _Scan(lo, n)
    size = sc.size
    t0 = intercept_ms[sc.order]
    sums = [np.zeros(size) for _ in range(8)]  # sumX,cX,sumY,cY,sumXY,cXY,sumX2,cX2
    init_y = np.zeros(size)
    const_y = np.ones(size, dtype=np.bool_)
    with np.errstate(all="ignore"):
        for k, m, pos in sc.positions():
            y = x[pos]
            if k == 0:
                init_y[:m] = y
            else:
                const_y[:m] &= ~(y != init_y[:m])
            xv = (t[pos] - t0[:m]).astype(np.float64) / 1e3
            for j, inc in enumerate((xv, y, xv * y, xv * xv)):
                sums[2 * j][:m], sums[2 * j + 1][:m] = kahan_inc(
                    inc, sums[2 * j][:m], sums[2 * j + 1][:m]
                )
        cnt = sc.n.astype(np.float64)
        sum_x = sums[0] + sums[1]
        sum_y = sums[2] + sums[3]
        sum_xy = sums[4] + sums[5]
        sum_x2 = sums[6] + sums[7]
        cov = sum_xy - sum_x * sum_y / cnt
        var = sum_x2 - sum_x * sum_x / cnt
        slope = cov / var
        intercept = sum_y / cnt - slope * sum_x / cnt
        inf_y = np.isinf(init_y)
        slope = np.where(const_y, np.where(inf_y, np.nan, 0.0), slope)
        intercept = np.where(const_y, np.where(inf_y, np.nan, init_y), intercept)
    return sc.unsort(slope), sc.unsort(intercept)


def scan_compare(x: F64, lo: I64, n: I64, better: Callable[[F64, F64], BOOL]) -> tuple[F64, I64]:
    """Prometheus `compareOverTime`: (best value, flat index of the sample chosen)."""
    sc = _Scan(lo, n)
    best = np.zeros(sc.size)
    where = sc.lo.copy()
    with np.errstate(all="ignore"):
        for k, m, pos in sc.positions():
            v = x[pos]
            if k == 0:
                best[:m] = v
                continue
            take = better(v, best[:m]) | np.isnan(best[:m])
            best[:m] = np.where(take, v, best[:m])
            where[:m] = np.where(take, pos, where[:m])
    out_idx = np.empty_like(where)
    out_idx[sc.order] = where
    return sc.unsort(best), out_idx


def scan_generic(
    x: F64, lo: I64, n: I64, init: Callable[[F64], list[F64]], step: Callable[..., list[F64]]
) -> tuple[list[F64], _Scan]:
    """Run a custom sequential recurrence; returns the final state in sorted window order."""
    sc = _Scan(lo, n)
    state: list[F64] = []
    with np.errstate(all="ignore"):
        for k, m, pos in sc.positions():
            v = x[pos]
            if k == 0:
                state = init(v)
                continue
            new = step(k, v, [s[:m] for s in state])
            for s, ns in zip(state, new, strict=True):
                s[:m] = ns
    return state, sc


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
