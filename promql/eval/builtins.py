"""Functions that need the evaluator's help rather than just their arguments.

`time`, `pi`, `vector`, `scalar`, `timestamp` (the sample's own timestamp for a
selector), `absent` / `absent_over_time` (labels from the selector's equality
matchers), and the `sort*` family (ordering of instant-query results). The
rest of the function library lives in `promql.eval.functions`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from promql import ast
from promql.errors import ExecutionError
from promql.eval.gofmt import natural_key
from promql.eval.vectors import compact, floats_only, name_dropped, take_rows
from promql.value import EvalValue, StepRange, StepScalar, StepVector, String
from storage.labels import METRIC_NAME, Labels, MatchType

if TYPE_CHECKING:
    from promql.eval.evaluator import Evaluator

I64 = NDArray[np.int64]
Special = Callable[["Evaluator", ast.Call, I64], EvalValue]


def _time(ev: Evaluator, e: ast.Call, steps: I64) -> EvalValue:
    return StepScalar(steps.astype(np.float64) / 1000.0)


def _pi(ev: Evaluator, e: ast.Call, steps: I64) -> EvalValue:
    return StepScalar(np.full(len(steps), math.pi))


def _vector(ev: Evaluator, e: ast.Call, steps: I64) -> EvalValue:
    s = ev.eval_scalar(e.args[0], steps)
    return StepVector([Labels()], s.values[None, :].copy(), np.ones((1, len(steps)), dtype=bool))


def _scalar(ev: Evaluator, e: ast.Call, steps: I64) -> EvalValue:
    vec = floats_only(ev.eval_vector(e.args[0], steps))  # histograms are not scalars
    if not vec.labels:
        return StepScalar(np.full(len(steps), np.nan))
    count = vec.present.sum(axis=0)
    picked = np.where(vec.present, vec.values, 0.0)
    first = np.argmax(vec.present, axis=0)
    value = picked[first, np.arange(len(steps))]
    return StepScalar(np.where(count == 1, value, np.nan))


def _timestamp(ev: Evaluator, e: ast.Call, steps: I64) -> EvalValue:
    arg = ast.unwrap_parens(e.args[0])
    if isinstance(arg, ast.VectorSelector):
        vec, ts = ev.select_vector(arg, steps, with_timestamps=True)
        assert ts is not None
        out = StepVector(vec.labels, ts.astype(np.float64) / 1000.0, vec.present)
        return compact(name_dropped(out, delayed=ev.ctx.delayed_name_removal))
    vec = ev.eval_vector(e.args[0], steps)
    values = np.broadcast_to(steps.astype(np.float64) / 1000.0, vec.values.shape).copy()
    out = StepVector(vec.labels, values, vec.present, vec.drop_name)
    return name_dropped(out, delayed=ev.ctx.delayed_name_removal)


def absent_labels(expr: ast.Expr) -> Labels:
    """Labels `absent()` reports: `=` matchers, except names matched again later."""
    expr = ast.unwrap_parens(expr)
    if isinstance(expr, ast.MatrixSelector):
        expr = expr.selector
    if not isinstance(expr, ast.VectorSelector):
        return Labels()
    out: dict[str, str] = {}
    seen: set[str] = set()
    for m in expr.matchers:
        if m.name == METRIC_NAME:
            continue
        if m.type is MatchType.EQ and m.name not in seen:
            out[m.name] = m.value
        else:
            out.pop(m.name, None)
        seen.add(m.name)
    return Labels.from_dict(out)


def _absent(ev: Evaluator, e: ast.Call, steps: I64) -> EvalValue:
    vec = ev.eval_vector(e.args[0], steps)
    none = ~np.asarray(vec.present.any(axis=0)) if vec.labels else np.ones(len(steps), dtype=bool)
    return StepVector([absent_labels(e.args[0])], np.ones((1, len(steps))), none[None, :].copy())


def _absent_over_time(ev: Evaluator, e: ast.Call, steps: I64) -> EvalValue:
    rng = ev.eval(e.args[0], steps)
    if not isinstance(rng, StepRange):
        raise ExecutionError("absent_over_time expects a range vector")
    none: NDArray[np.bool_] = np.ones(len(steps), dtype=bool)
    if rng.labels:
        none = ~np.asarray(((rng.hi - rng.lo) > 0).any(axis=0))
    return StepVector([absent_labels(e.args[0])], np.ones((1, len(steps))), none[None, :].copy())


def _sort_warning(ev: Evaluator, e: ast.Call, steps: I64) -> None:
    if len(steps) > 1:
        ev.ctx.annotations.warn(
            "PromQL warning: sort is ineffective for range queries since results are "
            f"always ordered by labels {ev.ctx.position(e)}"
        )


def _by_value(desc: bool) -> Special:
    def impl(ev: Evaluator, e: ast.Call, steps: I64) -> EvalValue:
        vec = ev.eval_vector(e.args[0], steps)
        _sort_warning(ev, e, steps)
        if len(steps) != 1 or len(vec.labels) < 2:
            return vec
        vals = vec.values[:, 0]
        nan = np.isnan(vals)
        key = np.where(nan, 0.0, -vals if desc else vals)
        order = np.lexsort((key, nan))
        return take_rows(vec, order)

    return impl


def _by_label(desc: bool) -> Special:
    def impl(ev: Evaluator, e: ast.Call, steps: I64) -> EvalValue:
        vec = ev.eval_vector(e.args[0], steps)
        names = []
        for a in e.args[1:]:
            s = ev.eval(a, steps)
            if not isinstance(s, String):
                raise ExecutionError(f"{e.func} expects label names as strings")
            names.append(s.value)
        _sort_warning(ev, e, steps)
        if len(vec.labels) < 2:
            return vec
        dicts = [dict(lbl) for lbl in vec.labels]

        def cmp(a: int, b: int) -> int:
            for n in names:
                ka, kb = natural_key(dicts[a].get(n, "")), natural_key(dicts[b].get(n, ""))
                if ka != kb:
                    r = -1 if ka < kb else 1
                    return -r if desc else r
            la, lb = vec.labels[a], vec.labels[b]
            if la == lb:
                return 0
            r = -1 if la < lb else 1
            return -r if desc else r

        order = sorted(range(len(vec.labels)), key=functools.cmp_to_key(cmp))
        return take_rows(vec, order)

    return impl


SPECIAL: dict[str, Special] = {
    "time": _time,
    "pi": _pi,
    "vector": _vector,
    "scalar": _scalar,
    "timestamp": _timestamp,
    "absent": _absent,
    "absent_over_time": _absent_over_time,
    "sort": _by_value(False),
    "sort_desc": _by_value(True),
    "sort_by_label": _by_label(False),
    "sort_by_label_desc": _by_label(True),
}
