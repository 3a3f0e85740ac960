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

from promql.eval.functions.common import (
    BOOL,
    F64,
    I64,
    add_info,
    make_vector,
    range_arg,
    scalar_arg,
)
from promql.eval.functions.registry import FunctionContext, register
from promql.eval.functions.windows import (
    Block,
    CompensatedPrefix,
    map_blocks,
    padded,
    padded_int,
    plain_prefix,
    scan_regression,
    series_starts,
)
from promql.value import EvalValue, StepRange, StepVector

_COUNTER_SUFFIXES = ("_total", "_sum", "_count", "_bucket")


def _pair_indicator(blk: Block, offsets: I64, pairs: BOOL) -> BOOL:
    """`pairs[i]` describes samples (i, i+1); clear pairs that straddle two series."""
    starts = series_starts(blk, offsets)
    if len(starts):
        pairs[starts - 1] = False
    return pairs


def _reset_correction(blk: Block, offsets: I64) -> F64 | None:
    """Per window, the sum of the values just before each counter reset inside it."""
    x = blk.x
    if len(x) < 2:
        return None
    resets = _pair_indicator(blk, offsets, x[1:] < x[:-1])
    if not resets.any():
        return None
    contrib = np.zeros(len(x))
    contrib[1:][resets] = x[:-1][resets]
    inf = np.isinf(contrib)
    if inf.any():
        contrib[inf] = 0.0
    prefix = padded(plain_prefix(contrib), 0.0)
    lo1 = blk.lo + 1
    corr = prefix[blk.hi] - prefix[lo1]
    if inf.any():
        ninf = padded_int(plain_prefix(inf.astype(np.int64)))
        corr[(ninf[blk.hi] - ninf[lo1]) > 0] = np.inf
    return corr


def _extrapolated(rng: StepRange, *, is_counter: bool, is_rate: bool) -> tuple[F64, BOOL]:
    range_end = rng.window_end.astype(np.int64)
    range_start = range_end - int(rng.range_ms)
    range_s = rng.range_ms / 1000.0

    def block(blk: Block) -> tuple[F64, BOOL]:
        xx = padded(blk.x)
        tt = padded_int(blk.t)
        lo, hi, n = blk.lo, blk.hi, blk.n
        last = hi - 1
        first_v = xx[lo]
        result = xx[last]
        result -= first_v
        if is_counter:
            corr = _reset_correction(blk, rng.offsets)
            if corr is not None:
                result += corr
        first_t = tt[lo]
        last_t = tt[last]
        to_start = (first_t - range_start).astype(np.float64)
        to_start /= 1000.0
        to_end = (range_end - last_t).astype(np.float64)
        to_end /= 1000.0
        sampled = (last_t - first_t).astype(np.float64)
        sampled /= 1000.0
        avg = sampled / (n - 1).astype(np.float64)
        threshold = avg * 1.1
        half = avg / 2.0
        to_start = np.where(to_start >= threshold, half, to_start)
        if is_counter:
            to_zero = sampled * (first_v / result)
            use_zero = (result > 0) & (first_v >= 0) & (to_zero < to_start)
            to_start = np.where(use_zero, to_zero, to_start)
        to_end = np.where(to_end >= threshold, half, to_end)
        factor = sampled + to_start
        factor += to_end
        factor /= sampled
        if is_rate:
            factor /= range_s
        result *= factor
        return result, n >= 2

    return map_blocks(rng, block)


