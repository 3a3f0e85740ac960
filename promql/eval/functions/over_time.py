"""Aggregations over time: `<aggr>_over_time(range-vector)`.

Sums and means come from compensated prefix sums, falling back per window
to Prometheus's own Kahan loop where the fast path could differ from it
(non-finite values, possible overflow, catastrophic cancellation). min/max
use a sparse table over the block's samples; quantiles sort the windows'
rows. `last_over_time` and `first_over_time` keep `__name__`, every other
function here drops it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from promql.eval.functions.common import (
    BOOL,
    F64,
    make_vector,
    range_arg,
    scalar_arg,
    warn_invalid_quantiles,
)
from promql.eval.functions.registry import FunctionContext, register
from promql.eval.functions.windows import (
    Block,
    CompensatedPrefix,
    map_blocks,
    padded,
    padded_int,
    plain_prefix,
    quantile_of_sorted,
    scan_avg,
    scan_compare,
    scan_sum,
    scan_variance,
    second_order_floor,
    window_extreme,
    window_sorted_rows,
)
from promql.value import EvalValue, StepRange, StepVector

_COND_LIMIT = 1e12
"""Windows whose |sum| is this many times smaller than their sum of |x| replay the exact loop."""
_OVERFLOW_RISK = 1e300


def _result(
    ctx: FunctionContext, rng: StepRange, values: F64, present: BOOL, *, keep_name: bool = False
) -> StepVector:
    return make_vector(
        ctx, rng.labels, values, present, drop_name=not keep_name, in_drop=rng.drop_name
    )


def _nonfinite_windows(blk: Block, finite: BOOL) -> BOOL:
    bad = padded_int(plain_prefix((~finite).astype(np.int64)))
    return (bad[blk.hi] - bad[blk.lo]) > 0


def _window_sums(blk: Block) -> tuple[F64, BOOL]:
    """Fast window sums and the windows that must replay Prometheus's Kahan loop."""
    x = blk.x
    lo, hi = blk.lo, blk.hi
    finite = np.isfinite(x)
    all_finite = bool(finite.all())
    xf = x if all_finite else np.where(finite, x, 0.0)
    prefix = CompensatedPrefix(xf)
    sums = prefix.window(lo, hi)
    if not len(x):
        return sums, np.zeros(lo.shape, dtype=np.bool_)
    abs_sum = np.abs(sums)
    lo_x = float(xf.min())
    hi_x = float(xf.max())
    if lo_x >= 0 or hi_x <= 0:
        # one sign only: no cancellation, the window's |sum| is its sum of |x|
        total = max(abs(lo_x), abs(hi_x)) * len(x)
        window_abs = abs_sum
    else:
        pa = plain_prefix(np.abs(xf))
        total = float(pa[-1])
        window_abs = pa[hi] - pa[lo]
    fallback = abs_sum * _COND_LIMIT < window_abs
    floor = second_order_floor(total, len(x))
    if floor > 0:
        fallback |= (abs_sum < floor) & (window_abs > 0)
    if total >= _OVERFLOW_RISK or not np.isfinite(total):
        fallback |= window_abs >= _OVERFLOW_RISK
        fallback |= ~np.isfinite(sums)
    if not all_finite:
        fallback |= _nonfinite_windows(blk, finite)
    fallback &= blk.n > 0
    return sums, fallback


@register("sum_over_time")
def sum_over_time(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)

    def block(blk: Block) -> tuple[F64, BOOL]:
        sums, fallback = _window_sums(blk)
        if fallback.any():
            sums[fallback] = scan_sum(blk.x, blk.lo[fallback], blk.n[fallback])
        return sums, blk.n > 0

    return _result(ctx, rng, *map_blocks(rng, block))


@register("avg_over_time")
def avg_over_time(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)

    def block(blk: Block) -> tuple[F64, BOOL]:
        sums, fallback = _window_sums(blk)
        avg = sums / blk.n
        if fallback.any():
            avg[fallback] = scan_avg(blk.x, blk.lo[fallback], blk.n[fallback])
        return avg, blk.n > 0

    return _result(ctx, rng, *map_blocks(rng, block))


@register("count_over_time")
def count_over_time(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)
    n = rng.hi - rng.lo
    return _result(ctx, rng, n.astype(np.float64), n > 0)


@register("present_over_time")
def present_over_time(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)
    n = rng.hi - rng.lo
    return _result(ctx, rng, np.ones(n.shape), n > 0)


def _pick(rng: StepRange, which: str) -> tuple[F64, BOOL]:
    n = rng.hi - rng.lo
    if which.startswith("ts_"):
        src = padded(rng.timestamps.astype(np.float64) / 1000.0)
    else:
        src = padded(rng.values)
    idx = rng.lo if which.endswith("first") else rng.hi - 1
    return src[idx], n > 0


@register("last_over_time")
def last_over_time(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)
    return _result(ctx, rng, *_pick(rng, "last"), keep_name=True)


@register("first_over_time")
def first_over_time(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)
    return _result(ctx, rng, *_pick(rng, "first"), keep_name=True)


@register("ts_of_last_over_time")
def ts_of_last_over_time(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)
    return _result(ctx, rng, *_pick(rng, "ts_last"))


@register("ts_of_first_over_time")
def ts_of_first_over_time(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)
    return _result(ctx, rng, *_pick(rng, "ts_first"))


def _extreme(rng: StepRange, ufunc: np.ufunc) -> tuple[F64, BOOL]:
    def block(blk: Block) -> tuple[F64, BOOL]:
        return window_extreme(blk.x, blk.lo, blk.hi, ufunc), blk.n > 0

    return map_blocks(rng, block)


