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
from operator import itemgetter

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
        fast = _group_without_columns(labels, drop)
        if fast is not None:
            return fast
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
        fast = _group_by_columns(labels, names)
        if fast is not None:
            return fast
        if len(names) == 1:
            name = names[0]
            ids = [setdefault(lbl.get(name), len(index)) for lbl in labels]
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


def _group_by_columns(
    labels: Sequence[Labels], names: tuple[str, ...]
) -> tuple[NDArray[np.intp], list[Labels]] | None:
    """`group_labels` for `by (names)` when every series holds each name at one position.

    The usual case (series of one metric share their label names): each
    name's values are read as a column with C-level `map`s, no dict per
    series. None when the shape differs, for the general path.
    """
    if not labels:
        return None
    columns = [_column(labels, name) for name in names]
    if any(col is None for col in columns):
        return None
    keys: list[object] = list(zip(*columns, strict=True)) if len(columns) > 1 else columns[0]  # type: ignore[assignment]
    first_seen = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    ids = np.fromiter(map(first_seen.__getitem__, keys), dtype=np.intp, count=len(keys))
    if len(columns) == 1:
        out = [Labels.from_sorted([(names[0], v)]) for v in first_seen]  # type: ignore[list-item]
    else:
        out = [Labels.from_sorted(zip(names, k, strict=True)) for k in first_seen]  # type: ignore[call-overload]
    return ids, out


def _group_without_columns(
    labels: Sequence[Labels], drop: tuple[str, ...]
) -> tuple[NDArray[np.intp], list[Labels]] | None:
    """`group_labels` for `without (drop)` when all series have the same label names.

    Checked position by position with C-level `map`s; the group key is then
    the tuple of the kept positions' pairs, which is also the group's label
    set. None when the names differ.
    """
    if not labels:
        return None
    first = labels[0]
    if set(map(len, labels)) != {len(first)}:
        return None
    kept = []
    for position, (name, _) in enumerate(first):
        if set(map(itemgetter(0), map(itemgetter(position), labels))) != {name}:
            return None
        if name not in drop:
            kept.append(position)
    keys: list[tuple[tuple[str, str], ...]]
    if not kept:
        keys = [()] * len(labels)
    elif len(kept) == 1:
        keys = list(zip(map(itemgetter(kept[0]), labels)))
    else:
        keys = list(map(itemgetter(*kept), labels))
    first_seen = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    ids = np.fromiter(map(first_seen.__getitem__, keys), dtype=np.intp, count=len(keys))
    return ids, [Labels.from_sorted(k) for k in first_seen]


def _column(labels: Sequence[Labels], name: str) -> list[str] | None:
    """Every series' value of `name` if all hold it at the position it has in the first."""
    names = [n for n, _ in labels[0]]
    if name not in names:
        return None
    position = names.index(name)
    try:
        pairs = list(map(itemgetter(position), labels))
    except IndexError:
        return None
    if set(map(itemgetter(0), pairs)) != {name}:
        return None
    return list(map(itemgetter(1), pairs))


class _Groups:
    """Rows sorted by group, with `reduceat` boundaries."""

    def __init__(self, gid: NDArray[np.intp], ngroups: int) -> None:
        self.gid = gid
        self.n = ngroups
        self.order = np.argsort(gid, kind="stable")
        sorted_ids = gid[self.order]
        self.starts = np.searchsorted(sorted_ids, np.arange(ngroups))
        self.sizes = np.diff(np.append(self.starts, len(gid)))
        self._flat: NDArray[np.intp] | None = None

    def reduce(self, ufunc: np.ufunc, arr: NDArray[np.generic]) -> NDArray[np.generic]:
        return ufunc.reduceat(arr[self.order], self.starts, axis=0)

    def add(self, arr: F64) -> F64:
        """Per-group sums over all steps with one `bincount` (no sorting, no BLAS)."""
        steps = arr.shape[1]
        if self._flat is None:
            self._flat = (self.gid[:, None] * steps + np.arange(steps)).ravel()
        sums = np.bincount(self._flat, weights=arr.ravel(), minlength=self.n * steps)
        return sums.reshape(self.n, steps).astype(np.float64, copy=False)


