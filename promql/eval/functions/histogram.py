"""Classic-histogram functions: `histogram_quantile`, `histogram_quantiles`,
`histogram_fraction`, and the native-only `histogram_count/sum/avg/stddev/
stdvar` (which have no result for float samples).

Bucket series are grouped by their labels without `le` (the metric name
included, as in Prometheus 3, so two histograms that differ only by name
stay apart and then collide as a duplicate label set). Each group becomes a
`[buckets x steps]` slab of one `[groups x buckets x steps]` array, buckets
sorted by upper bound and equal bounds coalesced; a bucket absent at a step
is left out of that step's computation. Everything after the grouping
(monotonicity fix, rank search, interpolation) is array work over all
groups and steps at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from promql.eval.functions.common import (
    BOOL,
    F64,
    I64,
    add_info,
    add_warning,
    empty_vector,
    format_go_g,
    format_openmetrics_float,
    go_quote,
    make_vector,
    nsteps_of,
    parse_go_float,
    scalar_arg,
    string_arg,
    vector_arg,
    warn_invalid_quantiles,
)
from promql.eval.functions.registry import FunctionContext, register
from promql.value import EvalValue, StepVector
from storage.labels import Labels

_SMALL_DELTA = 1e-12
"""Relative bucket-count differences below this are float noise (Prometheus smallDeltaTolerance)."""
_MIN_NORMAL = 2.2250738585072014e-308


@dataclass(slots=True)
class Buckets:
    """Classic histograms as `[groups x buckets x steps]`.

    `upper[g, b]` is bucket b's upper bound (+Inf padding where the group has
    fewer buckets), `counts` the cumulative counts with the monotonicity fix
    applied, `present` whether the bucket has a sample at that step.
    """

    labels: list[Labels]
    drop: BOOL | None
    upper: F64
    counts: F64
    present: BOOL
    forced: BOOL
    """Per (group, step): a decrease had to be removed."""
    fix_low: F64
    fix_high: F64
    fix_diff: F64

    @property
    def has_any(self) -> BOOL:
        return self.present.any(axis=1)


def _almost_equal(a: F64, b: F64, eps: float) -> BOOL:
    """Prometheus `almost.Equal` on arrays."""
    with np.errstate(all="ignore"):
        diff = np.abs(a - b)
        abs_sum = np.abs(a) + np.abs(b)
        tiny = (a == 0) | (b == 0) | (abs_sum < _MIN_NORMAL)
        rel = diff / np.minimum(abs_sum, np.finfo(np.float64).max)
        return (a == b) | np.where(tiny, diff < eps * _MIN_NORMAL, rel < eps)


def _collect(ctx: FunctionContext, vec: StepVector, arg: int) -> Buckets | None:
    """Group the bucket series of `vec`; warn about missing or malformed `le`."""
    group_of: dict[Labels, int] = {}
    group_labels: list[Labels] = []
    group_drop: list[bool] = []
    rows: list[int] = []
    groups: list[int] = []
    bounds: list[float] = []
    series_present = vec.present.any(axis=1)
    for i, lbl in enumerate(vec.labels):
        le = lbl.get("le")
        bound = parse_go_float(le)
        if bound is None:
            if series_present[i]:
                name = lbl.metric_name
                suffix = f" for metric name {go_quote(name)}" if name else ""
                add_warning(
                    ctx,
                    f'bucket label "le" is missing or has a malformed value of {go_quote(le)}'
                    + suffix,
                    arg,
                )
            continue
        key = lbl.without("le")
        g = group_of.get(key)
        if g is None:
            g = group_of[key] = len(group_labels)
            group_labels.append(key)
            group_drop.append(bool(vec.drop_name[i]) if vec.drop_name is not None else False)
        rows.append(i)
        groups.append(g)
        bounds.append(bound)
    if not rows:
        return None
    row_idx = np.asarray(rows, dtype=np.int64)
    grp = np.asarray(groups, dtype=np.int64)
    ub = np.asarray(bounds, dtype=np.float64)
    order = np.lexsort((ub, grp))
    row_idx, grp, ub = row_idx[order], grp[order], ub[order]
    # slot = rank of the (distinct) bound within its group
    new_slot = np.ones(len(ub), dtype=np.bool_)
    new_slot[1:] = (grp[1:] != grp[:-1]) | (ub[1:] != ub[:-1])
    new_group = np.ones(len(ub), dtype=np.bool_)
    new_group[1:] = grp[1:] != grp[:-1]
    slot_global = np.cumsum(new_slot) - 1
    group_first_slot = slot_global[new_group]
    slot = slot_global - group_first_slot[grp]
    ngroups = len(group_labels)
    nbuckets = int(slot.max()) + 1
    nsteps = vec.values.shape[1]
    upper = np.full((ngroups, nbuckets), np.inf)
    upper[grp, slot] = ub
    counts = np.zeros((ngroups, nbuckets, nsteps))
    present = np.zeros((ngroups, nbuckets, nsteps), dtype=np.bool_)
    pres_rows = vec.present[row_idx]
    vals_rows = np.where(pres_rows, vec.values[row_idx], 0.0)
    np.add.at(counts, (grp, slot), vals_rows)  # coalesces equal bounds
    np.logical_or.at(present, (grp, slot), pres_rows)
    fixed = _fix_monotonic(upper, counts, present)
    return Buckets(
        group_labels,
        np.asarray(group_drop) if vec.drop_name is not None else None,
        upper,
        *fixed,
    )


def _fix_monotonic(upper: F64, counts: F64, present: BOOL) -> tuple[F64, BOOL, BOOL, F64, F64, F64]:
    """Remove decreases between successive present buckets, ignoring float noise.

    Returns (counts, present, forced[g, t], lowest and highest bound that was
    fixed, largest decrease removed) — the last three for the info message.
    """
    with np.errstate(all="ignore"):
        masked = np.where(present, counts, -np.inf)
        running = np.maximum.accumulate(masked, axis=1)
        prev = np.full(counts.shape, -np.inf)
        prev[:, 1:] = running[:, :-1]
        has_prev = present & (prev > -np.inf)
        noise = has_prev & (counts != prev) & _almost_equal(prev, counts, _SMALL_DELTA)
        decrease = has_prev & (counts < prev) & ~noise
        fixed = np.where(has_prev & (noise | decrease), prev, counts)
        forced = decrease.any(axis=1)
        bound = np.broadcast_to(upper[:, :, None], counts.shape)
        fix_low = np.where(decrease, bound, np.inf).min(axis=1)
        fix_high = np.where(decrease, bound, -np.inf).max(axis=1)
        fix_diff = np.where(decrease, prev - counts, -np.inf).max(axis=1)
    return fixed, present, forced, fix_low, fix_high, fix_diff


def _neighbours(present: BOOL) -> tuple[I64, I64]:
    """Per (group, bucket, step): index of the previous present bucket (-1: none),
    and per (group, step) the index of the last present bucket (-1: none)."""
    nb = present.shape[1]
    idx = np.where(present, np.arange(nb)[None, :, None], -1)
    running = np.maximum.accumulate(idx, axis=1)
    prev = np.full(present.shape, -1, dtype=np.int64)
    prev[:, 1:] = running[:, :-1]
    return prev, running[:, -1, :]


def _take(arr: F64, idx: I64) -> F64:
    """arr[g, idx[g, t], t] for idx of shape [G, T] (idx clipped into range)."""
    safe = np.clip(idx, 0, arr.shape[1] - 1)
    return np.take_along_axis(arr, safe[:, None, :], axis=1)[:, 0, :]


def _bucket_quantile(h: Buckets, q: F64) -> tuple[F64, BOOL]:
    """Prometheus `BucketQuantile` for every group and step; also whether the
    monotonicity fix counted (it only does past the early returns)."""
    counts, present = h.counts, h.present
    nb = counts.shape[1]
    prev, last = _neighbours(present)
    upper3 = np.broadcast_to(h.upper[:, :, None], counts.shape)
    with np.errstate(all="ignore"):
        nbuckets = present.sum(axis=1)
        last_upper = _take(upper3, last)
        observations = _take(counts, last)
        rank = q[None, :] * observations
        bidx = np.arange(nb)[None, :, None]
        candidate = present & (bidx < last[:, None, :]) & (counts >= rank[:, None, :])
        found = candidate.any(axis=1)
        b = np.where(found, np.argmax(candidate, axis=1), last)
        b_prev = np.take_along_axis(prev, np.clip(b, 0, nb - 1)[:, None, :], axis=1)[:, 0, :]
        b_upper = _take(upper3, b)
        b_count = _take(counts, b)
        prev_upper = np.where(b_prev >= 0, _take(upper3, b_prev), 0.0)
        prev_count = np.where(b_prev >= 0, _take(counts, b_prev), 0.0)
        fraction = (rank - prev_count) / (b_count - prev_count)
        interp = prev_upper + (b_upper - prev_upper) * fraction
        result = np.where(b_prev < 0, np.where(b_upper <= 0, b_upper, interp), interp)
        # quantile in the +Inf bucket: the upper bound of the bucket below it
        result = np.where(found, result, prev_upper)
        valid = np.isinf(last_upper) & (last_upper > 0) & (nbuckets >= 2) & (observations != 0)
        result = np.where(valid, result, np.nan)
        counted = valid & ~np.isnan(q)[None, :] & (q >= 0)[None, :] & (q <= 1)[None, :]
        result = np.where(np.isnan(q)[None, :], np.nan, result)
        result = np.where((q < 0)[None, :], -np.inf, result)
        result = np.where((q > 1)[None, :], np.inf, result)
    return result, counted


def _monotonicity_info(
    ctx: FunctionContext, h: Buckets, counted: BOOL, arg: int, steps: I64
) -> None:
    """One info for all fixed samples, worded like Prometheus's merged annotation."""
    hit = counted & h.forced
    if not hit.any():
        return
    names = [lbl.metric_name for lbl in h.labels] if ctx.delayed_name_removal else [""]
    name = next((n for n in names if n), "")
    suffix = f" for metric name {go_quote(name)}" if name else ""
    gi, ti = np.nonzero(hit)
    t_ms = np.asarray(steps, dtype=np.int64)[ti]

    def rfc3339(ms: int) -> str:
        secs = int(ms / 1000)  # Go integer division truncates toward zero
        return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    text = (
        "input to histogram_quantile needed to be fixed for monotonicity (see "
        "https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)"
        f"{suffix}, from buckets {format_go_g(float(h.fix_low[gi, ti].min()))} to "
        f"{format_go_g(float(h.fix_high[gi, ti].max()))}, with a max diff of "
        f"{_go_g2(float(h.fix_diff[gi, ti].max()))}, over {len(gi)} samples from "
        f"{rfc3339(int(t_ms.min()))} to {rfc3339(int(t_ms.max()))}"
    )
    add_info(ctx, text, arg)


