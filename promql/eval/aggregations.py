"""Aggregation operators over `[series x steps]` arrays.

Series get a group id from their grouping labels (a Python pass over series);
the reductions then run per group over all steps at once: rows are ordered by
group and reduced with `ufunc.reduceat`. Sums follow Prometheus's Kahan
(Neumaier) compensated summation: a plain sum is exact enough whenever its
error bound is tiny next to the result, and the few (group, step) cells
where cancellation could bite are summed exactly with `math.fsum`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from promql import ast
from promql.errors import ExecutionError
from promql.eval.context import EvalContext
from promql.eval.gofmt import format_f, format_g, go_quote, labels_hash
from promql.eval.vectors import merge_same_labels, take_rows
from promql.value import StepScalar, StepVector, String
from storage.labels import METRIC_NAME, Labels

F64 = NDArray[np.float64]
BOOL = NDArray[np.bool_]

_EPS = 2.0**-53


def group_labels(
    labels: Sequence[Labels], grouping: tuple[str, ...], without: bool
) -> tuple[NDArray[np.intp], list[Labels]]:
    """Group id per series and each group's output labels (one dict per series)."""
    index: dict[object, int] = {}
    setdefault = index.setdefault
    if without:
        drop = tuple(set(grouping) | {METRIC_NAME})
        keys: list[object] = []
        for lbl in labels:
            d = dict(lbl)
            for n in drop:
                d.pop(n, None)
            keys.append(tuple(d.items()))
        ids = [setdefault(k, len(index)) for k in keys]
        out = [Labels.from_sorted(k) for k in index]  # type: ignore[arg-type]
    elif grouping:
        names = tuple(sorted(set(grouping)))
        if len(names) == 1:
            name = names[0]
            ids = [setdefault(dict(lbl).get(name, ""), len(index)) for lbl in labels]
            out = [Labels.from_sorted([(name, v)] if v else []) for v in index]  # type: ignore[list-item]
        else:
            ids = [
                setdefault(tuple(map(dict(lbl).get, names, [""] * len(names))), len(index))
                for lbl in labels
            ]
            out = [
                Labels.from_sorted([(n, v) for n, v in zip(names, k, strict=True) if v])  # type: ignore[call-overload]
                for k in index
            ]
    else:
        ids = [0] * len(labels)
        out = [Labels()] if len(labels) else []
    return np.asarray(ids, dtype=np.intp).reshape(len(labels)), out


class _Groups:
    """Rows sorted by group, with `reduceat` boundaries."""

    def __init__(self, gid: NDArray[np.intp], ngroups: int) -> None:
        self.gid = gid
        self.n = ngroups
        self.order = np.argsort(gid, kind="stable")
        sorted_ids = gid[self.order]
        self.starts = np.searchsorted(sorted_ids, np.arange(ngroups))
        self.sizes = np.diff(np.append(self.starts, len(gid)))

    def reduce(self, ufunc: np.ufunc, arr: NDArray[np.generic]) -> NDArray[np.generic]:
        return ufunc.reduceat(arr[self.order], self.starts, axis=0)  # type: ignore[no-any-return]

    def add(self, arr: F64) -> F64:
        """Per-group sums; a one-hot matrix product (BLAS) when few groups and finite data."""
        if self.n <= 64 and arr.shape[1] > 1 and np.isfinite(arr).all():
            onehot = np.zeros((self.n, len(self.gid)))
            onehot[self.gid, np.arange(len(self.gid))] = 1.0
            return onehot @ arr  # type: ignore[no-any-return]
        return self.reduce(np.add, arr)  # type: ignore[return-value]


def kahan_sum(groups: _Groups, values: F64, present: BOOL) -> F64:
    """Per-group sums over present values, compensated like Prometheus's Kahan sum."""
    v = np.where(present, values, 0.0)
    with np.errstate(all="ignore"):
        total = groups.add(v)
        finite = np.isfinite(total)
        mag = groups.add(np.abs(v))
    n = groups.sizes[:, None]
    suspicious = finite & np.isfinite(mag) & ((n - 1) * _EPS * mag > 1e-10 * np.abs(total))
    suspicious &= mag > 0
    if suspicious.any():
        vs = v[groups.order]
        for g, j in zip(*np.nonzero(suspicious), strict=True):
            lo = groups.starts[g]
            total[g, j] = math.fsum(vs[lo : lo + groups.sizes[g], j].tolist())
    return total  # type: ignore[no-any-return]


