"""Small operations on step vectors shared by the evaluator's modules."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from promql.errors import ExecutionError
from promql.value import HistCells, StepVector
from storage.labels import METRIC_NAME, Labels

DUPLICATE_LABELSET = "vector cannot contain metrics with the same labelset"


def empty_vector(steps: int) -> StepVector:
    return StepVector([], np.zeros((0, steps)), np.zeros((0, steps), dtype=bool))


def drop_flags(vec: StepVector) -> NDArray[np.bool_]:
    """The delayed-name-removal marks as an array (all False when absent)."""
    if vec.drop_name is None:
        return np.zeros(len(vec.labels), dtype=bool)
    return vec.drop_name


def marked(vec: StepVector) -> StepVector:
    """The same vector with every series marked for metric-name removal."""
    return StepVector(
        vec.labels, vec.values, vec.present, np.ones(len(vec.labels), dtype=bool), vec.hist
    )


def name_dropped(vec: StepVector, *, delayed: bool) -> StepVector:
    """`vec` as an operation that drops `__name__` returns it.

    With delayed name removal every series is marked and keeps its name until
    the end of evaluation (`apply_name_drop`); without, the name goes now, as
    in Prometheus without the `promql-delayed-name-removal` flag.
    """
    if delayed:
        return marked(vec)
    labels = [lbl.without_metric_name() for lbl in vec.labels]
    return StepVector(labels, vec.values, vec.present, None, vec.hist)


def take_rows(vec: StepVector, rows: NDArray[np.intp] | list[int]) -> StepVector:
    rows = np.asarray(rows, dtype=np.intp)
    labels = [vec.labels[i] for i in rows.tolist()]
    drop = vec.drop_name[rows] if vec.drop_name is not None else None
    hist = HistCells(vec.hist.ref[rows], vec.hist.table) if vec.hist is not None else None
    return StepVector(labels, vec.values[rows], vec.present[rows], drop, hist)


def compact(vec: StepVector) -> StepVector:
    """Drop series that are absent at every step."""
    keep = vec.present.any(axis=1)
    if keep.all():
        return vec
    return take_rows(vec, np.nonzero(keep)[0])


def apply_name_drop(vec: StepVector) -> StepVector:
    """Remove `__name__` from the marked series (Prometheus 3 delayed name removal)."""
    if vec.drop_name is None or not vec.drop_name.any():
        return StepVector(vec.labels, vec.values, vec.present, None, vec.hist)
    labels = [
        lbl.without(METRIC_NAME) if d else lbl
        for lbl, d in zip(vec.labels, vec.drop_name.tolist(), strict=True)
    ]
    return StepVector(labels, vec.values, vec.present, None, vec.hist)


def merge_same_labels(vec: StepVector, *, error: str = DUPLICATE_LABELSET) -> StepVector:
    """Merge series with equal label sets; overlapping presence is an error.

    Series may share a label set when they never exist at the same step (e.g.
    `a or b` after name removal across a range query); at one step, two
    series with the same labels are the duplicate-labelset error.
    """
    if len(set(vec.labels)) == len(vec.labels):  # the common case, hashed in C
        return vec
    index: dict[Labels, int] = {}
    groups: list[list[int]] = []
    for i, lbl in enumerate(vec.labels):
        g = index.get(lbl)
        if g is None:
            index[lbl] = len(groups)
            groups.append([i])
        else:
            groups[g].append(i)
    if len(groups) == len(vec.labels):
        return vec
    values = np.empty((len(groups), vec.values.shape[1]))
    present = np.zeros((len(groups), vec.values.shape[1]), dtype=bool)
    ref = np.full(present.shape, -1, dtype=np.int64) if vec.hist is not None else None
    drop = np.zeros(len(groups), dtype=bool)
    flags = drop_flags(vec)
    for g, rows in enumerate(groups):
        if len(rows) == 1:
            r = rows[0]
            values[g] = vec.values[r]
            present[g] = vec.present[r]
            if ref is not None and vec.hist is not None:
                ref[g] = vec.hist.ref[r]
            drop[g] = flags[r]
            continue
        p = vec.present[rows]
        if (p.sum(axis=0) > 1).any():
            raise ExecutionError(error)
        sel = np.argmax(p, axis=0)
        values[g] = vec.values[rows][sel, np.arange(p.shape[1])]
        if ref is not None and vec.hist is not None:
            ref[g] = vec.hist.ref[rows][sel, np.arange(p.shape[1])]
        present[g] = p.any(axis=0)
        drop[g] = bool(flags[rows].any())
    labels = [vec.labels[rows[0]] for rows in groups]
    hist = HistCells(ref, vec.hist.table) if ref is not None and vec.hist is not None else None
    return StepVector(labels, values, present, drop if drop.any() else None, hist)


def floats_only(vec: StepVector) -> StepVector:
    """`vec` without its histogram cells: what float-only operations see
    (Prometheus's float functions and operators skip histogram samples)."""
    if vec.hist is None:
        return vec
    present = vec.present & (vec.hist.ref < 0)
    return StepVector(vec.labels, vec.values, present, vec.drop_name, None)


def histograms_only(vec: StepVector) -> StepVector:
    """`vec` with only its histogram cells present."""
    if vec.hist is None:
        return StepVector(vec.labels, vec.values, np.zeros_like(vec.present), vec.drop_name)
    return StepVector(
        vec.labels, vec.values, vec.present & (vec.hist.ref >= 0), vec.drop_name, vec.hist
    )
