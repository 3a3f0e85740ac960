"""Binary operators: arithmetic, comparison (with and without `bool`), set operators.

Vector matching works on signatures (the label values that must agree, after
`on` / `ignoring`), computed once per series. Per signature the series of
both sides are paired; the operator then runs on the `[pairs x steps]`
arrays in one numpy call. Cardinality rules are checked per step, as
Prometheus does: two series of one side may share a signature as long as they
never exist at the same step.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from promql import ast
from promql.errors import ExecutionError
from promql.eval.gofmt import labels_string
from promql.eval.vectors import drop_flags, name_dropped
from promql.value import StepScalar, StepVector
from storage.labels import METRIC_NAME, Labels

F64 = NDArray[np.float64]
Op = Callable[[F64, F64], F64]


def _pow(a: F64, b: F64) -> F64:
    return np.power(a, b)


ARITHMETIC: dict[str, Op] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "%": np.fmod,
    "^": _pow,
    "atan2": np.arctan2,
}

COMPARISON: dict[str, Callable[[F64, F64], NDArray[np.bool_]]] = {
    "==": np.equal,
    "!=": np.not_equal,
    ">": np.greater,
    "<": np.less,
    ">=": np.greater_equal,
    "<=": np.less_equal,
}


def scalar_binop(op: str, lhs: StepScalar, rhs: StepScalar) -> StepScalar:
    with np.errstate(all="ignore"):
        if op in COMPARISON:
            return StepScalar(COMPARISON[op](lhs.values, rhs.values).astype(np.float64))
        return StepScalar(ARITHMETIC[op](lhs.values, rhs.values))


def vector_scalar_binop(
    op: str,
    vec: StepVector,
    scalar: StepScalar,
    *,
    scalar_left: bool,
    return_bool: bool,
    delayed: bool,
) -> StepVector:
    """`vector op scalar` or `scalar op vector`; comparisons keep the vector's value.

    Arithmetic and `bool` comparisons drop `__name__` (`delayed`: see `name_dropped`).
    """
    s = scalar.values[None, :]
    left, right = (s, vec.values) if scalar_left else (vec.values, s)
    with np.errstate(all="ignore"):
        if op in COMPARISON:
            cond = COMPARISON[op](left, right)
            if return_bool:
                out = StepVector(vec.labels, cond.astype(np.float64), vec.present.copy())
                return name_dropped(out, delayed=delayed)
            return StepVector(vec.labels, vec.values, vec.present & cond, vec.drop_name)
        values = np.broadcast_to(ARITHMETIC[op](left, right), vec.values.shape)
    return name_dropped(StepVector(vec.labels, np.array(values), vec.present), delayed=delayed)


def unary_minus(vec: StepVector, *, delayed: bool) -> StepVector:
    return name_dropped(StepVector(vec.labels, -vec.values, vec.present), delayed=delayed)


# --- signatures --------------------------------------------------------------


def _signature_fn(matching: ast.VectorMatching) -> Callable[[Labels], tuple[object, ...]]:
    names = matching.labels
    if matching.on:
        wanted = tuple(sorted(set(names)))

        def sig_on(lbl: Labels) -> tuple[object, ...]:
            d = dict(lbl)
            return tuple(d.get(n, "") for n in wanted)

        return sig_on
    drop = set(names) | {METRIC_NAME}

    def sig_ignoring(lbl: Labels) -> tuple[object, ...]:
        return tuple(p for p in lbl if p[0] not in drop)

    return sig_ignoring


def _match_group(lbl: Labels, matching: ast.VectorMatching) -> str:
    """Go `MatchLabels(on, names...)` rendered with `labels.String()`."""
    if matching.on:
        keep = set(matching.labels)
        return labels_string(p for p in lbl if p[0] in keep)
    drop = set(matching.labels) | {METRIC_NAME}
    return labels_string(p for p in lbl if p[0] not in drop)


def _group_rows(sigs: list[tuple[object, ...]]) -> dict[tuple[object, ...], list[int]]:
    groups: dict[tuple[object, ...], list[int]] = {}
    for i, s in enumerate(sigs):
        groups.setdefault(s, []).append(i)
    return groups


def _any_present(
    vec: StepVector, groups: dict[tuple[object, ...], list[int]]
) -> dict[tuple[object, ...], NDArray[np.bool_]]:
    return {s: np.asarray(vec.present[rows].any(axis=0)) for s, rows in groups.items()}


# --- set operators ------------------------------------------------------------


def set_binop(
    op: str, lhs: StepVector, rhs: StepVector, matching: ast.VectorMatching
) -> StepVector:
    """`and`, `or`, `unless`: per step, by signature; labels come through unchanged."""
    sig = _signature_fn(matching)
    steps = lhs.values.shape[1]
    if op == "or":
        lhs_any = _any_present(lhs, _group_rows([sig(lbl) for lbl in lhs.labels]))
        keep = rhs.present.copy()
        for i, lbl in enumerate(rhs.labels):
            hit = lhs_any.get(sig(lbl))
            if hit is not None:
                keep[i] &= ~hit
        drop = None
        if lhs.drop_name is not None or rhs.drop_name is not None:
            drop = np.concatenate([drop_flags(lhs), drop_flags(rhs)])
        return StepVector(
            lhs.labels + rhs.labels,
            np.concatenate([lhs.values, rhs.values]) if rhs.labels else lhs.values,
            np.concatenate([lhs.present, keep]) if rhs.labels else lhs.present,
            drop,
        )
    rhs_any = _any_present(rhs, _group_rows([sig(lbl) for lbl in rhs.labels]))
    none = np.zeros(steps, dtype=bool)
    present = lhs.present.copy()
    for i, lbl in enumerate(lhs.labels):
        hit = rhs_any.get(sig(lbl), none)
        present[i] &= hit if op == "and" else ~hit
    return StepVector(lhs.labels, lhs.values, present, lhs.drop_name)


# --- arithmetic and comparison between vectors --------------------------------


def vector_binop(
    op: str,
    lhs: StepVector,
    rhs: StepVector,
    matching: ast.VectorMatching,
    *,
    return_bool: bool,
    delayed: bool,
) -> StepVector:
    """One-to-one, many-to-one (`group_left`) or one-to-many (`group_right`) matching.

    Arithmetic and `bool` comparisons drop `__name__`: marked under delayed name
    removal, removed before the uniqueness check otherwise (as Prometheus does).
    """
    card = matching.card
    swapped = card == "one-to-many"
    many, one = (rhs, lhs) if swapped else (lhs, rhs)
    sig = _signature_fn(matching)
    one_groups = _group_rows([sig(lbl) for lbl in one.labels])
    _check_one_side(one, one_groups, matching, "left" if swapped else "right")

    pair_many: list[int] = []
    pair_one: list[int] = []
    pair_sig: list[int] = []
    sig_ids: dict[tuple[object, ...], int] = {}
    for i, lbl in enumerate(many.labels):
        s = sig(lbl)
        rows = one_groups.get(s)
        if not rows:
            continue
        sid = sig_ids.setdefault(s, len(sig_ids))
        for r in rows:
            pair_many.append(i)
            pair_one.append(r)
            pair_sig.append(sid)
    steps = lhs.values.shape[1]
    if not pair_many:
        return StepVector([], np.zeros((0, steps)), np.zeros((0, steps), dtype=bool))
    mi = np.asarray(pair_many, dtype=np.intp)
    oi = np.asarray(pair_one, dtype=np.intp)
    present = many.present[mi] & one.present[oi]
    if card == "one-to-one":
        counts = np.zeros((len(sig_ids), steps), dtype=np.int64)
        np.add.at(counts, np.asarray(pair_sig, dtype=np.intp), present)
        if (counts > 1).any():
            raise ExecutionError(
                "multiple matches for labels: many-to-one matching must be explicit "
                "(group_left/group_right)"
            )
    lv, rv = many.values[mi], one.values[oi]
    if swapped:
        lv, rv = rv, lv
    is_cmp = op in COMPARISON
    with np.errstate(all="ignore"):
        if is_cmp:
            cond = COMPARISON[op](lv, rv)
            if return_bool:
                values = cond.astype(np.float64)
            else:
                values = lv
                present &= cond
        else:
            values = ARITHMETIC[op](lv, rv)
    drop_all = (not is_cmp) or return_bool
    many_labels, one_labels = many.labels, one.labels
    labels = [
        _result_metric(many_labels[m], one_labels[o], matching)
        for m, o in zip(pair_many, pair_one, strict=True)
    ]
    if drop_all:
        out = name_dropped(StepVector(labels, values, present), delayed=delayed)
    else:  # a filtering comparison keeps the many side's labels and marks
        drop = drop_flags(many)[mi] if many.drop_name is not None else None
        out = StepVector(labels, values, present, drop if drop is not None and drop.any() else None)
    if card != "one-to-one":
        _check_result_unique(out)
    return out


def _check_one_side(
    one: StepVector,
    groups: dict[tuple[object, ...], list[int]],
    matching: ast.VectorMatching,
    side: str,
) -> None:
    for rows in groups.values():
        if len(rows) < 2:
            continue
        p = one.present[rows]
        both = p.sum(axis=0) > 1
        if not both.any():
            continue
        step = int(np.argmax(both))
        dup = sorted(one.labels[r] for r, ok in zip(rows, p[:, step].tolist(), strict=True) if ok)
        raise ExecutionError(
            f"found duplicate series for the match group {_match_group(dup[0], matching)} "
            f"on the {side} hand-side of the operation: "
            f"[{labels_string(dup[0])}, {labels_string(dup[1])}]"
            ";many-to-many matching not allowed: matching labels must be unique on one side"
        )


def _check_result_unique(out: StepVector) -> None:
    seen: dict[Labels, list[int]] = {}
    for i, lbl in enumerate(out.labels):
        seen.setdefault(lbl, []).append(i)
    for rows in seen.values():
        if len(rows) > 1 and (out.present[rows].sum(axis=0) > 1).any():
            raise ExecutionError(
                "multiple matches for labels: grouping labels must ensure unique matches"
            )


def _result_metric(many: Labels, one: Labels, matching: ast.VectorMatching) -> Labels:
    """Result labels: the many side's, narrowed for one-to-one, plus `group_x` includes."""
    pairs = dict(many)
    if matching.card == "one-to-one":
        if matching.on:
            keep = set(matching.labels)
            pairs = {n: v for n, v in pairs.items() if n in keep}
        else:
            for n in matching.labels:
                pairs.pop(n, None)
    if matching.include:
        one_d = dict(one)
        for n in matching.include:
            v = one_d.get(n, "")
            if v:
                pairs[n] = v
            else:
                pairs.pop(n, None)
    return Labels.from_sorted(sorted(pairs.items()))
