"""Counter and gauge change functions: rate, increase, delta, irate, idelta,
deriv, predict_linear, resets, changes.

`rate`/`increase`/`delta` follow Prometheus's `extrapolatedRate`: the change
between the first and last sample in the window (plus, for counters, every
value lost at a reset), extrapolated towards the window edges by at most
half an average sample interval unless a sample lies within 1.1 average
intervals of the edge, and, for counters, never below zero. All windows are
computed at once per block; counter resets enter as a prefix sum of "value
before each reset".

`deriv`/`predict_linear` are least-squares fits. The time moments of each
window are exact (int64 prefix sums of millisecond offsets), the value
moments come from compensated prefix sums; windows with non-finite values
or too large time moments replay Prometheus's Kahan loop instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from promql import ast
from promql.eval.functions.common import (
    BOOL,
    F64,
    I64,
    add_info,
    make_vector,
    range_arg,
    scalar_arg,
)
from promql.eval.functions.prefix import (
    checked_window_sums,
    padded_int,
    plain_prefix,
)
from promql.eval.functions.registry import FunctionContext, register
from promql.eval.functions.scans import (
    scan_regression,
)
from promql.eval.functions.windows import (
    Block,
    gather,
    map_blocks,
    series_starts,
)
from promql.value import EvalValue, StepRange, StepVector
from storage.labels import METRIC_NAME, Labels, MatchType

_COUNTER_SUFFIXES = ("_total", "_sum", "_count", "_bucket")


def _pair_indicator(blk: Block, offsets: I64, pairs: BOOL) -> BOOL:
    """`pairs[i]` describes samples (i, i+1); clear pairs that straddle two series."""
    starts = series_starts(blk, offsets)
    if len(starts):
        pairs[starts - 1] = False
    return pairs


def _add_reset_values(result: F64, blk: Block, offsets: I64) -> None:
    """Add, in sample order, the value before each counter reset inside each window.

    Like Prometheus, one addition per reset onto `last - first` (the order
    matters when values differ wildly in magnitude). Resets are rare, so the
    loop runs over the most resets any window holds, each step vectorized.
    """
    x = blk.x
    if len(x) < 2:
        return
    pairs = _pair_indicator(blk, offsets, x[1:] < x[:-1])
    if not pairs.any():
        return
    at = np.flatnonzero(pairs) + 1  # sample index of the value after each reset
    before = x[at - 1]
    first = np.searchsorted(at, blk.lo + 1)
    count = np.searchsorted(at, blk.hi) - first
    count[blk.n < 2] = 0
    for k in range(int(count.max())):
        more = count > k
        result[more] += before[first[more] + k]


def _extrapolated(rng: StepRange, *, is_counter: bool, is_rate: bool) -> tuple[F64, BOOL]:
    """Prometheus `extrapolatedRate` for every window (the float arithmetic in Go's order)."""
    range_end = rng.window_end.astype(np.float64)
    range_start = range_end - float(rng.range_ms)
    range_s = rng.range_ms / 1000.0
    values = rng.values
    # ms timestamps are exact in float64; one conversion serves all windows
    times = rng.timestamps.astype(np.float64)

    def block(blk: Block) -> None:
        lo, n = blk.abs_lo, blk.n
        last = blk.abs_hi - 1
        first_v = gather(values, lo)
        result = gather(values, last)
        result -= first_v
        if is_counter:
            _add_reset_values(result, blk, rng.offsets)
        first_t = gather(times, lo)
        last_t = gather(times, last)
        sampled = last_t - first_t
        to_start = np.subtract(first_t, range_start, out=first_t)
        to_end = np.subtract(range_end, last_t, out=last_t)
        to_start /= 1000.0
        to_end /= 1000.0
        sampled /= 1000.0
        avg = np.subtract(n, 1, dtype=np.float64)
        np.divide(sampled, avg, out=avg)
        threshold = avg * 1.1
        half = np.multiply(avg, 0.5, out=avg)
        np.copyto(to_start, half, where=to_start >= threshold)
        if is_counter:
            # never extrapolate below zero: stop at the counter's zero point
            to_zero = np.divide(first_v, result)
            to_zero *= sampled
            use_zero = to_zero < to_start
            use_zero &= result > 0
            use_zero &= first_v >= 0
            np.copyto(to_start, to_zero, where=use_zero)
        np.copyto(to_end, half, where=to_end >= threshold)
        factor = np.add(sampled, to_start, out=to_start)
        factor += to_end
        factor /= sampled
        if is_rate:
            factor /= range_s
        np.multiply(result, factor, out=blk.out)
        np.greater_equal(n, 2, out=blk.out_present)

    return map_blocks(rng, block)


def _selector_metric_name(ctx: FunctionContext) -> str | None:
    """The metric name every series of argument 0 has, when its selector fixes it."""
    expr = ctx.arg_exprs[0] if ctx.arg_exprs else None
    while isinstance(expr, ast.ParenExpr):
        expr = expr.expr
    if not isinstance(expr, ast.MatrixSelector):
        return None
    for m in expr.selector.matchers:
        if m.name == METRIC_NAME and m.type is MatchType.EQ:
            return m.value
    return None


def _name_of(lbl: Labels) -> str:
    # `__name__` sorts first unless a label name starts with an uppercase letter
    first = lbl[0] if lbl else None
    return first[1] if first is not None and first[0] == METRIC_NAME else lbl.metric_name


def _non_counter_info(ctx: FunctionContext, rng: StepRange, present: BOOL) -> None:
    """Prometheus's info for rate/increase over a metric not named like a counter."""
    has_output = present.any(axis=1)
    known = _selector_metric_name(ctx)
    if known is not None:
        names = {known} if has_output.any() else set()
    else:
        labels = rng.labels
        names = {_name_of(labels[i]) for i in np.flatnonzero(has_output).tolist()}
    for name in sorted(names):
        if name and not name.endswith(_COUNTER_SUFFIXES):
            add_info(
                ctx,
                "metric might not be a counter, name does not end in "
                f'_total/_sum/_count/_bucket: "{name}"',
                0,
            )


def _range_result(ctx: FunctionContext, rng: StepRange, values: F64, present: BOOL) -> StepVector:
    return make_vector(ctx, rng.labels, values, present)


@register("rate")
def rate(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)
    values, present = _extrapolated(rng, is_counter=True, is_rate=True)
    _non_counter_info(ctx, rng, present)
    return _range_result(ctx, rng, values, present)


@register("increase")
def increase(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)
    values, present = _extrapolated(rng, is_counter=True, is_rate=False)
    _non_counter_info(ctx, rng, present)
    return _range_result(ctx, rng, values, present)


@register("delta")
def delta(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)
    values, present = _extrapolated(rng, is_counter=False, is_rate=False)
    return _range_result(ctx, rng, values, present)


def _instant(rng: StepRange, *, is_rate: bool) -> tuple[F64, BOOL]:
    values = rng.values
    times = rng.timestamps

    def block(blk: Block) -> tuple[F64, BOOL]:
        last = blk.abs_hi - 1
        prev = blk.abs_hi - 2
        lv = gather(values, last)
        pv = gather(values, prev)
        interval = gather(times, last) - gather(times, prev)
        ok = (blk.n >= 2) & (interval != 0)
        if is_rate:
            # a counter reset between the two samples: the last value is the increase
            result = np.where(lv < pv, lv, lv - pv)
            result /= interval.astype(np.float64) / 1000.0
        else:
            result = lv - pv
        return result, ok

    return map_blocks(rng, block)


@register("irate")
def irate(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)
    values, present = _instant(rng, is_rate=True)
    return _range_result(ctx, rng, values, present)


@register("idelta")
def idelta(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)
    values, present = _instant(rng, is_rate=False)
    return _range_result(ctx, rng, values, present)


def _pair_counts(rng: StepRange, changed: str) -> tuple[F64, BOOL]:
    def block(blk: Block) -> tuple[F64, BOOL]:
        x = blk.x
        if len(x) >= 2:
            if changed == "resets":
                pairs = x[1:] < x[:-1]
            else:
                pairs = (x[1:] != x[:-1]) & ~(np.isnan(x[1:]) & np.isnan(x[:-1]))
            pairs = _pair_indicator(blk, rng.offsets, pairs)
            ind = np.zeros(len(x), dtype=np.int64)
            ind[1:] = pairs
        else:
            ind = np.zeros(len(x), dtype=np.int64)
        prefix = padded_int(plain_prefix(ind))
        count = prefix[blk.hi] - prefix[blk.lo + 1]
        return count.astype(np.float64), blk.n >= 1

    return map_blocks(rng, block)


@register("resets")
def resets(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)
    values, present = _pair_counts(rng, "resets")
    return _range_result(ctx, rng, values, present)


@register("changes")
def changes(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)
    values, present = _pair_counts(rng, "changes")
    return _range_result(ctx, rng, values, present)


# --- linear regression ---------------------------------------------------------

_MAX_EXACT_X2 = float(2**62)


def _regression(rng: StepRange, intercept_at: I64 | None, duration: F64 | None) -> tuple[F64, BOOL]:
    """deriv (intercept_at None: slope) or predict_linear (slope * duration + intercept)."""
    predict = intercept_at is not None
    steps_ms = None if intercept_at is None else np.asarray(intercept_at, dtype=np.int64)
    range_ms = int(rng.range_ms)
    if steps_ms is None:
        # x runs from 0 to the window's length
        span_by_step = np.full(rng.lo.shape[1], float(range_ms))
    else:
        ends = rng.window_end.astype(np.float64)
        at = steps_ms.astype(np.float64)
        span_by_step = np.maximum(np.abs(ends - at), np.abs(ends - range_ms - at))

    def block(blk: Block) -> tuple[F64, BOOL]:
        x, t = blk.x, blk.t
        lo, hi, n = blk.lo, blk.hi, blk.n
        ok = n >= 2
        if not ok.any() or not len(x):
            return np.full(n.shape, np.nan), ok
        # exact time moments, in ms relative to the block's first timestamp
        base = int(t[0])
        tau = t - base
        p_tau = padded_int(plain_prefix(tau))
        p_tau2 = padded_int(plain_prefix(tau * tau))  # wraps mod 2**64: fine, see below
        if steps_ms is None:
            tau0 = gather(tau, lo)
        else:
            tau0 = np.broadcast_to(steps_ms - base, n.shape)
        sum_tau = gather(p_tau, hi) - gather(p_tau, lo)
        sum_x = sum_tau - n * tau0
        # sum((tau - tau0)^2) in modular int64 arithmetic: exact whenever it fits
        sum_x2 = gather(p_tau2, hi) - gather(p_tau2, lo)
        sum_x2 -= 2 * tau0 * sum_tau
        sum_x2 += n * tau0 * tau0
        nf = n.astype(np.float64)
        biggest = float(n.max()) * float(span_by_step.max()) ** 2
        fits = None if biggest < _MAX_EXACT_X2 else nf * span_by_step[None, :] ** 2 < _MAX_EXACT_X2
        # values relative to each series' first sample, to keep the moments small
        lengths = np.diff(rng.offsets[blk.s0 : blk.s1 + 1])
        starts = np.minimum(rng.offsets[blk.s0 : blk.s1] - blk.a, len(x) - 1)
        firsts = np.where(lengths > 0, x[starts], 0.0)
        firsts = np.where(np.isfinite(firsts), firsts, 0.0)
        y = x - np.repeat(firsts, lengths)
        finite = np.isfinite(y)
        all_finite = bool(finite.all())
        yf = y if all_finite else np.where(finite, y, 0.0)
        sum_y, shaky = checked_window_sums(yf, lo, hi, n)
        sum_ty, shaky_ty = checked_window_sums(tau.astype(np.float64) * yf, lo, hi, n)
        shaky |= shaky_ty
        sx = sum_x.astype(np.float64) / 1e3
        sx2 = sum_x2.astype(np.float64) / 1e6
        sxy = sum_ty - tau0 * sum_y
        sxy /= 1e3
        cross = sx * sum_y / nf
        cov = sxy - cross
        var = sx2 - sx * sx / nf
        slope = cov / var
        # the covariance cancels badly (e.g. values dwarfed by the series'
        # first value): only Prometheus's own loop gives its answer there
        cancels = np.abs(cov) * 1e9 < np.abs(sxy) + np.abs(cross)
        # windows whose values do not change: slope 0, intercept the value
        ch = np.zeros(len(x), dtype=np.int64)
        if len(x) >= 2:
            ch[1:] = _pair_indicator(blk, rng.offsets, x[1:] != x[:-1])
        p_ch = padded_int(plain_prefix(ch))
        const = (gather(p_ch, hi) - gather(p_ch, lo + 1)) == 0
        slope[const] = 0.0
        intercept = None
        if predict:
            intercept = sum_y / nf - slope * sx / nf + firsts[:, None]
            np.copyto(intercept, gather(x, lo), where=const)
        shaky |= cancels & ~const
        if fits is not None:
            shaky |= ~fits
        if not all_finite:
            p_bad = padded_int(plain_prefix((~finite).astype(np.int64)))
            shaky |= (gather(p_bad, hi) - gather(p_bad, lo)) > 0
        shaky &= ok
        if shaky.any():
            rows, cols = np.nonzero(shaky)
            ref_ms = (tau0 + base)[rows, cols]
            s_slope, s_icpt = scan_regression(x, t, lo[rows, cols], n[rows, cols], ref_ms)
            slope[rows, cols] = s_slope
            if intercept is not None:
                intercept[rows, cols] = s_icpt
        if intercept is None:
            return slope, ok
        assert duration is not None, "predict_linear passes both intercept_at and duration"
        return slope * duration[None, :] + intercept, ok

    return map_blocks(rng, block)


@register("deriv")
def deriv(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)
    values, present = _regression(rng, None, None)
    return _range_result(ctx, rng, values, present)


@register("predict_linear")
def predict_linear(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)
    duration = scalar_arg(args, 1, rng.lo.shape[1])
    values, present = _regression(rng, np.asarray(ctx.steps, dtype=np.int64), duration)
    return _range_result(ctx, rng, values, present)
