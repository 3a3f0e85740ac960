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

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

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

NumT = TypeVar("NumT", np.float64, np.int64)


@dataclass(slots=True)
class Buckets:
    """Classic histograms as `[groups x buckets x steps]`.

    `upper[g, b]` is bucket b's upper bound (+Inf padding where the group has
    fewer buckets), `counts` the cumulative counts with the monotonicity fix
    applied, `present` whether the bucket has a sample at that step; `prev`
    is the index of the previous present bucket (-1: none) and `last[g, t]`
    the last present bucket (-1: none).
    """

    labels: list[Labels]
    drop: BOOL | None
    upper: F64
    counts: F64
    present: BOOL
    prev: I64
    last: I64
    nbuckets: I64
    """Per (group, step): how many buckets are present."""
    static: BOOL | None
    """`[groups x buckets]` presence when every bucket is there at all steps or at none."""
    forced: BOOL
    """Per (group, step): a decrease had to be removed."""
    fix_low: F64
    fix_high: F64
    fix_diff: F64

    @property
    def has_any(self) -> BOOL:
        return self.last >= 0

    def at(self, arr: NDArray[NumT], b: I64) -> NDArray[NumT]:
        """`arr[g, b[g, t], t]` for every group and step (`arr` `[G x B x T]`
        contiguous, or `[G x B]` for per-bucket data); `b` is clipped into range."""
        ngroups, nb, nsteps = self.counts.shape
        safe = np.clip(b, 0, nb - 1)
        g = np.arange(ngroups)[:, None]
        if arr.ndim == 2:
            return np.take(arr.reshape(-1), g * nb + safe)
        t = np.arange(nsteps)[None, :]
        return np.take(arr.reshape(-1), (g * nb + safe) * nsteps + t)

    def prev_of(self, b: I64) -> I64:
        """Index of the present bucket below bucket `b[g, t]` (-1: none)."""
        if self.static is not None:
            return self.at(self.prev[:, :, 0], b)
        return self.at(self.prev, b)


def _collect(ctx: FunctionContext, vec: StepVector, arg: int) -> Buckets | None:
    """Group the bucket series of `vec`; warn about missing or malformed `le`."""
    group_of: dict[tuple[tuple[str, str], ...], int] = {}
    group_labels: list[Labels] = []
    rows: list[int] = []
    groups: list[int] = []
    bounds: list[float] = []
    parsed: dict[str, float | None] = {"": None}
    bad: list[int] = []
    le_key = ("le", "")
    # labels are sorted by name: bisect finds `le` in C, slicing drops it
    for i, lbl in enumerate(vec.labels):
        at = bisect_left(lbl, le_key)
        if at < len(lbl) and lbl[at][0] == "le":
            le = lbl[at][1]
            key = lbl[:at] + lbl[at + 1 :]
        else:
            le = ""
            key = lbl
        try:
            bound = parsed[le]
        except KeyError:
            bound = parsed[le] = parse_go_float(le)
        if bound is None:
            bad.append(i)
            continue
        g = group_of.get(key)
        if g is None:
            g = group_of[key] = len(group_labels)
            group_labels.append(tuple.__new__(Labels, key))
        rows.append(i)
        groups.append(g)
        bounds.append(bound)
    if bad:
        _warn_bad_le(ctx, vec, bad, arg)
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
    # counts where a bucket is absent are never read (every use is masked by `present`)
    shape = (ngroups, nbuckets, nsteps)
    if new_slot.all() and len(row_idx) == ngroups * nbuckets:
        # every histogram has the same buckets: rows in (group, bound) order are the array
        counts = np.take(vec.values, row_idx, axis=0).reshape(shape)
        present = np.take(vec.present, row_idx, axis=0).reshape(shape)
    elif new_slot.all():
        counts = np.zeros(shape)
        present = np.zeros(shape, dtype=np.bool_)
        counts[grp, slot] = vec.values[row_idx]
        present[grp, slot] = vec.present[row_idx]
    else:  # equal bounds written differently ("0.2", "2e-1"): coalesce by summing
        counts = np.zeros(shape)
        present = np.zeros(shape, dtype=np.bool_)
        pres_rows = vec.present[row_idx]
        np.add.at(counts, (grp, slot), np.where(pres_rows, vec.values[row_idx], 0.0))
        np.logical_or.at(present, (grp, slot), pres_rows)
    drop = None
    if vec.drop_name is not None:
        drop = np.zeros(ngroups, dtype=np.bool_)
        drop[grp] = vec.drop_name[row_idx]
    prev, last, nbuckets_present, static = _neighbours(present)
    fixed, forced, fix_low, fix_high, fix_diff = _fix_monotonic(upper, counts, present)
    return Buckets(
        labels=group_labels,
        drop=drop,
        upper=upper,
        counts=fixed,
        present=present,
        prev=prev,
        last=last,
        nbuckets=nbuckets_present,
        static=static,
        forced=forced,
        fix_low=fix_low,
        fix_high=fix_high,
        fix_diff=fix_diff,
    )


def _warn_bad_le(ctx: FunctionContext, vec: StepVector, bad: list[int], arg: int) -> None:
    for i in bad:
        if not vec.present[i].any():
            continue
        lbl = vec.labels[i]
        le = lbl.get("le")
        name = lbl.metric_name
        suffix = f" for metric name {go_quote(name)}" if name else ""
        add_warning(
            ctx,
            f'bucket label "le" is missing or has a malformed value of {go_quote(le)}{suffix}',
            arg,
        )