def aggregate(
    ctx: EvalContext,
    e: ast.AggregateExpr,
    vec: StepVector,
    param: StepScalar | String | None,
) -> StepVector:
    """Evaluate `e.op` over `vec`; `param` is the evaluated parameter, if any."""
    op = e.op
    steps = vec.values.shape[1]
    if op == "count_values":
        assert isinstance(param, String)
        return _count_values(e, vec, param.value)
    if op in ("topk", "bottomk", "limitk", "limit_ratio"):
        assert isinstance(param, StepScalar)
        return _select_k(ctx, e, vec, param.values)
    gid, glabels = group_labels(vec.labels, e.grouping, e.without)
    ngroups = len(glabels)
    if ngroups == 0:
        return StepVector([], np.zeros((0, steps)), np.zeros((0, steps), dtype=bool))
    groups = _Groups(gid, ngroups)
    present = vec.present
    count = np.rint(groups.add(present.astype(np.float64))).astype(np.int64)
    out_present = count > 0
    values: F64
    with np.errstate(all="ignore"):
        if op == "sum":
            values = kahan_sum(groups, vec.values, present)
        elif op == "avg":
            values = _avg(groups, vec.values, present, count)
        elif op == "count":
            values = count.astype(np.float64)
        elif op == "group":
            values = np.ones(count.shape)
        elif op in ("min", "max"):
            fill = np.where(present, vec.values, np.nan)
            values = groups.reduce(np.fmin if op == "min" else np.fmax, fill)
        elif op in ("stddev", "stdvar"):
            values = _variance(groups, vec.values, present, count)
            if op == "stddev":
                values = np.sqrt(values)
        elif op == "quantile":
            assert isinstance(param, StepScalar)
            values = _quantile(ctx, e, groups, vec.values, present, param.values)
        else:
            raise ExecutionError(f"unknown aggregation operator {op!r}")
    drop = None
    if vec.drop_name is not None and any(n == METRIC_NAME for n in e.grouping) and not e.without:
        flags = groups.reduce(np.logical_or, vec.drop_name & present.any(axis=1))
        drop = np.asarray(flags, dtype=bool)
    return StepVector(glabels, values, out_present, drop)


def _avg(groups: _Groups, values: F64, present: BOOL, count: NDArray[np.int64]) -> F64:
    total = kahan_sum(groups, values, present)
    n = np.maximum(count, 1)
    mean = total / n
    nonfinite = groups.reduce(np.add, (present & ~np.isfinite(values)).astype(np.int64))
    overflow = ~np.isfinite(total) & (nonfinite == 0)
    if overflow.any():
        # The sum overflowed although every value is finite: average scaled values
        # (Prometheus switches to an incremental mean in this case).
        scaled = np.where(present, values / n[groups.gid], 0.0)
        alt = kahan_sum(groups, scaled, present)
        mean = np.where(overflow, alt, mean)
    return mean  # type: ignore[no-any-return]


def _variance(groups: _Groups, values: F64, present: BOOL, count: NDArray[np.int64]) -> F64:
    """Population variance, shifted by each group's first value for stability.

    Shifting makes identical values give exactly 0 (as Prometheus's Welford
    update does) and keeps cancellation small when values sit far from 0.
    """
    n = np.maximum(count, 1)
    steps = values.shape[1]
    ordered_present = present[groups.order]
    first_row = np.zeros((groups.n, steps), dtype=np.intp)
    for g in range(groups.n):
        lo = groups.starts[g]
        block = ordered_present[lo : lo + groups.sizes[g]]
        first_row[g] = groups.order[lo + np.argmax(block, axis=0)]
    shift = values[first_row, np.arange(steps)[None, :]]
    d = np.where(present, values - shift[groups.gid], 0.0)
    s1 = groups.reduce(np.add, d)
    s2 = groups.reduce(np.add, d * d)
    var = (s2 - s1 * s1 / n) / n
    return np.where(var < 0, 0.0, var)  # type: ignore[no-any-return]


