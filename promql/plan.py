"""Which data a query needs: one time range per distinct selector.

Before evaluating, the engine walks the tree once to find, for every distinct
set of matchers, the union of the time ranges its selectors read (lookback for
instant selectors, ranges for matrix selectors, shifted by `offset` and `@`,
widened by enclosing subqueries). It then opens one Querier over the whole
span and issues one `select` per distinct selector.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from promql import ast
from promql.eval.context import SelectorKey, selector_key
from storage.interfaces import SelectHints
from storage.labels import Matcher


@dataclass(frozen=True, slots=True)
class SelectPlan:
    """One select: matchers, the inclusive ms range to read, and hints for the store."""

    key: SelectorKey
    matchers: tuple[Matcher, ...]
    start_ms: int
    end_ms: int
    hints: SelectHints


@dataclass(frozen=True, slots=True)
class QueryPlan:
    selects: tuple[SelectPlan, ...]

    @property
    def start_ms(self) -> int:
        return min((s.start_ms for s in self.selects), default=0)

    @property
    def end_ms(self) -> int:
        return max((s.end_ms for s in self.selects), default=0)


def plan_query(
    expr: ast.Expr,
    start_ms: int,
    end_ms: int,
    step_ms: int,
    *,
    lookback_ms: int,
    default_subquery_step_ms: int = 60_000,
) -> QueryPlan:
    """The selects needed to evaluate `expr` at steps in `[start_ms, end_ms]`."""
    found: dict[SelectorKey, SelectPlan] = {}

    def resolve(at: ast.At | None, lo: int, hi: int, offset: int) -> tuple[int, int]:
        if at is not None:
            t = {"start": start_ms, "end": end_ms}.get(at.kind, at.ts_ms)
            lo = hi = t
        return lo - offset, hi - offset

    def add(vs: ast.VectorSelector, lo: int, hi: int, hints: SelectHints) -> None:
        key = selector_key(vs)
        old = found.get(key)
        if old is not None:
            lo = min(lo, old.start_ms)
            hi = max(hi, old.end_ms)
            hints = replace(old.hints, start_ms=lo, end_ms=hi)
        found[key] = SelectPlan(key, vs.matchers, lo, hi, replace(hints, start_ms=lo, end_ms=hi))

    def visit(node: ast.Expr, lo: int, hi: int, step: int, parent: ast.Expr | None) -> None:
        if isinstance(node, ast.VectorSelector):
            a, b = resolve(node.at, lo, hi, node.offset_ms)
            add(node, a - lookback_ms + 1, b, SelectHints(step_ms=step))
            return
        if isinstance(node, ast.MatrixSelector):
            vs = node.selector
            a, b = resolve(vs.at, lo, hi, vs.offset_ms)
            func = parent.func if isinstance(parent, ast.Call) else None
            hints = SelectHints(step_ms=step, range_ms=node.range_ms, func=func)
            add(vs, a - node.range_ms + 1, b, hints)
            return
        if isinstance(node, ast.SubqueryExpr):
            a, b = resolve(node.at, lo, hi, node.offset_ms)
            inner_step = node.step_ms or default_subquery_step_ms
            visit(node.expr, a - node.range_ms, b, inner_step, node)
            return
        for child in node.children():
            visit(child, lo, hi, step, node)

    visit(expr, start_ms, end_ms, step_ms, None)
    return QueryPlan(tuple(found.values()))
