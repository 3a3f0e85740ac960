"""Where native histograms meet the float evaluator: calls, aggregations, operators.

The evaluator asks here first whenever an operand holds histogram cells.
Histogram-aware functions (`histfuncs.HIST_FUNCTIONS`) get them; every
other function, aggregation or operator sees the floats only, as in
Prometheus, where float-only operations skip histogram samples (with the info
annotations Prometheus adds). `sum`/`avg` and `+ - * /` with histograms are
computed here with `histmath.combine` over all groups and steps at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from promql import ast
from promql.eval import histmath as hm
from promql.eval.context import EvalContext
from promql.eval.functions.common import add_info
from promql.eval.functions.registry import FunctionContext, FunctionDef
from promql.eval.histfuncs import HIST_FUNCTIONS, float_range, hist_mask, stack
from promql.eval.vectors import floats_only, histograms_only
from promql.value import EvalValue, HistCells, StepRange, StepScalar, StepVector, String
from remote_write.histograms import HistogramBatch

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

PRESENCE_FUNCS = frozenset(
    {"count_over_time", "present_over_time", "ts_of_last_over_time", "ts_of_first_over_time"}
)
"""Float implementations that look only at which samples exist: histograms count."""
LABEL_FUNCS = frozenset({"label_replace", "label_join"})
"""Keep rows in order and change labels only: histogram cells ride along."""


def has_hist(v: EvalValue) -> bool:
    return isinstance(v, StepVector | StepRange) and v.hist is not None and v.hist.any()


def call(fctx: FunctionContext, fdef: FunctionDef, args: list[EvalValue]) -> EvalValue:
    """A function call some of whose arguments hold histograms."""
    hfn = HIST_FUNCTIONS.get(fdef.name)
    if hfn is not None:
        return hfn(fctx, args)
    if fdef.name in PRESENCE_FUNCS:
        return fdef.impl(fctx, args)
    if fdef.name in LABEL_FUNCS:
        vec = args[0]
        assert isinstance(vec, StepVector)
        out = fdef.impl(fctx, args)
        if isinstance(out, StepVector) and len(out.labels) == len(vec.labels):
            out.hist = vec.hist
            out.present = vec.present.copy()
        return out
    stripped: list[EvalValue] = []
    for a in args:
        if isinstance(a, StepVector):
            stripped.append(floats_only(a))
        elif isinstance(a, StepRange) and a.hist is not None:
            _ignored_in_range_info(fctx, a)
            stripped.append(float_range(a, empty_where_hist=False))
        else:
            stripped.append(a)
    return fdef.impl(fctx, stripped)


def _ignored_in_range_info(fctx: FunctionContext, rng: StepRange) -> None:
    assert rng.hist is not None
    is_h = (rng.hist.ref >= 0).astype(np.int64)
    c = np.concatenate(([0], np.cumsum(is_h)))
    nh = c[rng.hi] - c[rng.lo]
    n = rng.hi - rng.lo
    both = (nh > 0) & (nh < n)
    for i in np.flatnonzero(both.any(axis=1)).tolist():
        add_info(
            fctx,
            "ignored histograms in a range containing both floats and histograms "
            f'for metric name "{rng.labels[i].metric_name}"',
            0,
        )


# --- aggregations -----------------------------------------------------------


def aggregate(
    ctx: EvalContext, e: ast.AggregateExpr, vec: StepVector, param: object, float_agg
) -> StepVector:
    """`e.op` over a vector with histogram cells (float_agg: the float aggregation)."""
    from promql.eval.aggregations import group_labels

    op = e.op
    hmask = hist_mask(vec)
    pos = ctx.position(e)
    if op in ("count", "group"):
        return float_agg(vec)
    if op in ("limitk", "limit_ratio"):  # choose series, not values: histograms count
        out = float_agg(vec)
        return _reattach(out, vec)
    if op == "count_values":
        assert isinstance(param, String)
        return _count_values(e, vec, param.value, float_agg)
    if op not in ("sum", "avg"):
        if op != "count_values":
            ctx.annotations.info(
                f"PromQL info: ignored histogram in {op} aggregation {pos}".rstrip()
            )
        return float_agg(floats_only(vec))
    steps = vec.values.shape[1]
    gid, glabels = group_labels(vec.labels, e.grouping, e.without)
    ng = len(glabels)
    fmask = vec.present & ~hmask
    fcount = np.zeros((ng, steps))
    np.add.at(fcount, gid, fmask.astype(np.float64))
    hcount = np.zeros((ng, steps))
    np.add.at(hcount, gid, hmask.astype(np.float64))
    mixed = (fcount > 0) & (hcount > 0)
    if mixed.any():
        ctx.annotations.warn(
            "PromQL warning: encountered a mix of histograms and floats for aggregation "
            f"{pos}".rstrip()
        )
    floats = float_agg(floats_only(vec))
    # float results only where the group had no histogram at that step
    fl_index = {lbl: i for i, lbl in enumerate(floats.labels)}
    for g, lbl in enumerate(glabels):
        i = fl_index.get(lbl)
        if i is not None:
            floats.present[i] &= hcount[g] == 0
    assert vec.hist is not None
    si, sj = np.nonzero(hmask & ~mixed[gid])
    out_cell = gid[si] * steps + sj
    uniq, inv = np.unique(out_cell, return_inverse=True)
    rows = vec.hist.ref[si, sj]
    weight = np.ones(len(rows))
    if op == "avg":
        weight = 1.0 / hcount[gid[si], sj]
    comb = hm.combine(vec.hist.table, rows, inv, weight, len(uniq))
    bad = comb.mixed_schemas | comb.custom_mismatch
    if comb.mixed_schemas.any():
        name = _common_name(vec)
        ctx.annotations.warn(
            "PromQL warning: vector contains a mix of histograms with exponential and custom "
            f'buckets schemas for metric name "{name}" {pos}'.rstrip()
        )
    if comb.custom_mismatch.any():
        ctx.annotations.warn(
            "PromQL warning: vector contains histograms with incompatible custom buckets "
            f'for metric name "{_common_name(vec)}" {pos}'.rstrip()
        )
    ref = np.full((ng, steps), -1, dtype=np.int64)
    good = ~bad
    ref.reshape(-1)[uniq[good]] = np.flatnonzero(good)
    present = ref >= 0
    hist_vec = StepVector(glabels, np.full((ng, steps), np.nan), present, None)
    hist_vec.hist = HistCells(ref, comb.table)
    # one row per group: where floats exist use them, else the histogram
    return _merge_by_labels(floats, hist_vec)


def _count_values(e: ast.AggregateExpr, vec: StepVector, label: str, float_agg) -> StepVector:
    """count_values where some samples are histograms: those count by their text."""
    from promql.eval.aggregations import group_labels
    from promql.eval.gofmt import format_f
    from promql.eval.histfuncs import histogram_string
    from promql.eval.vectors import merge_same_labels

    float_agg(floats_only(vec))  # the label name check and its error
    assert vec.hist is not None
    steps = vec.values.shape[1]
    gid, glabels = group_labels(vec.labels, e.grouping, e.without)
    rows, cols = np.nonzero(vec.present)
    refs = vec.hist.ref[rows, cols]
    texts: dict[int, str] = {}
    keys = []
    for r, c, ref in zip(rows.tolist(), cols.tolist(), refs.tolist(), strict=True):
        if ref >= 0:
            t = texts.get(ref)
            if t is None:
                t = texts[ref] = histogram_string(vec.hist.table, ref)
        else:
            t = format_f(float(vec.values[r, c]))
        keys.append((int(gid[r]), t))
    index: dict[tuple[int, str], int] = {}
    out_id = np.array([index.setdefault(k, len(index)) for k in keys], dtype=np.int64)
    counts = np.bincount(out_id * steps + cols, minlength=len(index) * steps).reshape(
        len(index), steps
    )
    labels = [glabels[g].with_(label, t) for (g, t) in index]
    return merge_same_labels(StepVector(labels, counts.astype(np.float64), counts > 0))


def _reattach(out: StepVector, src: StepVector) -> StepVector:
    """Give `out` (rows taken from `src` by label) the histogram cells of `src`."""
    if src.hist is None:
        return out
    index = {lbl: i for i, lbl in enumerate(src.labels)}
    rows = np.array([index.get(lbl, -1) for lbl in out.labels], dtype=np.int64)
    if (rows < 0).any():
        return out
    ref = np.where(out.present, src.hist.ref[rows], -1)
    out.hist = HistCells(ref, src.hist.table)
    return out


def _common_name(vec: StepVector) -> str:
    names = {lbl.metric_name for lbl in vec.labels}
    return names.pop() if len(names) == 1 else ""


def _merge_by_labels(a: StepVector, b: StepVector) -> StepVector:
    """Rows of `a` and `b` with equal labels become one (never both present at a step)."""
    index = {lbl: i for i, lbl in enumerate(a.labels)}
    if not any(lbl in index for lbl in b.labels):
        return stack(a, b)
    out = stack(
        a, StepVector([], np.zeros((0, a.values.shape[1])), np.zeros((0, a.values.shape[1]), bool))
    )
    values, present = a.values.copy(), a.present.copy()
    ref = np.full(a.present.shape, -1, dtype=np.int64)
    extra = []
    for j, lbl in enumerate(b.labels):
        i = index.get(lbl)
        if i is None:
            extra.append(j)
            continue
        m = b.present[j]
        present[i] |= m
        assert b.hist is not None
        ref[i] = np.where(m, b.hist.ref[j], ref[i])
    assert b.hist is not None
    out = StepVector(list(a.labels), values, present, a.drop_name)
    out.hist = HistCells(ref, b.hist.table)
    if extra:
        rest = StepVector(
            [b.labels[j] for j in extra],
            b.values[extra],
            b.present[extra],
            None,
            HistCells(b.hist.ref[extra], b.hist.table),
        )
        out = stack(out, rest)
    return out


# --- binary operators ---------------------------------------------------------


def vector_scalar(
    ctx: EvalContext, op: str, vec: StepVector, scalar: StepScalar, *, scalar_left: bool,
    float_op,
) -> StepVector:  # fmt: skip
    """`vec op scalar` (or `scalar op vec`) where `vec` holds histograms."""
    floats = float_op(floats_only(vec))
    hmask = hist_mask(vec)
    assert vec.hist is not None
    si, sj = np.nonzero(hmask)
    s = scalar.values[sj]
    rows = vec.hist.ref[si, sj]
    ok = np.zeros(len(rows), dtype=bool)
    if op == "*":
        factor, ok = s, np.ones(len(rows), dtype=bool)
    elif op == "/" and not scalar_left:
        with np.errstate(all="ignore"):
            factor = 1.0 / s
        ok = np.ones(len(rows), dtype=bool)
    else:
        factor = s
        _incompatible(ctx, op, "histogram" if not scalar_left else "float",
                      "float" if not scalar_left else "histogram")  # fmt: skip
    table = hm.scale(vec.hist.table, rows, factor)
    ref = np.full(vec.present.shape, -1, dtype=np.int64)
    ref[si[ok], sj[ok]] = np.flatnonzero(ok)
    present = ref >= 0
    from promql.eval.vectors import name_dropped

    hv = StepVector(vec.labels, np.full(vec.values.shape, np.nan), present, vec.drop_name)
    hv.hist = HistCells(ref, table)
    hv = name_dropped(hv, delayed=ctx.delayed_name_removal)
    keep = present.any(axis=1)
    from promql.eval.vectors import take_rows

    return stack(floats, take_rows(hv, np.flatnonzero(keep)))


def _incompatible(ctx: EvalContext, op: str, left: str, right: str) -> None:
    ctx.annotations.info(
        f'PromQL info: incompatible sample types encountered for binary operator "{op}": '
        f"{left} {op} {right}"
    )


def equal_pairs(table: HistogramBatch, a: I64, b: I64) -> NDArray[np.bool_]:
    """Whether histograms a[k] and b[k] are equal (empty buckets do not matter)."""
    n = len(a)
    eq = table.schema[a] == table.schema[b]
    eq &= table.count[a] == table.count[b]
    eq &= (table.sum[a] == table.sum[b]) | (np.isnan(table.sum[a]) & np.isnan(table.sum[b]))
    eq &= table.zero_threshold[a] == table.zero_threshold[b]
    eq &= table.zero_count[a] == table.zero_count[b]
    idx = np.flatnonzero(eq)
    if len(idx):
        eq[idx] &= hm.same_custom_values(table, a[idx], b[idx])
        k = len(idx)
        comb = hm.combine(
            table,
            np.concatenate([a[idx], b[idx]]),
            np.concatenate([np.arange(k), np.arange(k)]),
            np.concatenate([np.ones(k), -np.ones(k)]),
            k,
        )
        t = comb.table
        diff = np.zeros(k, dtype=bool)
        for off, cnt in ((t.pos_offsets, t.pos_counts), (t.neg_offsets, t.neg_counts)):
            nz = cnt != 0
            if nz.any():
                diff[hm.rows_of(off)[nz]] = True
        eq[idx] &= ~diff
    return eq if n else np.zeros(0, dtype=bool)


def vector_vector(
    ctx: EvalContext,
    op: str,
    lhs: StepVector,
    rhs: StepVector,
    matching,
    float_op,
    return_bool: bool = False,
) -> StepVector:
    """`lhs op rhs` where either side holds histograms: floats as before; histogram
    pairs matched one-to-one by signature for `+`, `-` (and `==`/`!=` filters)."""
    from promql.eval.binary import _signature_fn

    floats = float_op(floats_only(lhs), floats_only(rhs))
    lm, rm = hist_mask(lhs), hist_mask(rhs)
    if not lm.any() and not rm.any():
        return floats
    sig = _signature_fn(matching)
    rindex: dict[object, int] = {}
    for jr, lbl in enumerate(rhs.labels):
        rindex.setdefault(sig(lbl), jr)
    steps = lhs.values.shape[1]
    pairs_l, pairs_r = [], []
    for i, lbl in enumerate(lhs.labels):
        hit = rindex.get(sig(lbl))
        if hit is not None:
            pairs_l.append(i)
            pairs_r.append(hit)
    if not pairs_l:
        return floats
    pl, pr = np.array(pairs_l), np.array(pairs_r)
    both = lm[pl] & rm[pr]
    h_f = lm[pl] & rhs.present[pr] & ~rm[pr]
    f_h = rm[pr] & lhs.present[pl] & ~lm[pl]
    scaled = None
    if (op in ("*", "/") and h_f.any()) or (op == "*" and f_h.any()):
        scaled = _scale_pairs(ctx, op, lhs, rhs, pl, pr, h_f, f_h)
        h_f = h_f & (op not in ("*", "/"))
        f_h = f_h & (op != "*")
    if (h_f | f_h).any():
        lt = "histogram" if h_f.any() else "float"
        rt = "float" if lt == "histogram" else "histogram"
        _incompatible(ctx, op, lt, rt)
    if scaled is not None:
        floats = stack(floats, scaled)
    if op in ("==", "!=") and both.any():
        return stack(floats, _equality(ctx, op, lhs, rhs, pl, pr, both, return_bool))
    if op not in ("+", "-") or not both.any():
        if both.any():
            _incompatible(ctx, op, "histogram", "histogram")
        return floats
    assert lhs.hist is not None
    assert rhs.hist is not None
    k, sj = np.nonzero(both)
    table = HistogramBatch.concat([lhs.hist.table, rhs.hist.table])
    shift = len(lhs.hist.table)
    lrows = lhs.hist.ref[pl[k], sj]
    rrows = rhs.hist.ref[pr[k], sj] + shift
    n = len(k)
    w = -1.0 if op == "-" else 1.0
    comb = hm.combine(
        table,
        np.concatenate([lrows, rrows]),
        np.concatenate([np.arange(n), np.arange(n)]),
        np.concatenate([np.ones(n), np.full(n, w)]),
        n,
    )
    if comb.custom_mismatch.any():
        ctx.annotations.info(
            f"PromQL info: mismatched custom buckets were reconciled during "
            f"{'subtraction' if op == '-' else 'addition'}"
        )
    ref = np.full((len(pl), steps), -1, dtype=np.int64)
    ref[k, sj] = np.arange(n)
    labels = [lhs.labels[i] for i in pl.tolist()]
    hv = StepVector(labels, np.full((len(pl), steps), np.nan), ref >= 0, None)
    hv.hist = HistCells(ref, comb.table)
    from promql.eval.vectors import name_dropped, take_rows

    hv = name_dropped(hv, delayed=ctx.delayed_name_removal)
    if matching is not None and getattr(matching, "card", None) is None:
        pass
    hv = _result_labels(hv, matching)
    return stack(floats, take_rows(hv, np.flatnonzero(hv.present.any(axis=1))))


def _scale_pairs(
    ctx: EvalContext,
    op: str,
    lhs: StepVector,
    rhs: StepVector,
    pl: I64,
    pr: I64,
    h_f: NDArray[np.bool_],
    f_h: NDArray[np.bool_],
) -> StepVector:
    """histogram * float, histogram / float, float * histogram (one-to-one pairs)."""
    from promql.eval.vectors import name_dropped, take_rows

    steps = lhs.values.shape[1]
    parts_k: list[I64] = []
    parts_j: list[I64] = []
    tables: list[HistogramBatch] = []
    k, sj = np.nonzero(h_f) if op in ("*", "/") else (np.zeros(0, int), np.zeros(0, int))
    if len(k):
        assert lhs.hist is not None
        f = rhs.values[pr[k], sj]
        tables.append(hm.scale(lhs.hist.table, lhs.hist.ref[pl[k], sj], f if op == "*" else 1 / f))
        parts_k.append(k)
        parts_j.append(sj)
    k2, sj2 = np.nonzero(f_h) if op == "*" else (np.zeros(0, int), np.zeros(0, int))
    if len(k2):
        assert rhs.hist is not None
        f = lhs.values[pl[k2], sj2]
        tables.append(hm.scale(rhs.hist.table, rhs.hist.ref[pr[k2], sj2], f))
        parts_k.append(k2)
        parts_j.append(sj2)
    table = HistogramBatch.concat(tables)
    kk = np.concatenate(parts_k)
    jj = np.concatenate(parts_j)
    ref = np.full((len(pl), steps), -1, dtype=np.int64)
    ref[kk, jj] = np.arange(len(kk))
    labels = [lhs.labels[i] for i in pl.tolist()]
    out = StepVector(labels, np.full((len(pl), steps), np.nan), ref >= 0, None)
    out.hist = HistCells(ref, table)
    out = name_dropped(out, delayed=ctx.delayed_name_removal)
    return take_rows(out, np.flatnonzero(out.present.any(axis=1)))


def _equality(
    ctx: EvalContext,
    op: str,
    lhs: StepVector,
    rhs: StepVector,
    pl: I64,
    pr: I64,
    both: NDArray[np.bool_],
    return_bool: bool,
) -> StepVector:
    """`==` / `!=` between histogram pairs: a filter keeping the left histogram,
    or with `bool` 1/0 floats."""
    from promql.eval.vectors import name_dropped, take_rows

    assert lhs.hist is not None
    assert rhs.hist is not None
    k, sj = np.nonzero(both)
    table = HistogramBatch.concat([lhs.hist.table, rhs.hist.table])
    a = lhs.hist.ref[pl[k], sj]
    b = rhs.hist.ref[pr[k], sj] + len(lhs.hist.table)
    eq = equal_pairs(table, a, b)
    hit = eq if op == "==" else ~eq
    steps = lhs.values.shape[1]
    labels = [lhs.labels[i] for i in pl.tolist()]
    if return_bool:
        values = np.full((len(pl), steps), np.nan)
        values[k, sj] = hit.astype(np.float64)
        present = np.zeros((len(pl), steps), dtype=bool)
        present[k, sj] = True
        out = name_dropped(
            StepVector(labels, values, present, None), delayed=ctx.delayed_name_removal
        )
    else:
        ref = np.full((len(pl), steps), -1, dtype=np.int64)
        ref[k[hit], sj[hit]] = a[hit]
        out = StepVector(labels, np.full((len(pl), steps), np.nan), ref >= 0, None)
        out.hist = HistCells(ref, lhs.hist.table)
    return take_rows(out, np.flatnonzero(out.present.any(axis=1)))


def _result_labels(vec: StepVector, matching) -> StepVector:
    """One-to-one results keep only the `on` labels when matching `on(...)`."""
    if matching is None or not getattr(matching, "on", False):
        return vec
    names = set(matching.labels)
    vec.labels = [lbl.keep(*names) for lbl in vec.labels]
    return vec


def unary_minus(vec: StepVector, float_op, delayed: bool) -> StepVector:
    floats = float_op(floats_only(vec))
    hv = histograms_only(vec)
    assert hv.hist is not None
    si, sj = np.nonzero(hv.present)
    rows = hv.hist.ref[si, sj]
    table = hm.scale(hv.hist.table, rows, -np.ones(len(rows)))
    ref = np.full(vec.present.shape, -1, dtype=np.int64)
    ref[si, sj] = np.arange(len(rows))
    from promql.eval.vectors import name_dropped, take_rows

    out = StepVector(vec.labels, np.full(vec.values.shape, np.nan), ref >= 0, vec.drop_name)
    out.hist = HistCells(ref, table)
    out = name_dropped(out, delayed=delayed)
    return stack(floats, take_rows(out, np.flatnonzero(out.present.any(axis=1))))


def set_op(op: str, lhs: StepVector, rhs: StepVector, matching, float_set) -> StepVector:
    """`and`/`or`/`unless` keep whole samples: histogram cells are carried."""
    out = float_set(op, lhs, rhs, matching)
    if op == "or":
        la, lt = _refs(lhs)
        rb, rt = _refs(rhs)
        rb = np.where(rb >= 0, rb + len(lt), -1)
        if len(rhs.labels):
            out.hist = HistCells(np.concatenate([la, rb]), HistogramBatch.concat([lt, rt]))
        else:
            out.hist = lhs.hist
        return out
    out.hist = lhs.hist
    return out


def _refs(v: StepVector) -> tuple[I64, HistogramBatch]:
    if v.hist is None:
        return np.full(v.present.shape, -1, dtype=np.int64), HistogramBatch.empty()
    return v.hist.ref, v.hist.table


def _unused(x: Sequence[object]) -> None:
    return None
