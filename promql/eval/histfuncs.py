"""PromQL functions over native histograms (Prometheus 3 semantics).

Each function takes the evaluated arguments with their histogram cells
(`promql.value.HistCells`) and computes all cells of all steps at once from
the histogram columns (`promql.eval.histmath`). The evaluator calls these
for the functions in `HIST_FUNCTIONS` when an argument holds histograms;
for floats they defer to the float implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from promql.eval import histmath as hm
from promql.eval.functions.common import add_warning, make_vector, scalar_arg
from promql.eval.functions.registry import FUNCTIONS, FunctionContext
from promql.eval.vectors import floats_only, take_rows
from promql.value import EvalValue, HistCells, StepRange, StepVector
from remote_write.histograms import CUSTOM_BUCKETS_SCHEMA, RESET_GAUGE, HistogramBatch

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
BOOL = NDArray[np.bool_]

HistFunction = Callable[[FunctionContext, Sequence[EvalValue]], EvalValue]
HIST_FUNCTIONS: dict[str, HistFunction] = {}


def hist_register(*names: str) -> Callable[[HistFunction], HistFunction]:
    def wrap(fn: HistFunction) -> HistFunction:
        for n in names:
            HIST_FUNCTIONS[n] = fn
        return fn

    return wrap


def _float(name: str, ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    return FUNCTIONS[name].impl(ctx, args)


def hist_mask(vec: StepVector) -> BOOL:
    if vec.hist is None:
        return np.zeros_like(vec.present)
    return vec.present & (vec.hist.ref >= 0)


def with_hist(vec: StepVector, ref: I64, table: HistogramBatch) -> StepVector:
    vec.hist = HistCells(ref, table)
    vec.values = np.where(ref >= 0, np.nan, vec.values)
    return vec


def stack(a: StepVector, b: StepVector) -> StepVector:
    """Rows of `a` then rows of `b` (histogram tables joined)."""
    if not b.labels:
        return a
    if not a.labels:
        return b
    drop = None
    if a.drop_name is not None or b.drop_name is not None:
        da = a.drop_name if a.drop_name is not None else np.zeros(len(a.labels), bool)
        db = b.drop_name if b.drop_name is not None else np.zeros(len(b.labels), bool)
        drop = np.concatenate([da, db])
    out = StepVector(
        a.labels + b.labels,
        np.concatenate([a.values, b.values]),
        np.concatenate([a.present, b.present]),
        drop,
    )
    if a.hist is None and b.hist is None:
        return out
    ra, ta = _ref_table(a)
    rb, tb = _ref_table(b)
    shift = len(ta)
    rb = np.where(rb >= 0, rb + shift, -1)
    out.hist = HistCells(np.concatenate([ra, rb]), HistogramBatch.concat([ta, tb]))
    return out


def _ref_table(v: StepVector) -> tuple[I64, HistogramBatch]:
    if v.hist is None:
        return np.full(v.present.shape, -1, dtype=np.int64), HistogramBatch.empty()
    return v.hist.ref, v.hist.table


# --- histogram_count / sum / avg / stddev / stdvar ---------------------------


def _per_cell(
    ctx: FunctionContext, vec: StepVector, fn: Callable[[HistogramBatch, I64], F64]
) -> StepVector:
    mask = hist_mask(vec)
    values = np.full(vec.present.shape, np.nan)
    if mask.any() and vec.hist is not None:
        refs = vec.hist.ref[mask]
        values[mask] = fn(vec.hist.table, refs)
    return make_vector(ctx, vec.labels, values, mask, in_drop=vec.drop_name)


@hist_register("histogram_count")
def histogram_count(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    return _per_cell(ctx, _vec(args, 0), lambda t, r: t.count[r])


@hist_register("histogram_sum")
def histogram_sum(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    return _per_cell(ctx, _vec(args, 0), lambda t, r: t.sum[r])


@hist_register("histogram_avg")
def histogram_avg(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    with np.errstate(all="ignore"):
        return _per_cell(ctx, _vec(args, 0), lambda t, r: t.sum[r] / t.count[r])


def stdvar(table: HistogramBatch, rows: I64) -> F64:
    """Prometheus's estimate: each bucket's observations at its geometric mean
    (arithmetic for custom buckets, 0 in the zero bucket)."""
    w = hm.bucket_walk(table, rows)
    owner = hm.rows_of(w.offsets)
    with np.errstate(all="ignore"):
        mean = table.sum[rows] / table.count[rows]
        custom = (table.schema[rows] == CUSTOM_BUCKETS_SCHEMA)[owner]
        val = np.sqrt(w.upper * w.lower)
        val = np.where(w.upper < 0, -val, val)
        val = np.where(w.zero | ((w.lower <= 0) & (w.upper >= 0)), 0.0, val)
        val = np.where(custom, (w.upper + w.lower) / 2.0, val)
        d = val - mean[owner]
        contrib = np.where(w.count == 0, 0.0, w.count * d * d)
        var = np.bincount(owner, weights=contrib, minlength=len(rows))
        return var / table.count[rows]


@hist_register("histogram_stdvar")
def histogram_stdvar(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    return _per_cell(ctx, _vec(args, 0), stdvar)


@hist_register("histogram_stddev")
def histogram_stddev(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    return _per_cell(ctx, _vec(args, 0), lambda t, r: np.sqrt(stdvar(t, r)))


def _vec(args: Sequence[EvalValue], i: int) -> StepVector:
    v = args[i]
    assert isinstance(v, StepVector)
    return v


# --- histogram_quantile / histogram_fraction ---------------------------------


def _has_side(offsets: I64, rows: I64) -> BOOL:
    return (offsets[rows + 1] - offsets[rows]) > 0


def quantile(table: HistogramBatch, rows: I64, q: F64) -> F64:
    """Prometheus 3 `histogramQuantile` for each (row, q) pair."""
    n = len(rows)
    out = np.full(n, np.nan)
    if not n:
        return out
    count = table.count[rows]
    total_sum = table.sum[rows]
    w = hm.bucket_walk(table, rows)
    owner = hm.rows_of(w.offsets)
    forward = np.isnan(total_sum) | (q < 0.5)
    with np.errstate(all="ignore"):
        rank = np.where(forward, q * count, (1 - q) * count)
        cum = hm.segment_cumsum(w.count, w.offsets)
        seg_total = np.concatenate(([0.0], np.cumsum(w.count)))
        before = seg_total[w.offsets[:-1]][owner]
        after_total = seg_total[w.offsets[1:]][owner]
        rev = after_total - before - cum + w.count  # sum of this bucket and those above
        pos = np.arange(len(cum))
        fwd_hit = np.where(cum >= rank[owner], pos, len(cum))
        rev_hit = np.where(rev >= rank[owner], pos, -1)
        nonempty = np.diff(w.offsets) > 0
        starts = w.offsets[:-1][nonempty]
        first = np.full(n, len(cum), dtype=np.int64)
        last = np.full(n, -1, dtype=np.int64)
        if len(cum):
            first[nonempty] = np.minimum.reduceat(fwd_hit, starts)
            last[nonempty] = np.maximum.reduceat(rev_hit, starts)
        end = w.offsets[1:] - 1
        beg = w.offsets[:-1]
        k = np.where(forward, np.where(first < w.offsets[1:], first, end),
                     np.where(last >= beg, last, beg))  # fmt: skip
        kk = np.clip(k, 0, max(len(cum) - 1, 0))
        if not len(cum):
            return np.where(q < 0, -np.inf, np.where(q > 1, np.inf, out))
        b_lower = w.lower[kk].copy()
        b_upper = w.upper[kk].copy()
        b_count = w.count[kk]
        got = np.where(forward, cum[kk], rev[kk])
        got = np.where(forward & (first >= w.offsets[1:]), cum[end.clip(0)], got)
        got = np.where(~forward & (last < beg), rev[beg.clip(0, len(cum) - 1)], got)
        has_neg = _has_side(table.neg_offsets, rows)
        has_pos = _has_side(table.pos_offsets, rows)
        in_zero = (b_lower < 0) & (b_upper > 0)
        b_lower = np.where(in_zero & ~has_neg & has_pos, 0.0, b_lower)
        b_upper = np.where(in_zero & has_neg & ~has_pos, 0.0, b_upper)
        got = np.minimum(got, count)
        r = np.where(forward, rank - (got - b_count), got - rank)
        frac = r / b_count
        custom = table.schema[rows] == CUSTOM_BUCKETS_SCHEMA
        linear = b_lower + (b_upper - b_lower) * frac
        # custom buckets with an infinite end behave like classic buckets
        low_inf = custom & np.isinf(b_lower)
        linear = np.where(low_inf & (b_upper <= 0), b_upper, linear)
        linear = np.where(low_inf & (b_upper > 0), b_upper * frac, linear)
        linear = np.where(custom & np.isinf(b_upper), b_lower, linear)
        lo_abs = np.log2(np.abs(b_lower))
        up_abs = np.log2(np.abs(b_upper))
        expo = np.where(
            b_lower > 0,
            np.exp2(lo_abs + (up_abs - lo_abs) * frac),
            -np.exp2(up_abs + (lo_abs - up_abs) * (1 - frac)),
        )
        use_linear = custom | ((b_lower <= 0) & (b_upper >= 0))
        val = np.where(use_linear, linear, expo)
        val = np.where(got < rank, b_upper, val)
        val = np.where((count == 0) | np.isnan(q), np.nan, val)
        val = np.where(q < 0, -np.inf, np.where(q > 1, np.inf, val))
    return val


def _below(w: hm.Walk, owner: I64, x: F64, custom: BOOL) -> F64:
    """Per walked bucket: observations of it below `x` (its owner's bound)."""
    lo, up, c = w.lower, w.upper, w.count
    with np.errstate(all="ignore"):
        lo = np.where(custom & np.isinf(lo) & (up > 0), 0.0, lo)
        frac_lin = (x - lo) / (up - lo)
        l_lo = np.log2(np.abs(lo))
        l_up = np.log2(np.abs(up))
        l_x = np.log2(np.abs(x))
        frac_exp = np.where(lo > 0, (l_x - l_lo) / (l_up - l_lo), 1 - (l_x - l_up) / (l_lo - l_up))
        linear = custom | ((lo <= 0) & (up >= 0))
        frac = np.where(linear, frac_lin, frac_exp)
        part = np.where(up <= x, c, np.where(lo >= x, 0.0, c * frac))
        part = np.where(np.isinf(lo) & (x > -np.inf), c, part)
        part = np.where(np.isinf(up) & (lo < x) & np.isfinite(x), 0.0, part)
        part = np.where(np.isinf(up) & (x == np.inf), c, part)
    return part


def fraction(table: HistogramBatch, rows: I64, lower: F64, upper: F64) -> F64:
    """Prometheus 3 `histogramFraction` for each (row, lower, upper)."""
    n = len(rows)
    if not n:
        return np.zeros(0)
    w = hm.bucket_walk(table, rows)
    owner = hm.rows_of(w.offsets)
    if not len(owner):
        with np.errstate(all="ignore"):
            res = np.where(lower >= upper, 0.0, 0.0 / table.count[rows])
            return np.where(
                (table.count[rows] == 0) | np.isnan(lower) | np.isnan(upper), np.nan, res
            )
    has_neg = _has_side(table.neg_offsets, rows)[owner]
    has_pos = _has_side(table.pos_offsets, rows)[owner]
    in_zero = (w.lower < 0) & (w.upper > 0)
    w.lower = np.where(in_zero & ~has_neg & has_pos, 0.0, w.lower)
    w.upper = np.where(in_zero & has_neg & ~has_pos, 0.0, w.upper)
    custom = (table.schema[rows] == CUSTOM_BUCKETS_SCHEMA)[owner]
    count = table.count[rows]
    lo_rank = np.bincount(owner, weights=_below(w, owner, lower[owner], custom), minlength=n)
    up_rank = np.bincount(owner, weights=_below(w, owner, upper[owner], custom), minlength=n)
    with np.errstate(all="ignore"):
        res = (np.minimum(up_rank, count) - np.minimum(lo_rank, count)) / count
        res = np.where(lower >= upper, 0.0, res)
        res = np.where((count == 0) | np.isnan(lower) | np.isnan(upper), np.nan, res)
    return res


def _native_and_classic(
    ctx: FunctionContext,
    args: Sequence[EvalValue],
    vec_arg: int,
    native: Callable[[HistogramBatch, I64, I64], F64],
) -> EvalValue:
    vec = _vec(args, vec_arg)
    float_args = list(args)
    float_args[vec_arg] = floats_only(vec)
    classic = _float(ctx.name, ctx, float_args)
    mask = hist_mask(vec)
    if not mask.any() or vec.hist is None:
        return classic
    rows_i, cols = np.nonzero(mask)
    values = np.full(vec.present.shape, np.nan)
    values[rows_i, cols] = native(vec.hist.table, vec.hist.ref[rows_i, cols], cols)
    out = make_vector(ctx, vec.labels, values, mask, in_drop=vec.drop_name)
    assert isinstance(classic, StepVector)
    _mixed_classic_native(ctx, vec, classic, out, vec_arg)
    return stack(classic, out)


def _mixed_classic_native(
    ctx: FunctionContext, src: StepVector, classic: StepVector, native: StepVector, arg: int
) -> None:
    """Where a classic and a native histogram give the same output series at a
    step, neither is returned (Prometheus warns and drops both)."""
    if not classic.labels or not native.labels:
        return
    index = {lbl.without_metric_name(): i for i, lbl in enumerate(classic.labels)}
    src_names = {lbl.without_metric_name().without("le"): lbl.metric_name for lbl in src.labels}
    for j, lbl in enumerate(native.labels):
        key = lbl.without_metric_name()
        i = index.get(key)
        if i is None:
            continue
        clash = classic.present[i] & native.present[j]
        if clash.any():
            classic.present[i] &= ~clash
            native.present[j] &= ~clash
            name = lbl.metric_name or src_names.get(key, "")
            add_warning(
                ctx,
                f'vector contains a mix of classic and native histograms for metric name "{name}"',
                arg,
            )


@hist_register("histogram_quantile")
def histogram_quantile(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    vec = _vec(args, 1)
    q = scalar_arg(args, 0, vec.present.shape[1])
    return _native_and_classic(ctx, args, 1, lambda t, r, c: quantile(t, r, q[c]))


@hist_register("histogram_fraction")
def histogram_fraction(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    vec = _vec(args, 2)
    n = vec.present.shape[1]
    lo = scalar_arg(args, 0, n)
    up = scalar_arg(args, 1, n)
    return _native_and_classic(ctx, args, 2, lambda t, r, c: fraction(t, r, lo[c], up[c]))


# --- range functions --------------------------------------------------------


def _hist_windows(rng: StepRange) -> tuple[I64, I64]:
    """Per window: number of samples and of histogram samples."""
    assert rng.hist is not None
    is_h = (rng.hist.ref >= 0).astype(np.int64)
    c = np.concatenate(([0], np.cumsum(is_h)))
    return rng.hi - rng.lo, c[rng.hi] - c[rng.lo]


def float_range(rng: StepRange, *, empty_where_hist: bool = True) -> StepRange:
    """`rng` without its histogram samples; windows that held any are emptied
    too (by default), so float functions never see half a window."""
    if rng.hist is None:
        return rng
    keep = rng.hist.ref < 0
    c = np.concatenate(([0], np.cumsum(keep)))
    lo, hi = c[rng.lo], c[rng.hi]
    if empty_where_hist:
        _, nh = _hist_windows(rng)
        hi = np.where(nh > 0, lo, hi)
    return StepRange(
        rng.labels,
        c[rng.offsets],
        rng.timestamps[keep],
        rng.values[keep],
        lo,
        hi,
        rng.window_end,
        rng.range_ms,
        rng.drop_name,
    )


def _float_part(ctx: FunctionContext, args: Sequence[EvalValue]) -> StepVector:
    rng = args[0]
    assert isinstance(rng, StepRange)
    out = _float(ctx.name, ctx, [float_range(rng), *args[1:]])
    assert isinstance(out, StepVector)
    return out


def detect_resets(table: HistogramBatch, prev: I64, curr: I64) -> BOOL:
    """Prometheus's `DetectReset(curr, prev)` for each pair of rows."""
    n = len(prev)
    if not n:
        return np.zeros(0, dtype=bool)
    hint = table.reset_hint[curr]
    reset = table.count[curr] < table.count[prev]
    c_custom = table.schema[curr] == CUSTOM_BUCKETS_SCHEMA
    p_custom = table.schema[prev] == CUSTOM_BUCKETS_SCHEMA
    reset |= c_custom != p_custom
    both = c_custom & p_custom
    if both.any():
        idx = np.flatnonzero(both)
        reset[idx] |= ~hm.same_custom_values(table, curr[idx], prev[idx])
    reset |= ~c_custom & ~p_custom & (table.schema[curr] > table.schema[prev])
    reset |= table.zero_threshold[curr] < table.zero_threshold[prev]
    reset |= table.zero_count[curr] < table.zero_count[prev]
    todo = np.flatnonzero(~reset)
    if len(todo):
        rows = np.concatenate([curr[todo], prev[todo]])
        out = np.concatenate([np.arange(len(todo)), np.arange(len(todo))])
        weight = np.concatenate([np.ones(len(todo)), -np.ones(len(todo))])
        comb = hm.combine(table, rows, out, weight, len(todo))
        t = comb.table
        neg = np.zeros(len(todo), dtype=bool)
        for off, cnt in ((t.pos_offsets, t.pos_counts), (t.neg_offsets, t.neg_counts)):
            bad = cnt < 0
            if bad.any():
                neg[hm.rows_of(off)[bad]] = True
        reset[todo] = neg
    reset = np.where(hint == 1, True, np.where(hint == 2, False, reset))
    return reset


def _hist_rate(
    ctx: FunctionContext, args: Sequence[EvalValue], *, is_counter: bool, is_rate: bool
) -> EvalValue:
    rng = args[0]
    assert isinstance(rng, StepRange)
    if rng.hist is None:
        return _float(ctx.name, ctx, args)
    n, nh = _hist_windows(rng)
    floats = _float_part(ctx, args)
    table = rng.hist.table
    href = rng.hist.ref
    mixed = (nh > 0) & (nh < n)
    for i in np.flatnonzero(mixed.any(axis=1)).tolist():
        add_warning(
            ctx,
            "encountered a mix of histograms and floats for metric name "
            f'"{rng.labels[i].metric_name}"',
            0,
        )
    ok = (nh == n) & (n >= 2)
    si, sj = np.nonzero(ok)
    ncell = len(si)
    values = np.full(ok.shape, np.nan)
    ref = np.full(ok.shape, -1, dtype=np.int64)
    if not ncell:
        return floats
    lo = rng.lo[si, sj]
    hi = rng.hi[si, sj]
    first = href[lo]
    last = href[hi - 1]
    # Schema: the smallest in the window; custom buckets must not mix with exponential.
    schema = table.schema[np.maximum(href, 0)].astype(np.int64)
    is_custom = schema == CUSTOM_BUCKETS_SCHEMA
    pad_schema = np.concatenate([np.where(is_custom, 1 << 30, schema), [1 << 30]])
    idx = np.empty(2 * ncell, dtype=np.int64)
    idx[0::2] = lo
    idx[1::2] = hi
    min_schema = np.minimum.reduceat(pad_schema, idx)[0::2]
    pad_custom = np.concatenate([is_custom.astype(np.int64), [0]])
    n_custom = np.add.reduceat(pad_custom, idx)[0::2]
    mix = (n_custom > 0) & (n_custom < (hi - lo))
    gauge = table.reset_hint[np.maximum(href, 0)] == RESET_GAUGE
    pad_gauge = np.concatenate([gauge.astype(np.int64), [0]])
    n_gauge = np.add.reduceat(pad_gauge, idx)[0::2]
    contrib_rows = [last, first]
    contrib_out = [np.arange(ncell), np.arange(ncell)]
    contrib_w = [np.ones(ncell), -np.ones(ncell)]
    if is_counter:
        # Counter resets between consecutive histograms of a series.
        k = np.arange(1, len(href))
        same = (href[k] >= 0) & (href[k - 1] >= 0)
        same &= np.searchsorted(rng.offsets, k, side="right") == np.searchsorted(
            rng.offsets, k - 1, side="right"
        )
        kk = k[same]
        resets = kk[detect_resets(table, href[kk - 1], href[kk])]
        a = np.searchsorted(resets, lo + 1)
        b = np.searchsorted(resets, hi)
        cnt = b - a
        if cnt.sum():
            owner = np.repeat(np.arange(ncell), cnt)
            base = np.concatenate(([0], np.cumsum(cnt)))
            at = np.repeat(a - base[:-1], cnt) + np.arange(int(base[-1]))
            contrib_rows.append(href[resets[at] - 1])
            contrib_out.append(owner)
            contrib_w.append(np.ones(len(owner)))
        for i in np.flatnonzero(
            np.bincount(si, weights=n_gauge > 0, minlength=len(rng.labels))
        ).tolist():
            add_warning(
                ctx,
                f'this native histogram metric is not a counter: "{rng.labels[i].metric_name}"',
                0,
            )
    else:
        not_gauge = (table.reset_hint[first] != RESET_GAUGE) | (
            table.reset_hint[last] != RESET_GAUGE
        )
        for i in np.unique(si[not_gauge]).tolist():
            add_warning(
                ctx,
                f'this native histogram metric is not a gauge: "{rng.labels[i].metric_name}"',
                0,
            )
    comb = hm.combine(
        table,
        np.concatenate(contrib_rows),
        np.concatenate(contrib_out),
        np.concatenate(contrib_w),
        ncell,
        schema_cap=np.where(min_schema == 1 << 30, CUSTOM_BUCKETS_SCHEMA, min_schema),
    )
    bad = mix | comb.mixed_schemas
    for i in np.unique(si[bad]).tolist():
        add_warning(
            ctx,
            "vector contains a mix of histograms with exponential and custom buckets schemas "
            f'for metric name "{rng.labels[i].metric_name}"',
            0,
        )
    # Extrapolation, as for floats (no zero-point clamp for histograms).
    times = rng.timestamps.astype(np.float64)
    range_end = rng.window_end[sj].astype(np.float64)
    range_start = range_end - float(rng.range_ms)
    first_t, last_t = times[lo], times[hi - 1]
    sampled = (last_t - first_t) / 1000.0
    to_start = (first_t - range_start) / 1000.0
    to_end = (range_end - last_t) / 1000.0
    avg = sampled / (hi - lo - 1)
    threshold = avg * 1.1
    to_start = np.where(to_start >= threshold, avg / 2, to_start)
    to_end = np.where(to_end >= threshold, avg / 2, to_end)
    factor = (sampled + to_start + to_end) / sampled
    if is_rate:
        factor /= rng.range_ms / 1000.0
    scaled = hm.scale(comb.table, np.arange(ncell), factor)
    scaled.reset_hint[:] = RESET_GAUGE
    good = ~bad
    ref[si[good], sj[good]] = np.flatnonzero(good)
    present = ref >= 0
    hist_out = make_vector(ctx, rng.labels, values, present, keep_empty=True)
    hist_out.hist = HistCells(ref, scaled)
    keep = present.any(axis=1)
    hist_out = take_rows(hist_out, np.flatnonzero(keep))
    return stack(floats, hist_out)


@hist_register("rate")
def rate(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    return _hist_rate(ctx, args, is_counter=True, is_rate=True)


@hist_register("increase")
def increase(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    return _hist_rate(ctx, args, is_counter=True, is_rate=False)


@hist_register("delta")
def delta(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    return _hist_rate(ctx, args, is_counter=False, is_rate=False)


# --- more range functions -------------------------------------------------------


def _pair_flags(rng: StepRange, *, changes: bool) -> F64:
    """Per flat sample k >= 1: whether (k-1, k) is a reset (or a change)."""
    assert rng.hist is not None
    href = rng.hist.ref
    v = rng.values
    n = len(href)
    flags = np.zeros(n, dtype=np.float64)
    if n < 2:
        return flags
    k = np.arange(1, n)
    a_h, b_h = href[k - 1] >= 0, href[k] >= 0
    ff = ~a_h & ~b_h
    with np.errstate(invalid="ignore"):
        if changes:
            differ = (v[k] != v[k - 1]) & ~(np.isnan(v[k]) & np.isnan(v[k - 1]))
        else:
            differ = v[k] < v[k - 1]
    flags[k[ff]] = differ[ff]
    flags[k[a_h != b_h]] = 1.0
    hh = np.flatnonzero(a_h & b_h)
    if len(hh):
        kk = k[hh]
        table = rng.hist.table
        if changes:
            from promql.eval.histglue import equal_pairs

            flags[kk] = ~equal_pairs(table, href[kk - 1], href[kk])
        else:
            flags[kk] = detect_resets(table, href[kk - 1], href[kk])
    return flags


def _count_pairs(ctx: FunctionContext, args: Sequence[EvalValue], *, changes: bool) -> EvalValue:
    rng = args[0]
    assert isinstance(rng, StepRange)
    flags = _pair_flags(rng, changes=changes)
    c = np.concatenate(([0.0], np.cumsum(flags)))
    n = rng.hi - rng.lo
    lo1 = np.minimum(rng.lo + 1, rng.hi)
    values = c[rng.hi] - c[lo1]
    return make_vector(ctx, rng.labels, values, n >= 1, in_drop=rng.drop_name)


@hist_register("resets")
def resets(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    return _count_pairs(ctx, args, changes=False)


@hist_register("changes")
def changes(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    return _count_pairs(ctx, args, changes=True)


def _pick(ctx: FunctionContext, args: Sequence[EvalValue], *, last: bool) -> EvalValue:
    rng = args[0]
    assert isinstance(rng, StepRange)
    assert rng.hist is not None
    n = rng.hi - rng.lo
    present = n >= 1
    at = np.where(present, rng.hi - 1 if last else rng.lo, 0)
    values = rng.values[at] if len(rng.values) else np.zeros(at.shape)
    ref = np.where(present, rng.hist.ref[at] if len(rng.values) else -1, -1)
    out = make_vector(
        ctx, rng.labels, values, present, drop_name=False, in_drop=rng.drop_name, keep_empty=True
    )
    out.hist = HistCells(ref, rng.hist.table)
    return take_rows(out, np.flatnonzero(present.any(axis=1)))


@hist_register("last_over_time")
def last_over_time(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    return _pick(ctx, args, last=True)


@hist_register("first_over_time")
def first_over_time(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    return _pick(ctx, args, last=False)


def _sum_windows(ctx: FunctionContext, args: Sequence[EvalValue], *, average: bool) -> EvalValue:
    rng = args[0]
    assert isinstance(rng, StepRange)
    assert rng.hist is not None
    n, nh = _hist_windows(rng)
    floats = _float_part(ctx, args)
    mixed = (nh > 0) & (nh < n)
    for i in np.flatnonzero(mixed.any(axis=1)).tolist():
        add_warning(
            ctx,
            "encountered a mix of histograms and floats for metric name "
            f'"{rng.labels[i].metric_name}"',
            0,
        )
    ok = (nh == n) & (n >= 1)
    si, sj = np.nonzero(ok)
    if not len(si):
        return floats
    lo, hi = rng.lo[si, sj], rng.hi[si, sj]
    cnt = hi - lo
    owner = np.repeat(np.arange(len(si)), cnt)
    base = np.concatenate(([0], np.cumsum(cnt)))
    at = np.repeat(lo - base[:-1], cnt) + np.arange(int(base[-1]))
    weight = np.ones(len(at)) if not average else 1.0 / cnt[owner]
    comb = hm.combine(rng.hist.table, rng.hist.ref[at], owner, weight, len(si))
    ref = np.full(ok.shape, -1, dtype=np.int64)
    good = ~(comb.mixed_schemas | comb.custom_mismatch)
    ref[si[good], sj[good]] = np.flatnonzero(good)
    out = make_vector(ctx, rng.labels, np.full(ok.shape, np.nan), ref >= 0, keep_empty=True)
    out.hist = HistCells(ref, comb.table)
    return stack(floats, take_rows(out, np.flatnonzero((ref >= 0).any(axis=1))))


@hist_register("sum_over_time")
def sum_over_time(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    return _sum_windows(ctx, args, average=False)


@hist_register("avg_over_time")
def avg_over_time(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    return _sum_windows(ctx, args, average=True)


def _instant(ctx: FunctionContext, args: Sequence[EvalValue], *, is_rate: bool) -> EvalValue:
    """irate / idelta: the last two samples of each window."""
    rng = args[0]
    assert isinstance(rng, StepRange)
    assert rng.hist is not None
    floats = _float_part(ctx, args)
    href = rng.hist.ref
    table = rng.hist.table
    n = rng.hi - rng.lo
    two = n >= 2
    k2 = np.where(two, rng.hi - 1, 0)
    k1 = np.where(two, rng.hi - 2, 0)
    h1 = two & (href[k1] >= 0)
    h2 = two & (href[k2] >= 0)
    name = {i: rng.labels[i].metric_name for i in range(len(rng.labels))}
    for i in np.flatnonzero((two & (h1 != h2)).any(axis=1)).tolist():
        add_warning(
            ctx, f'encountered a mix of histograms and floats for metric name "{name[i]}"', 0
        )
    si, sj = np.nonzero(h1 & h2)
    if not len(si):
        return floats
    a, b = href[k1[si, sj]], href[k2[si, sj]]
    ga = table.reset_hint[a] == RESET_GAUGE
    gb = table.reset_hint[b] == RESET_GAUGE
    warn_rows = si[(ga | gb)] if is_rate else si[ga != gb]
    for i in np.unique(warn_rows).tolist():
        kind = "counter" if is_rate else "gauge"
        add_warning(ctx, f'this native histogram metric is not a {kind}: "{name[i]}"', 0)
    m = len(si)
    reset = detect_resets(table, a, b) if is_rate else np.zeros(m, dtype=bool)
    w_prev = np.where(reset, 0.0, -1.0)
    comb = hm.combine(
        table,
        np.concatenate([b, a]),
        np.concatenate([np.arange(m), np.arange(m)]),
        np.concatenate([np.ones(m), w_prev]),
        m,
    )
    bad = comb.mixed_schemas.copy()
    custom_b = table.schema[b] == CUSTOM_BUCKETS_SCHEMA
    custom_a = table.schema[a] == CUSTOM_BUCKETS_SCHEMA
    bad |= (custom_a != custom_b) & ~reset
    for i in np.unique(si[bad]).tolist():
        add_warning(
            ctx,
            "vector contains a mix of histograms with exponential and custom buckets "
            f'schemas for metric name "{name[i]}"',
            0,
        )
    factor = np.ones(m)
    if is_rate:
        dt = (rng.timestamps[k2[si, sj]] - rng.timestamps[k1[si, sj]]) / 1000.0
        factor = 1.0 / dt
    scaled = hm.scale(comb.table, np.arange(m), factor)
    scaled.reset_hint[:] = RESET_GAUGE
    ref = np.full(two.shape, -1, dtype=np.int64)
    good = ~bad
    ref[si[good], sj[good]] = np.flatnonzero(good)
    out = make_vector(ctx, rng.labels, np.full(two.shape, np.nan), ref >= 0, keep_empty=True)
    out.hist = HistCells(ref, scaled)
    return stack(floats, take_rows(out, np.flatnonzero((ref >= 0).any(axis=1))))


@hist_register("irate")
def irate(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    return _instant(ctx, args, is_rate=True)


@hist_register("idelta")
def idelta(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    return _instant(ctx, args, is_rate=False)


@hist_register("histogram_quantiles")
def histogram_quantiles(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    """Classic buckets as before; each native histogram gives one series per φ."""
    from promql.eval.functions.common import format_openmetrics_float, string_arg

    vec = _vec(args, 0)
    nsteps = vec.present.shape[1]
    label = string_arg(args, 1)
    float_args = [floats_only(vec), *args[1:]]
    classic = _float(ctx.name, ctx, float_args)
    mask = hist_mask(vec)
    if not mask.any() or vec.hist is None:
        return classic
    assert isinstance(classic, StepVector)
    rows_i, cols = np.nonzero(mask)
    refs = vec.hist.ref[rows_i, cols]
    out = classic
    for a in range(2, len(args)):
        q = scalar_arg(args, a, nsteps)
        values = np.full(vec.present.shape, np.nan)
        values[rows_i, cols] = quantile(vec.hist.table, refs, q[cols])
        for value in np.unique(q, equal_nan=True).tolist():
            at = np.isnan(q) if np.isnan(value) else (q == value)
            labels = [lbl.with_(label, format_openmetrics_float(value)) for lbl in vec.labels]
            part = make_vector(ctx, labels, values, mask & at[None, :], in_drop=vec.drop_name)
            _mixed_classic_native(ctx, vec, classic, part, 0)
            out = stack(out, part)
    return out


def histogram_string(table: HistogramBatch, row: int) -> str:
    """Prometheus's `FloatHistogram.String()` of one row (count_values labels)."""
    from promql.eval.gofmt import format_g

    w = hm.bucket_walk(table, np.array([row], dtype=np.int64))
    parts = [f"{{count:{format_g(float(table.count[row]))}, sum:{format_g(float(table.sum[row]))}"]
    custom = int(table.schema[row]) == CUSTOM_BUCKETS_SCHEMA
    for lo, up, c, z in zip(
        w.lower.tolist(), w.upper.tolist(), w.count.tolist(), w.zero.tolist(), strict=True
    ):
        if c == 0:
            continue
        if z:
            left, right = "[", "]"
        elif up <= 0 and not custom:
            left, right = "[", ")"
        else:
            left, right = "(", "]"
        parts.append(f"{left}{format_g(lo)},{format_g(up)}{right}:{format_g(c)}")
    return ", ".join(parts) + "}"