@register("max_over_time")
def max_over_time(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    # Prometheus keeps the first value unless a later one is larger, and
    # replaces NaN by any later value: exactly fmax (NaN only if all are NaN).
    rng = range_arg(args, 0)
    return _result(ctx, rng, *_extreme(rng, np.fmax))


@register("min_over_time")
def min_over_time(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)
    return _result(ctx, rng, *_extreme(rng, np.fmin))


def _ts_of_extreme(rng: StepRange, better: Callable[[F64, F64], BOOL]) -> tuple[F64, BOOL]:
    def block(blk: Block) -> tuple[F64, BOOL]:
        out = np.full(blk.n.shape, np.nan)
        sel = blk.n > 0
        if sel.any():
            _, where = scan_compare(blk.x, blk.lo[sel], blk.n[sel], better)
            out[sel] = blk.t[where].astype(np.float64) / 1000.0
        return out, sel

    return map_blocks(rng, block)


@register("ts_of_max_over_time")
def ts_of_max_over_time(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    # The last sample holding the maximum (Prometheus compares with >=).
    rng = range_arg(args, 0)
    return _result(ctx, rng, *_ts_of_extreme(rng, np.greater_equal))


@register("ts_of_min_over_time")
def ts_of_min_over_time(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)
    return _result(ctx, rng, *_ts_of_extreme(rng, np.less_equal))


# --- variance ------------------------------------------------------------------


def _variance(rng: StepRange) -> tuple[F64, BOOL]:
    """Population variance per window (Prometheus's Welford result, within rounding)."""

    def block(blk: Block) -> tuple[F64, BOOL]:
        x = blk.x
        lo, hi, n = blk.lo, blk.hi, blk.n
        ok = n > 0
        if not len(x):
            return np.full(n.shape, np.nan), ok
        offsets = rng.offsets[blk.s0 : blk.s1 + 1] - blk.a
        lengths = np.diff(offsets)
        finite = np.isfinite(x)
        all_finite = bool(finite.all())
        xf = x if all_finite else np.where(finite, x, 0.0)
        # shift each series by its first value: variance is shift-invariant and
        # the moments of the shifted values cancel far less
        firsts = np.where(lengths > 0, padded(xf)[np.minimum(offsets[:-1], len(x))], 0.0)
        y = xf - np.repeat(firsts, lengths)
        s1 = CompensatedPrefix(y).window(lo, hi)
        s2 = CompensatedPrefix(y * y).window(lo, hi)
        nf = n.astype(np.float64)
        m2 = s2 - s1 * s1 / nf
        var = m2 / nf
        total = float(np.sum(y * y))
        fallback = ok & ((m2 < 1e-10 * s2) | (m2 < 0))
        floor = second_order_floor(total, len(x))
        if floor > 0:
            fallback |= ok & (s2 < floor) & (s2 > 0)
        if not all_finite or not np.isfinite(total) or total >= 1e300:
            fallback |= ok & ~np.isfinite(var)
            if not all_finite:
                fallback |= ok & _nonfinite_windows(blk, finite)
        # exactly constant windows are 0 on both paths; skip the replay for them
        zero = ok & (s2 == 0) & (s1 == 0)
        fallback &= ~zero
        var[zero] = 0.0
        if fallback.any():
            var[fallback] = scan_variance(x, lo[fallback], n[fallback])
        return var, ok

    return map_blocks(rng, block)


@register("stdvar_over_time")
def stdvar_over_time(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)
    return _result(ctx, rng, *_variance(rng))


@register("stddev_over_time")
def stddev_over_time(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)
    var, present = _variance(rng)
    with np.errstate(all="ignore"):
        return _result(ctx, rng, np.sqrt(var), present)


# --- quantiles ---------------------------------------------------------------------


def _per_window_q(q: F64, shape: tuple[int, ...]) -> F64:
    return np.broadcast_to(q[None, :], shape)


def _quantiles(rng: StepRange, q: F64, mad: bool) -> tuple[F64, BOOL]:
    def block(blk: Block) -> tuple[F64, BOOL]:
        n1 = blk.n.ravel()
        lo1 = blk.lo.ravel()
        q1 = _per_window_q(q, blk.n.shape).ravel()
        out = np.full(len(n1), np.nan)
        for sel, mat, nan_count in window_sorted_rows(blk.x, lo1, n1):
            nsel = n1[sel]
            if not mad:
                out[sel] = quantile_of_sorted(q1[sel], mat, nsel)
                continue
            # median absolute deviation: the median of |x - median|; a NaN
            # sample makes the result NaN (as the Prometheus 3 test data has it)
            half = np.full(len(sel), 0.5)
            median = quantile_of_sorted(half, mat, nsel)
            dev = np.abs(mat - median[:, None])
            cols = np.arange(mat.shape[1])
            dev[cols[None, :] >= nsel[:, None]] = np.inf
            dev.sort(axis=1)
            res = quantile_of_sorted(half, dev, nsel)
            res[nan_count > 0] = np.nan
            out[sel] = res
        return out.reshape(blk.n.shape), blk.n > 0

    return map_blocks(rng, block)


@register("quantile_over_time")
def quantile_over_time(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 1)
    q = scalar_arg(args, 0, rng.lo.shape[1])
    values, present = _quantiles(rng, q, mad=False)
    # Prometheus warns only at steps where some series has samples.
    steps_with_data = present.any(axis=0)
    warn_invalid_quantiles(ctx, q[steps_with_data], 0)
    return _result(ctx, rng, values, present)


@register("mad_over_time")
def mad_over_time(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)
    return _result(ctx, rng, *_quantiles(rng, np.full(rng.lo.shape[1], 0.5), mad=True))
