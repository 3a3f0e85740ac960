"""Evaluating a `PushedAggregate`: the local part, the members' partial answers, combined.

Members answer without the `cluster` label and without their external
labels; each answer gets the labels the raw path would have given it (the
member's partition labels that the aggregation keeps, minus dropped ones)
before the union of all parts is aggregated once more with the combining op
(`count` partials are summed; `avg` is the sum of sums over the sum of counts).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from promql import ast
from promql.distribute import AVG_COUNT_LABEL, COMBINE_OP, PushedAggregate, RemoteEngine
from promql.eval.aggregations import aggregate
from promql.eval.vectors import compact
from promql.value import Matrix, StepScalar, StepVector, String
from storage.labels import CLUSTER_LABEL, Labels

if TYPE_CHECKING:
    from promql.eval.evaluator import Evaluator

I64 = np.ndarray


def evaluate_pushed(ev: Evaluator, e: PushedAggregate, steps: I64) -> StepVector:
    agg = e.agg
    param: StepScalar | String | None = None
    if agg.param is not None:
        p = ev.eval(agg.param, steps)
        if not isinstance(p, StepScalar | String):
            raise TypeError("pushed aggregation parameter must be a scalar")
        param = p
    local_ev = type(ev)(replace(ev.ctx, data=e.local_data))
    ops = ("sum", "count") if agg.op == "avg" else (agg.op,)
    combined = []
    for qi, op in enumerate(ops):
        node = replace(agg, op=op)
        parts = [local_ev.eval_vector(node, steps)]
        for pi, part in enumerate(e.parts):
            answers = e.results.get(pi)
            matrix = answers[0] if answers else None
            if matrix is None:
                continue
            if agg.op == "avg":
                matrix = _avg_part(matrix, counts=qi == 1)
            parts.append(_as_step_vector(matrix, steps, part.engine, agg))
        union = _concat(parts, len(steps))
        comb = replace(agg, op=COMBINE_OP[op])
        combined.append(compact(aggregate(ev.ctx, comb, union, param)))
    if agg.op != "avg":
        return combined[0]
    sums, counts = combined
    row = {lbl: i for i, lbl in enumerate(counts.labels)}
    idx = np.array([row.get(lbl, -1) for lbl in sums.labels], dtype=np.int64)
    have = idx >= 0
    values = np.where(have[:, None], sums.values / counts.values[np.maximum(idx, 0)], np.nan)
    present = sums.present & have[:, None] & counts.present[np.maximum(idx, 0)]
    return compact(StepVector(sums.labels, values, present))


def _avg_part(matrix: Matrix, *, counts: bool) -> Matrix:
    """The sums (unmarked) or the counts (marked, mark removed) of a pushed avg's answer."""
    wanted = np.array([lbl.has(AVG_COUNT_LABEL) == counts for lbl in matrix.labels], dtype=bool)
    sizes = np.diff(matrix.offsets)
    take = np.flatnonzero(np.repeat(wanted, sizes))
    offsets = np.zeros(int(wanted.sum()) + 1, dtype=np.int64)
    np.cumsum(sizes[wanted], out=offsets[1:])
    labels = [
        lbl.without(AVG_COUNT_LABEL) for lbl, w in zip(matrix.labels, wanted, strict=True) if w
    ]
    return Matrix(labels, offsets, matrix.timestamps[take], matrix.values[take])


def _kept_partition(agg: ast.AggregateExpr, engine: RemoteEngine) -> list[tuple[str, str]]:
    pairs = list(engine.partition_labels)
    if agg.op in ("topk", "bottomk"):
        return pairs
    if agg.without:
        return [p for p in pairs if p[0] not in agg.grouping]
    return [p for p in pairs if p[0] in agg.grouping]


def _as_step_vector(
    matrix: Matrix, steps: I64, engine: RemoteEngine, agg: ast.AggregateExpr
) -> StepVector:
    n, width = len(matrix.labels), len(steps)
    values = np.zeros((n, width), dtype=np.float64)
    present = np.zeros((n, width), dtype=bool)
    if n:
        col = np.searchsorted(steps, matrix.timestamps)
        ok = col < width
        ok[ok] = steps[col[ok]] == matrix.timestamps[ok]
        row = np.repeat(np.arange(n), np.diff(matrix.offsets))
        values[row[ok], col[ok]] = matrix.values[ok]
        present[row[ok], col[ok]] = True
    extra = _kept_partition(agg, engine)
    dropped = set(engine.dropped_labels)
    labels = []
    for lbl in matrix.labels:
        pairs = [p for p in lbl if p[0] not in dropped and p[0] != CLUSTER_LABEL]
        have = {name for name, _ in pairs}
        pairs += [p for p in extra if p[0] == CLUSTER_LABEL or p[0] not in have]
        labels.append(Labels.from_pairs(pairs))
    return StepVector(labels, values, present)


def _concat(parts: list[StepVector], width: int) -> StepVector:
    parts = [p for p in parts if p.num_series]
    if not parts:
        return StepVector([], np.zeros((0, width)), np.zeros((0, width), dtype=bool))
    if len(parts) == 1:
        return parts[0]
    labels = [lbl for p in parts for lbl in p.labels]
    drop = None
    if any(p.drop_name is not None for p in parts):
        drop = np.concatenate(
            [
                p.drop_name if p.drop_name is not None else np.zeros(p.num_series, bool)
                for p in parts
            ]
        )
    return StepVector(
        labels,
        np.vstack([p.values for p in parts]),
        np.vstack([p.present for p in parts]),
        drop,
    )