def _quantile(
    ctx: EvalContext,
    e: ast.AggregateExpr,
    groups: _Groups,
    values: F64,
    present: BOOL,
    q: F64,
) -> F64:
    for qv in np.unique(q[~((q >= 0) & (q <= 1))]).tolist():
        pos = ctx.position(e.param) if e.param is not None else ""
        ctx.annotations.warn(
            f"PromQL warning: quantile value should be between 0 and 1, got {format_g(qv)} {pos}"
        )
    steps = values.shape[1]
    out = np.full((groups.n, steps), np.nan)
    # NaN sorts first (as Prometheus's sort does), absent rows last.
    key = np.where(present, np.where(np.isnan(values), -np.inf, values), np.inf)
    rank_nan = np.where(present & np.isnan(values), 0, np.where(present, 1, 2))
    for g in range(groups.n):
        rows = groups.order[groups.starts[g] : groups.starts[g] + groups.sizes[g]]
        order = np.lexsort((key[rows], rank_nan[rows]), axis=0)
        sv = np.take_along_axis(values[rows], order, axis=0)
        n = present[rows].sum(axis=0).astype(np.float64)
        rank = np.nan_to_num(q * (n - 1), nan=0.0, posinf=0.0, neginf=0.0)
        lower = np.maximum(0, np.floor(rank))
        upper = np.minimum(n - 1, lower + 1)
        weight = rank - np.floor(rank)
        cols = np.arange(steps)
        li = np.clip(lower, 0, max(len(rows) - 1, 0)).astype(np.intp)
        ui = np.clip(upper, 0, max(len(rows) - 1, 0)).astype(np.intp)
        res = sv[li, cols] * (1 - weight) + sv[ui, cols] * weight
        res = np.where(q < 0, -np.inf, np.where(q > 1, np.inf, res))
        res = np.where(np.isnan(q) | (n == 0), np.nan, res)
        out[g] = res
    return out


def _count_values(e: ast.AggregateExpr, vec: StepVector, label: str) -> StepVector:
    if not _valid_label_name(label):
        raise ExecutionError(f"invalid label name {go_quote(label)}")
    steps = vec.values.shape[1]
    gid, glabels = group_labels(vec.labels, e.grouping, e.without)
    rows, cols = np.nonzero(vec.present)
    if len(rows) == 0:
        return StepVector([], np.zeros((0, steps)), np.zeros((0, steps), dtype=bool))
    vals = vec.values[rows, cols]
    uniq, inv = np.unique(vals, return_inverse=True)
    strs = [format_f(v) for v in uniq.tolist()]
    key = gid[rows].astype(np.int64) * len(uniq) + inv.ravel()
    out_keys, out_idx = np.unique(key, return_inverse=True)
    out_idx = out_idx.ravel()
    counts = np.bincount(out_idx * steps + cols, minlength=len(out_keys) * steps)
    counts = counts.reshape(len(out_keys), steps)
    labels = []
    for k in out_keys.tolist():
        g, u = divmod(k, len(uniq))
        labels.append(glabels[g].with_(label, strs[u]))
    return merge_same_labels(StepVector(labels, counts.astype(np.float64), counts > 0))