def kahan_sum(groups: _Groups, values: F64, present: BOOL) -> F64:
    """Per-group sums over present values, compensated like Prometheus's Kahan sum."""
    v = np.where(present, values, 0.0)
    with np.errstate(all="ignore"):
        total = groups.add(v)
        if v.size == 0 or v.min() >= 0.0:
            return total  # no negative terms (and no NaN): nothing can cancel
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
    return total


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
            values = np.asarray(groups.reduce(np.fmin if op == "min" else np.fmax, fill))
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
    return mean


def _variance(groups: _Groups, values: F64, present: BOOL, count: NDArray[np.int64]) -> F64:
    """Population variance, shifted by each group's first value for stability.

    Shifting makes identical values give exactly 0 (as Prometheus's Welford
    update does) and keeps cancellation small when values sit far from 0.
    """
    n = np.maximum(count, 1)
    steps = values.shape[1]
    # First present row of each group at each step (rows sorted by group).
    ordered_present = present[groups.order]
    pos = np.where(ordered_present, np.arange(len(groups.order))[:, None], len(groups.order))
    first = np.minimum.reduceat(pos, groups.starts, axis=0)
    first = np.minimum(first, len(groups.order) - 1)
    shift = values[groups.order[first], np.arange(steps)[None, :]]
    d = np.where(present, values - shift[groups.gid], 0.0)
    s1 = groups.add(d)
    s2 = groups.add(d * d)
    var = (s2 - s1 * s1 / n) / n
    return np.where(var < 0, 0.0, var)


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
    # Sort every column by (group, present-NaN first, value, absent last); the
    # present values of group g then sit at sorted positions starts[g] + 0..n-1.
    key = np.where(present, np.where(np.isnan(values), -np.inf, values), np.inf)
    rank_nan = np.where(present & np.isnan(values), 0, np.where(present, 1, 2))
    gcol = np.broadcast_to(groups.gid[:, None], values.shape)
    order = np.lexsort((key, rank_nan, gcol), axis=0)
    sv = np.take_along_axis(values, order, axis=0)
    n = present.astype(np.int64)
    n = groups.add(n.astype(np.float64)).round().astype(np.int64)
    rank = np.nan_to_num(q[None, :] * (n - 1), nan=0.0, posinf=0.0, neginf=0.0)
    lower = np.maximum(0.0, np.floor(rank))
    upper = np.minimum(np.maximum(n - 1, 0), lower + 1)
    weight = rank - np.floor(rank)
    base = groups.starts[:, None]
    top = len(values) - 1
    li = np.clip(base + lower.astype(np.int64), 0, top)
    ui = np.clip(base + upper.astype(np.int64), 0, top)
    cols = np.arange(steps)[None, :]
    res = sv[li, cols] * (1 - weight) + sv[ui, cols] * weight
    res = np.where(q[None, :] < 0, -np.inf, np.where(q[None, :] > 1, np.inf, res))
    return np.where(np.isnan(q)[None, :] | (n == 0), np.nan, res)


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
    gid, glabels = group_labels(vec.labels, e.grouping, e.without)
    present = vec.present
    fast = _select_fast(op, gid, len(glabels), vec.values, present, kint)
    if fast is not None:
        out = StepVector(vec.labels, vec.values, fast, vec.drop_name)
        if steps == 1 and op in ("topk", "bottomk") and len(vec.labels):
            out = _order_instant(out, gid, op)
        return out
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