def _non_counter_info(ctx: FunctionContext, rng: StepRange, present: BOOL) -> None:
    """Prometheus's info for rate/increase over a metric not named like a counter."""
    has_output = present.any(axis=1)
    names = {rng.labels[i].metric_name for i in np.flatnonzero(has_output)}
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
    def block(blk: Block) -> tuple[F64, BOOL]:
        xx = padded(blk.x)
        tt = padded_int(blk.t)
        last = blk.hi - 1
        prev = blk.hi - 2
        lv = xx[last]
        pv = xx[prev]
        interval = tt[last] - tt[prev]
        ok = (blk.n >= 2) & (interval != 0)
        if is_rate:
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
    steps_ms = None if intercept_at is None else np.asarray(intercept_at, dtype=np.int64)

    def block(blk: Block) -> tuple[F64, BOOL]:
        x, t = blk.x, blk.t
        lo, hi, n = blk.lo, blk.hi, blk.n
        ok = n >= 2
        if not ok.any() or not len(x):
            return np.full(n.shape, np.nan), ok
        xx = padded(x)
        tt = padded_int(t)
        last = hi - 1
        first_t = tt[lo]
        ref_ms = first_t if steps_ms is None else np.broadcast_to(steps_ms, n.shape)
        # exact time moments relative to the block's first timestamp
        base = int(t[0])
        tau = t - base
        p_tau = padded_int(plain_prefix(tau))
        p_tau2 = padded_int(plain_prefix(tau * tau))  # wraps mod 2**64: fine, see below
        tau0 = ref_ms - base
        sum_tau = p_tau[hi] - p_tau[lo]
        sum_x = sum_tau - n * tau0
        # sum((tau - tau0)^2) in modular int64 arithmetic: exact whenever it fits
        sum_x2 = (p_tau2[hi] - p_tau2[lo]) - 2 * tau0 * sum_tau + n * tau0 * tau0
        span = np.maximum(np.abs(first_t - ref_ms), np.abs(tt[last] - ref_ms))
        span_f = span.astype(np.float64)
        fits = n.astype(np.float64) * span_f * span_f < _MAX_EXACT_X2
        # values relative to each series' first sample, to keep moments small
        lengths = np.diff(rng.offsets[blk.s0 : blk.s1 + 1])
        starts = np.minimum(rng.offsets[blk.s0 : blk.s1] - blk.a, len(x))
        firsts = np.where(lengths > 0, xx[starts], 0.0)
        firsts = np.where(np.isfinite(firsts), firsts, 0.0)
        y = x - np.repeat(firsts, lengths)
        finite = np.isfinite(y)
        all_finite = bool(finite.all())
        yf = y if all_finite else np.where(finite, y, 0.0)
        py = CompensatedPrefix(yf)
        pty = CompensatedPrefix(tau.astype(np.float64) * yf)
        sum_y = py.window(lo, hi)
        sum_ty = pty.window(lo, hi)
        nf = n.astype(np.float64)
        sx = sum_x.astype(np.float64) / 1e3
        sx2 = sum_x2.astype(np.float64) / 1e6
        sxy = (sum_ty - tau0.astype(np.float64) * sum_y) / 1e3
        cov = sxy - sx * sum_y / nf
        var = sx2 - sx * sx / nf
        slope = cov / var
        ref_col = firsts[:, None]
        intercept = sum_y / nf - slope * sx / nf + ref_col
        # windows whose values do not change: slope 0, intercept the value
        ch = np.zeros(len(x), dtype=np.int64)
        if len(x) >= 2:
            pairs = _pair_indicator(blk, rng.offsets, x[1:] != x[:-1])
            ch[1:] = pairs
        p_ch = padded_int(plain_prefix(ch))
        const = (p_ch[hi] - p_ch[lo + 1]) == 0
        first_v = xx[lo]
        slope = np.where(const, 0.0, slope)
        intercept = np.where(const, first_v, intercept)
        fallback = ok & ~fits
        if not all_finite:
            p_bad = padded_int(plain_prefix((~finite).astype(np.int64)))
            fallback |= ok & ((p_bad[hi] - p_bad[lo]) > 0)
        if fallback.any():
            rows, cols = np.nonzero(fallback)
            s_slope, s_icpt = scan_regression(
                x, t, lo[rows, cols], n[rows, cols], ref_ms[rows, cols]
            )
            slope[rows, cols] = s_slope
            intercept[rows, cols] = s_icpt
        if duration is None:
            return slope, ok
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