def _valid_label_name(name: str) -> bool:
    """Prometheus 3 accepts any non-empty UTF-8 label name."""
    if not name:
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _select_k(ctx: EvalContext, e: ast.AggregateExpr, vec: StepVector, k: F64) -> StepVector:
    """topk, bottomk, limitk, limit_ratio: a per-step subset of the input series."""
    op = e.op
    steps = vec.values.shape[1]
    pos = ctx.position(e.param) if e.param is not None else ""
    if op == "limit_ratio":
        if np.isnan(k).any():
            raise ExecutionError("Ratio value is NaN")
        for r in np.unique(k[(k > 1) | (k < -1)]).tolist():
            cap = 1.0 if r > 1 else -1.0
            ctx.annotations.warn(
                "PromQL warning: ratio value should be between -1 and 1, "
                f"got {format_g(r)}, capping to {format_g(cap)} {pos}"
            )
        ratio = np.clip(k, -1.0, 1.0)
        offs = np.array(
            [labels_hash(lbl) / float(2**64 - 1) for lbl in vec.labels], dtype=np.float64
        )[:, None]
        keep = ((ratio >= 0) & (offs < ratio)) | ((ratio < 0) & (offs >= 1.0 + ratio))
        return StepVector(vec.labels, vec.values, vec.present & keep, vec.drop_name)
    if np.isnan(k).any():
        raise ExecutionError("Parameter value is NaN")
    if (np.abs(k) >= 2.0**63).any():
        raise ExecutionError(f"Scalar value {format_g(float(k[0]))} overflows int64")
    kint = np.trunc(k).astype(np.int64)
    gid, _ = group_labels(vec.labels, e.grouping, e.without)
    present = vec.present
    if op == "limitk":
        rank = _rank_in_group(gid, present, None)
    else:
        vals = vec.values
        nan = np.isnan(vals)
        # Lower sort key = preferred: NaN is never preferred over a number.
        key = np.where(nan, np.inf, -vals if op == "topk" else vals)
        rank = _rank_in_group(gid, present, (key, nan))
    selected = present & (rank < kint[None, :])
    out = StepVector(vec.labels, vec.values, selected, vec.drop_name)
    if steps == 1 and op in ("topk", "bottomk") and len(vec.labels):
        out = _order_instant(out, gid, op)
    return out


def _rank_in_group(
    gid: NDArray[np.intp], present: BOOL, keys: tuple[F64, BOOL] | None
) -> NDArray[np.int64]:
    """Each present series' rank within its group at each step (absent rows rank last)."""
    n, steps = present.shape
    absent = ~present
    if keys is None:
        key_cols = (np.zeros((n, steps)),)
    else:
        key_cols = (keys[0], keys[1].astype(np.int8))
    rowidx = np.broadcast_to(np.arange(n)[:, None], (n, steps))
    gcol = np.broadcast_to(gid[:, None], (n, steps))
    # lexsort: last key is primary -> group, then absent, then NaN flag, then value, then row.
    order = np.lexsort((rowidx, *key_cols[:1], *key_cols[1:], absent, gcol), axis=0)
    sorted_g = np.take_along_axis(gcol, order, axis=0)
    pos = np.broadcast_to(np.arange(n)[:, None], (n, steps))
    new_group = np.ones((n, steps), dtype=bool)
    new_group[1:] = sorted_g[1:] != sorted_g[:-1]
    group_start = np.maximum.accumulate(np.where(new_group, pos, 0), axis=0)
    rank_sorted = pos - group_start
    rank = np.empty((n, steps), dtype=np.int64)
    np.put_along_axis(rank, order, rank_sorted, axis=0)
    return rank


def _order_instant(vec: StepVector, gid: NDArray[np.intp], op: str) -> StepVector:
    """Instant topk/bottomk output order: by group, then best value first."""
    rows = np.nonzero(vec.present[:, 0])[0].tolist()
    first_seen: dict[int, int] = {}
    for r in range(len(gid)):
        first_seen.setdefault(int(gid[r]), r)
    vals = vec.values[:, 0]

    def cmp(a: int, b: int) -> int:
        ga, gb = first_seen[int(gid[a])], first_seen[int(gid[b])]
        if ga != gb:
            return -1 if ga < gb else 1
        va, vb = vals[a], vals[b]
        if op == "topk":
            va, vb = -va, -vb
        if math.isnan(va) != math.isnan(vb):
            return 1 if math.isnan(va) else -1
        if va != vb:
            return -1 if va < vb else 1
        return 0

    rows.sort(key=functools.cmp_to_key(cmp))
    rest = [r for r in range(len(gid)) if r not in set(rows)]
    return take_rows(vec, rows + rest)
