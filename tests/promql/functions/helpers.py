"""Build function inputs by hand, the way the evaluator would hand them over.

`series("metric{a=\"b\"}", "0+10x10", interval="5m")` expands the `.test`
point notation (`a+bxN`, `a-bxN`, `_` for a missing point, `stale` dropped
like a stale marker), and `range_of(...)` cuts Prometheus 3 windows
`(t - range, t]` out of it for the given evaluation steps.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import promql_parser

import promql.eval.functions  # noqa: F401  (fills the registry)
from promql import ast
from promql.eval.functions.registry import FUNCTIONS, FunctionContext
from promql.value import EvalValue, StepRange, StepScalar, StepVector, String
from storage.annotations import Annotations
from storage.labels import Labels

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def ms(text: str | int) -> int:
    """'5m' -> 300000; ints are taken as seconds."""
    if isinstance(text, int):
        return text * 1000
    total = 0
    for num, unit in _DURATION.findall(text):
        total += int(num) * _UNITS[unit]
    return total


def parse_labels(text: str) -> Labels:
    """'metric{a="b"}' -> Labels (via the real PromQL parser)."""
    if text.strip() in ("", "{}"):
        return Labels()
    sel = promql_parser.parse(text)
    pairs = [(m.name, m.value) for m in sel.matchers.matchers]
    if sel.name:
        pairs.append(("__name__", sel.name))
    return Labels.from_pairs(pairs)


def _num(text: str) -> float:
    return float(text.replace("Inf", "inf"))


def expand(points: str) -> list[float | None]:
    """The `.test` point notation; None marks a missing point (or a stale marker)."""
    out: list[float | None] = []
    for tok in points.split():
        if tok in ("_", "stale"):
            out.append(None)
            continue
        m = re.fullmatch(r"([-+]?[\w.]+?)([-+])([\w.]+)x(\d+)", tok)
        if m:
            start, sign, step, times = m.groups()
            a, b = _num(start), _num(step)
            b = b if sign == "+" else -b
            out.extend(a + b * i for i in range(int(times) + 1))
            continue
        m = re.fullmatch(r"([-+]?[\w.]+)x(\d+)", tok)
        if m:
            out.extend([_num(m.group(1))] * (int(m.group(2)) + 1))
            continue
        if tok.startswith("_x"):
            out.extend([None] * int(tok[2:]))
            continue
        out.append(_num(tok))
    return out


def series(text: str, points: str, interval: str) -> tuple[Labels, list[int], list[float]]:
    step = ms(interval)
    ts: list[int] = []
    vs: list[float] = []
    for i, v in enumerate(expand(points)):
        if v is not None:
            ts.append(i * step)
            vs.append(v)
    return parse_labels(text), ts, vs


def range_of(
    data: Sequence[tuple[Labels, list[int], list[float]]],
    steps: Sequence[int],
    range_ms: int,
    *,
    offset_ms: int = 0,
    at_ms: int | None = None,
) -> StepRange:
    """The StepRange a matrix selector `[range] offset x @ at` would give at `steps`."""
    labels = [d[0] for d in data]
    lengths = [len(d[1]) for d in data]
    offsets = np.zeros(len(data) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lengths)
    timestamps = np.concatenate([np.asarray(d[1], dtype=np.int64) for d in data] or [[]]).astype(
        np.int64
    )
    values = np.concatenate([np.asarray(d[2], dtype=np.float64) for d in data] or [[]])
    steps_arr = np.asarray(steps, dtype=np.int64)
    ends = (np.full(len(steps), at_ms) if at_ms is not None else steps_arr) - offset_ms
    lo = np.zeros((len(data), len(steps)), dtype=np.int64)
    hi = np.zeros_like(lo)
    for i in range(len(data)):
        ts = timestamps[offsets[i] : offsets[i + 1]]
        lo[i] = offsets[i] + np.searchsorted(ts, ends - range_ms, side="right")
        hi[i] = offsets[i] + np.searchsorted(ts, ends, side="right")
    return StepRange(labels, offsets, timestamps, values, lo, hi, ends.astype(np.int64), range_ms)


def vector_of(
    labels: Sequence[Labels | str], values: Sequence[Sequence[float | None]]
) -> StepVector:
    """A StepVector from rows of per-step values (None = absent at that step)."""
    lbls = [parse_labels(lbl) if isinstance(lbl, str) else lbl for lbl in labels]
    arr = np.array([[np.nan if v is None else v for v in row] for row in values], dtype=float)
    present = np.array([[v is not None for v in row] for row in values], dtype=bool)
    if arr.size == 0:
        arr = arr.reshape(len(lbls), 0)
        present = present.reshape(len(lbls), 0)
    return StepVector(lbls, arr, present)


def scalar(value: float, nsteps: int = 1) -> StepScalar:
    return StepScalar(np.full(nsteps, float(value)))


def string(value: str) -> String:
    return String(value)


def context(
    name: str,
    steps: Sequence[int],
    *,
    delayed: bool = False,
    positions: Sequence[str] = (),
    arg_exprs: Sequence[ast.Expr] = (),
) -> FunctionContext:
    """As the evaluator builds it for a query whose steps are `steps`."""
    grid = np.asarray(steps, dtype=np.int64)
    start, end = (int(grid[0]), int(grid[-1])) if len(grid) else (0, 0)
    return FunctionContext(
        name=name,
        steps=grid,
        annotations=Annotations(),
        delayed_name_removal=delayed,
        query_start_ms=start,
        query_end_ms=end,
        query_step_ms=int(grid[1] - grid[0]) if len(grid) > 1 else 0,
        arg_exprs=tuple(arg_exprs),
        arg_positions=tuple(positions),
    )


def call(
    name: str,
    steps: Sequence[int],
    *args: EvalValue,
    delayed: bool = False,
    positions: Sequence[str] = (),
    arg_exprs: Sequence[ast.Expr] = (),
) -> EvalValue:
    ctx = context(name, steps, delayed=delayed, positions=positions, arg_exprs=arg_exprs)
    return FUNCTIONS[name].impl(ctx, args)


def call_ctx(
    name: str,
    steps: Sequence[int],
    *args: EvalValue,
    delayed: bool = False,
    positions: Sequence[str] = (),
    arg_exprs: Sequence[ast.Expr] = (),
) -> tuple[EvalValue, FunctionContext]:
    ctx = context(name, steps, delayed=delayed, positions=positions, arg_exprs=arg_exprs)
    return FUNCTIONS[name].impl(ctx, args), ctx


def as_dict(vec: EvalValue, step: int = 0) -> dict[str, float]:
    """{labels text: value} of the samples present at `step`."""
    assert isinstance(vec, StepVector)
    out: dict[str, float] = {}
    for i, lbl in enumerate(vec.labels):
        if vec.present[i, step]:
            out[str(lbl)] = float(vec.values[i, step])
    return out


def row(vec: EvalValue, label_text: str) -> list[float | None]:
    """One series' values over all steps (None where absent)."""
    assert isinstance(vec, StepVector)
    want = parse_labels(label_text)
    for i, lbl in enumerate(vec.labels):
        if lbl == want:
            return [
                float(v) if p else None for v, p in zip(vec.values[i], vec.present[i], strict=True)
            ]
    raise AssertionError(f"no series {label_text} in {vec.labels}")