def _select_fast(
    op: str, gid: NDArray[np.intp], ngroups: int, values: F64, present: BOOL, k: NDArray[np.int64]
) -> BOOL | None:
    """Per-group selection without a full sort, when `k` is the same at every step.

    limitk keeps the first k present series (series order); topk/bottomk use
    `_smallest_k`, valid when all present values are finite (otherwise the
    NaN/Inf ordering rules need the full ranking). None: use the general path.
    """
    if len(k) == 0 or not (k == k[0]).all() or ngroups > 256:
        return None
    kk = int(k[0])
    if kk < 1:
        return np.zeros_like(present)
    if op not in ("limitk", "topk", "bottomk"):
        return None
    if op != "limitk":
        vals = np.where(present, values, 0.0)
        if not np.isfinite(vals).all():
            return None
    if ngroups == 1 and op != "limitk" and kk < len(gid):  # no per-group copies
        key = np.where(present, -values if op == "topk" else values, np.inf)
        return _smallest_k(key, kk) & present
    selected = np.zeros_like(present)
    for g in range(ngroups):
        rows = np.nonzero(gid == g)[0]
        p = present[rows]
        if op == "limitk":
            selected[rows] = p & (np.cumsum(p, axis=0) <= kk)
            continue
        if kk >= len(rows):
            selected[rows] = p
            continue
        v = values[rows]
        key = np.where(p, -v if op == "topk" else v, np.inf)
        selected[rows] = _smallest_k(key, kk) & p
    return selected


_BLOCKS = 128


def _smallest_k(key: F64, k: int) -> BOOL:
    """Per column, the `k` rows with the smallest keys (ties: lower row first); 0 < k < rows.

    Prometheus's heap keeps the first series seen among equal values, hence
    the tie rule. A full partition of every column costs ~10 ns per value.
    Instead the rows are cut into `_BLOCKS` blocks: the k-th smallest block
    minimum is an upper `bound` of the k-th smallest key (k blocks hold a key
    at most that small). Where fewer than k keys are below the bound, the
    k-th smallest key is the bound itself: the keys below it are taken, then
    the first rows equal to it. Elsewhere only keys at or under the bound,
    typically a few times k per column, are ranked exactly.
    """
    n, steps = key.shape
    size = -(-n // _BLOCKS)
    full = n // size
    mins = key[: full * size].reshape(full, size, steps).min(axis=1)
    if full * size < n:
        mins = np.vstack((mins, key[full * size :].min(axis=0)))
    bound = key.max(axis=0) if len(mins) <= k else np.partition(mins, k - 1, axis=0)[k - 1]
    below = key < bound
    need = k - below.sum(axis=0)
    at_bound = need > 0
    selected = below & at_bound if not at_bound.all() else below
    if at_bound.any():
        flat = np.flatnonzero((key == bound) & at_bound)
        flat = flat[_first_per_column(flat % steps, need)]
        selected.reshape(-1)[flat] = True
    if at_bound.all():
        return selected
    flat = np.flatnonzero(below & ~at_bound)
    if len(flat) > 16 * k * steps + n:  # crowded under the bound: partition every column
        part = np.argpartition(key, k - 1, axis=0)[:k]
        picked = np.zeros((n, steps), dtype=bool)
        np.put_along_axis(picked, part, True, axis=0)
        return np.where(at_bound, selected, picked)
    rows, cols = np.divmod(flat, steps)
    order = np.lexsort((rows, key.reshape(-1)[flat], cols))
    flat = flat[order][_first_per_column(cols[order], np.full(steps, k))]
    selected.reshape(-1)[flat] = True
    return selected


def _first_per_column(cols: NDArray[np.int64], limit: NDArray[np.int64]) -> NDArray[np.intp]:
    """Positions of the first `limit[c]` entries of each column `c` in `cols`, in order."""
    small = cols.astype(np.int16 if len(limit) < 2**15 else np.int32)
    order = np.argsort(small, kind="stable")  # a radix sort for small ints
    grouped = cols[order]
    starts = np.flatnonzero(np.diff(grouped, prepend=-1))
    sizes = np.diff(starts, append=len(grouped))
    rank = np.arange(len(grouped)) - np.repeat(starts, sizes)
    return order[rank < limit[grouped]]


def _rank_in_group(
    gid: NDArray[np.intp], present: BOOL, keys: tuple[F64, BOOL] | None
) -> NDArray[np.int64]:
    """Each present series' rank within its group at each step (absent rows rank last)."""
    n, steps = present.shape
    absent = ~present
    key_cols: tuple[NDArray[np.generic], ...] = (np.zeros((n, steps)),)
    if keys is not None:
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