def _go_g2(x: float) -> str:
    """Go `%.2g`."""
    if not np.isfinite(x):
        return format_go_g(x)
    s = f"{x:.2g}"
    if "e" in s:
        mant, exp = s.split("e")
        return f"{mant}e{exp[0]}{exp[1:].lstrip('0').rjust(2, '0')}"
    return s


def _steps(ctx: FunctionContext, nsteps: int) -> I64:
    steps = np.asarray(ctx.steps, dtype=np.int64)
    return steps if len(steps) == nsteps else np.zeros(nsteps, dtype=np.int64)


@register("histogram_quantile")
def histogram_quantile(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    """`histogram_quantile(φ, buckets)` over classic `le` buckets."""
    vec = vector_arg(args, 1)
    nsteps = nsteps_of(ctx, vec)
    q = scalar_arg(args, 0, nsteps)
    warn_invalid_quantiles(ctx, q, 0)
    h = _collect(ctx, vec, 1)
    if h is None:
        return empty_vector(nsteps)
    result, counted = _bucket_quantile(h, q)
    _monotonicity_info(ctx, h, counted, 1, _steps(ctx, nsteps))
    return make_vector(ctx, h.labels, result, h.has_any, in_drop=h.drop)


@register("histogram_quantiles")
def histogram_quantiles(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    """`histogram_quantiles(buckets, "label", φ1, φ2, ...)`: one series per quantile,
    told apart by `label` set to the quantile (OpenMetrics float format)."""
    vec = vector_arg(args, 0)
    nsteps = nsteps_of(ctx, vec)
    label = string_arg(args, 1)
    qs = [scalar_arg(args, i, nsteps) for i in range(2, len(args))]
    for i, q in enumerate(qs):
        warn_invalid_quantiles(ctx, q, i + 2)
    h = _collect(ctx, vec, 0)
    if h is None:
        return empty_vector(nsteps)
    labels: list[Labels] = []
    values: list[F64] = []
    present: list[BOOL] = []
    drops: list[BOOL] = []
    has_any = h.has_any
    for q in qs:
        result, counted = _bucket_quantile(h, q)
        _monotonicity_info(ctx, h, counted, 0, _steps(ctx, nsteps))
        # a quantile argument may vary by step: one output series per distinct value
        for value in dict.fromkeys(q.tolist()):
            at = (q == value) if value == value else np.isnan(q)
            text = format_openmetrics_float(value)
            labels.extend(lbl.with_(label, text) for lbl in h.labels)
            values.append(result)
            present.append(has_any & at[None, :])
            if h.drop is not None:
                drops.append(h.drop)
    if not labels:
        return empty_vector(nsteps)
    return make_vector(
        ctx,
        labels,
        np.concatenate(values),
        np.concatenate(present),
        in_drop=np.concatenate(drops) if drops else None,
    )


def _rank_below(h: Buckets, bound: F64) -> F64:
    """Observations at or below `bound` (per group and step), by linear interpolation.

    The lowest bucket starts at 0 if its upper bound is positive, else at
    -Inf. Observations in a bucket of infinite width sit at its infinite end:
    all of the -Inf bucket is below any finite bound, none of the +Inf
    bucket is.
    """
    counts, present = h.counts, h.present
    nb = counts.shape[1]
    prev, last = _neighbours(present)
    upper3 = np.broadcast_to(h.upper[:, :, None], counts.shape)
    with np.errstate(all="ignore"):
        prev_upper = np.where(
            prev >= 0, np.take_along_axis(upper3, np.clip(prev, 0, nb - 1), axis=1), np.nan
        )
        first_upper = np.where(upper3 > 0, 0.0, -np.inf)
        lower = np.where(prev >= 0, prev_upper, first_upper)
        before = np.where(
            prev >= 0, np.take_along_axis(counts, np.clip(prev, 0, nb - 1), axis=1), 0.0
        )
        x = bound[None, None, :]
        at_or_above = present & (lower >= x)
        inside = present & (lower < x) & (upper3 > x)
        hit = at_or_above | inside
        found = hit.any(axis=1)
        b = np.argmax(hit, axis=1)[:, None, :]
        b_before = np.take_along_axis(before, b, axis=1)[:, 0, :]
        b_lower = np.take_along_axis(lower, b, axis=1)[:, 0, :]
        b_upper = np.take_along_axis(upper3, b, axis=1)[:, 0, :]
        b_count = np.take_along_axis(counts, b, axis=1)[:, 0, :]
        b_inside = np.take_along_axis(inside, b, axis=1)[:, 0, :]
        interp = b_before + (b_count - b_before) * (bound[None, :] - b_lower) / (b_upper - b_lower)
        interp = np.where(np.isinf(b_lower), b_count, interp)
        interp = np.where(np.isinf(b_upper), b_before, interp)
        rank = np.where(b_inside, interp, b_before)
        total = _take(counts, last)
        rank = np.where(found, rank, total)
        return np.minimum(rank, total)


@register("histogram_fraction")
def histogram_fraction(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    """`histogram_fraction(lower, upper, buckets)`: share of observations in [lower, upper]."""
    vec = vector_arg(args, 2)
    nsteps = nsteps_of(ctx, vec)
    lower = scalar_arg(args, 0, nsteps)
    upper = scalar_arg(args, 1, nsteps)
    h = _collect(ctx, vec, 2)
    if h is None:
        return empty_vector(nsteps)
    _, last = _neighbours(h.present)
    total = _take(h.counts, last)
    last_upper = _take(np.broadcast_to(h.upper[:, :, None], h.counts.shape), last)
    with np.errstate(all="ignore"):
        frac = (_rank_below(h, upper) - _rank_below(h, lower)) / total
        frac = np.where((lower >= upper)[None, :], 0.0, frac)
        nan = (
            (total == 0)
            | np.isnan(lower)[None, :]
            | np.isnan(upper)[None, :]
            | ~(np.isinf(last_upper) & (last_upper > 0))
        )
        frac = np.where(nan, np.nan, frac)
    return make_vector(ctx, h.labels, frac, h.has_any, in_drop=h.drop)


def _native_only(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    """These read native histograms only; float samples (all this engine stores) give nothing."""
    return empty_vector(nsteps_of(ctx, vector_arg(args, 0)))


for _name in ("histogram_count", "histogram_sum", "histogram_avg"):
    register(_name)(_native_only)
for _name in ("histogram_stddev", "histogram_stdvar"):
    register(_name)(_native_only)
