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
from promql.eval.functions.prefix import (
    checked_window_sums,
    nonfinite_windows,
)
from promql.eval.functions.registry import FunctionContext, register
from promql.eval.functions.scans import (
    scan_avg,
    scan_compare,
    scan_sum,
    scan_variance,
)
from promql.eval.functions.windows import (
    Block,
    gather,
    map_blocks,
    padded,
    quantile_of_sorted,
    select_quantile,
    sort_rows,
    window_extreme,
    window_rows,
)
from promql.value import EvalValue, StepRange, StepVector


def _result(
    ctx: FunctionContext, rng: StepRange, values: F64, present: BOOL, *, keep_name: bool = False
) -> StepVector:
    return make_vector(
        ctx, rng.labels, values, present, drop_name=not keep_name, in_drop=rng.drop_name
    )


@register("sum_over_time")
def sum_over_time(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)

    def block(blk: Block) -> tuple[F64, BOOL]:
        sums, fallback = checked_window_sums(blk.x, blk.lo, blk.hi, blk.n)
        if fallback.any():
            sums[fallback] = scan_sum(blk.x, blk.lo[fallback], blk.n[fallback])
        return sums, blk.n > 0

    return _result(ctx, rng, *map_blocks(rng, block))


@register("avg_over_time")
def avg_over_time(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)

    def block(blk: Block) -> tuple[F64, BOOL]:
        sums, fallback = checked_window_sums(blk.x, blk.lo, blk.hi, blk.n)
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
    """The first or last sample of each window (its value, or its time in seconds)."""
    n = rng.hi - rng.lo
    idx = rng.lo if which.endswith("first") else rng.hi - 1
    if which.startswith("ts_"):
        return gather(rng.timestamps, idx) / 1000.0, n > 0
    return gather(rng.values, idx), n > 0


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
        s1, shaky1 = checked_window_sums(y, lo, hi, n)
        s2, shaky2 = checked_window_sums(y * y, lo, hi, n)
        nf = n.astype(np.float64)
        m2 = s2 - s1 * s1 / nf
        var = m2 / nf
        # replay Welford where the moments cancel badly, are unreliable or non-finite
        fallback = ok & (shaky1 | shaky2 | (m2 < 1e-10 * s2) | (m2 < 0))
        if not all_finite:
            fallback |= ok & nonfinite_windows(x, lo, hi)
        # all values equal to the series' first one: exactly 0 on both paths
        zero = ok & ~fallback & (s2 == 0)
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
    """quantile_over_time (or, with `mad`, mad_over_time) for every window.

    With the same φ at every step (the usual case) each row needs only a
    partial selection of two ranks; a φ that varies by step sorts the rows.
    """
    constant_q = bool(len(q) == 0 or (q == q[0]).all() or np.isnan(q).all())

    def block(blk: Block) -> tuple[F64, BOOL]:
        n1 = blk.n.ravel()
        lo1 = blk.lo.ravel()
        out = np.full(len(n1), np.nan)
        q1 = None if constant_q else _per_window_q(q, blk.n.shape).ravel()
        for sel, mat, nan_count in window_rows(blk.x, lo1, n1):
            if mad:
                # median absolute deviation: the median of |x - median|; a NaN
                # sample makes the result NaN (as the Prometheus 3 test data has it)
                median = select_quantile(mat, nan_count, 0.5)
                dev = np.abs(mat - median[:, None])
                res = select_quantile(dev, np.zeros_like(nan_count), 0.5)
                res[nan_count > 0] = np.nan
                out[sel] = res
            elif q1 is None:
                out[sel] = select_quantile(mat, nan_count, float(q[0]))
            else:
                out[sel] = quantile_of_sorted(q1[sel], sort_rows(mat, nan_count), n1[sel])
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