def _fix_monotonic(upper: F64, counts: F64, present: BOOL) -> tuple[F64, BOOL, F64, F64, F64]:
    """Remove decreases between successive present buckets, ignoring float noise.

    Prometheus's `ensureMonotonicAndIgnoreSmallDeltas`, one bucket at a time
    over all groups and steps: a count that differs from the last accepted
    one by a relative 1e-12 or less is float noise and is replaced silently;
    a smaller count is replaced and flags the sample. Returns (counts,
    forced[g, t], lowest and highest bound that was fixed, largest decrease
    removed) — the last three only for the info message.
    """
    ngroups, nb, nsteps = counts.shape
    fixed = counts  # fixed in place: the caller owns the array
    forced = np.zeros((ngroups, nsteps), dtype=np.bool_)
    fix_low = np.full((ngroups, nsteps), np.inf)
    fix_high = np.full((ngroups, nsteps), -np.inf)
    fix_diff = np.full((ngroups, nsteps), -np.inf)
    accepted = np.full((ngroups, nsteps), -np.inf)
    with np.errstate(all="ignore"):
        for b in range(nb):
            cur = counts[:, b, :].copy()
            here = present[:, b, :]
            diff = cur - accepted
            noise = (np.abs(diff) < _SMALL_DELTA * (np.abs(cur) + np.abs(accepted))) & (diff != 0)
            noise &= (cur != 0) & (accepted != 0) & here
            decrease = (diff < 0) & here
            decrease &= ~noise
            replace = decrease | noise
            if replace.any():
                np.copyto(fixed[:, b, :], accepted, where=replace)
            if decrease.any():
                forced |= decrease
                bound = upper[:, b : b + 1]
                np.copyto(fix_low, np.minimum(fix_low, bound), where=decrease)
                np.copyto(fix_high, np.maximum(fix_high, bound), where=decrease)
                np.copyto(fix_diff, np.maximum(fix_diff, -diff), where=decrease)
            np.copyto(accepted, cur, where=here & ~replace & (diff > 0))
    return fixed, forced, fix_low, fix_high, fix_diff


def _neighbours(present: BOOL) -> tuple[I64, I64, I64, BOOL | None]:
    """Per (group, bucket, step): index of the previous present bucket (-1:
    none); per (group, step): the last present bucket (-1: none) and the
    number present; and the `[groups x buckets]` presence if it is static."""
    ngroups, nb, nsteps = present.shape
    any_b = np.asarray(present.any(axis=2))
    if (any_b == present.all(axis=2)).all():
        # each bucket is there at every step or never: work on [groups x buckets]
        idx2 = np.where(any_b, np.arange(nb)[None, :], -1)
        run2 = np.maximum.accumulate(idx2, axis=1)
        prev2 = np.full((ngroups, nb), -1, dtype=np.int64)
        prev2[:, 1:] = run2[:, :-1]
        prev = np.broadcast_to(prev2[:, :, None], present.shape)
        last = np.broadcast_to(run2[:, -1:], (ngroups, nsteps))
        count = np.broadcast_to(any_b.sum(axis=1)[:, None], (ngroups, nsteps))
        return prev, last, count, any_b
    idx = np.where(present, np.arange(nb)[None, :, None], -1)
    running = np.maximum.accumulate(idx, axis=1)
    prev = np.full(present.shape, -1, dtype=np.int64)
    prev[:, 1:] = running[:, :-1]
    return prev, running[:, -1, :], present.sum(axis=1), None


def _bucket_quantile(h: Buckets, q: F64) -> tuple[F64, BOOL]:
    """Prometheus `BucketQuantile` for every group and step; also whether the
    monotonicity fix counted (it only does past the early returns)."""
    counts, present, last = h.counts, h.present, h.last
    nb = counts.shape[1]
    with np.errstate(all="ignore"):
        last_upper = h.at(h.upper, last)
        observations = h.at(counts, last)
        rank = q[None, :] * observations
        # the first present bucket below the last whose count reaches the rank
        # (counts are monotonic now, so this is a search like Go's sort.Search)
        candidate = counts >= rank[:, None, :]
        candidate &= np.arange(nb)[None, :, None] < last[:, None, :]
        if h.static is None or not h.static.all():
            candidate &= present
        found = candidate.any(axis=1)
        b = np.where(found, np.argmax(candidate, axis=1), last)
        b_prev = h.prev_of(b)
        has_prev = b_prev >= 0
        b_upper = h.at(h.upper, b)
        b_count = h.at(counts, b)
        prev_upper = np.where(has_prev, h.at(h.upper, b_prev), 0.0)
        prev_count = np.where(has_prev, h.at(counts, b_prev), 0.0)
        fraction = (rank - prev_count) / (b_count - prev_count)
        interp = prev_upper + (b_upper - prev_upper) * fraction
        result = np.where(~has_prev & (b_upper <= 0), b_upper, interp)
        # quantile in the +Inf bucket: the upper bound of the bucket below it
        result = np.where(found, result, prev_upper)
        valid = np.isinf(last_upper) & (last_upper > 0) & (h.nbuckets >= 2) & (observations != 0)
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
        for value in np.unique(q, equal_nan=True).tolist():
            at = np.isnan(q) if np.isnan(value) else (q == value)
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
    prev, last = h.prev, h.last
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
        total = h.at(counts, last)
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
    total = h.at(h.counts, h.last)
    last_upper = h.at(h.upper, h.last)
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
