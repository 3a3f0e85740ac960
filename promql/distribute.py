"""Query pushdown: outer aggregations computed by the pull clusters themselves.

`plan_pushdown` finds the top-most aggregations (not inside a subquery)
whose result can be computed per cluster and combined: `sum`, `min`, `max`,
`count`, `group`, `avg` (sums and counts in one member query), and `topk` / `bottomk` (each
cluster's top k is a pre-filter of the global top k), `by` or `without`,
with or without `cluster`. Such a node becomes a `PushedAggregate`: each
eligible `RemoteEngine` evaluates the node's inner part with its own
`/api/v1/query_range` and returns partial aggregates; the rest of the fleet
(the head and clusters that were not pushed to) evaluates the same
aggregation locally; the engine combines both with the combining op.

The inner part is pushed only if its series never mix clusters, so that
evaluating it per cluster is evaluating it globally and splitting by
cluster: selectors, functions except those that make series out of
nothing or collapse them (`absent`, `vector`, `scalar`, ...), binary
operators whose matching keeps `cluster` (no `on` without it, no `ignoring`
with it), nested aggregations that keep `cluster`, subqueries with an
explicit step. It may not name `cluster` outside selector matchers (members
do not know our label), nor `__name__` in groupings (Prometheus 2 and 3
drop names at different times), nor labels the engine says it cannot see
(`opaque_labels`: replica labels under dedup, dropped external labels, the
workspace label). Matchers on `cluster` and on a member's external labels
are decided per member: satisfied ones are removed, and a member some
selector excludes is left to the local side. Anything else goes raw.

A member whose Prometheus is older than 3.0 (`legacy`) selects ranges
left-closed; its range selectors and subquery ranges are sent 1 ms shorter,
which selects exactly the 3.x window, except under `rate`, `increase` and
`delta`, whose results depend on the range itself (see the README for what
that and the instant-selector lookback can change).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from promql import ast
from promql.eval.context import SelectorKey
from promql.printer import format_expr
from promql.value import Matrix
from storage.interfaces import Queryable, SeriesSet
from storage.labels import CLUSTER_LABEL, METRIC_NAME, Labels

PUSHABLE_OPS = frozenset({"sum", "min", "max", "count", "group", "avg", "topk", "bottomk"})
COMBINE_OP = {
    "sum": "sum",
    "min": "min",
    "max": "max",
    "count": "sum",
    "group": "group",
    "topk": "topk",
    "bottomk": "bottomk",
}
UNSAFE_FUNCTIONS = frozenset(
    {"absent", "absent_over_time", "vector", "scalar", "time", "timestamp", "info", "pi"}
)
LEGACY_FUNCTIONS = frozenset(
    """abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes
    clamp clamp_max clamp_min count_over_time cos cosh day_of_month day_of_week day_of_year
    days_in_month deg delta deriv exp floor histogram_quantile holt_winters hour idelta increase
    irate label_join label_replace last_over_time ln log10 log2 max_over_time min_over_time
    minute month predict_linear present_over_time quantile_over_time rad rate resets round sgn
    sin sinh sort sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh
    timestamp year""".split()
)
"""Functions a Prometheus 2.42 member knows (anything newer goes raw for it)."""
RANGE_IN_RESULT = frozenset({"rate", "increase", "delta"})
AVG_COUNT_LABEL = "__pushdown_count__"
"""Marks the count series in a member's answer to a pushed `avg` (sums come unmarked)."""


class RemoteEngine(Protocol):
    """A member that evaluates PromQL itself (after thanos-io/promql-engine `api/remote.go`).

    `partition_labels` are the labels every series of the member carries in
    the raw path (`cluster` and its external labels); `legacy` says it
    evaluates with Prometheus 2.x semantics. `query` raises `StorageError`
    when the member cannot answer; its series carry no `cluster` label.
    """

    @property
    def name(self) -> str: ...

    @property
    def partition_labels(self) -> Labels: ...

    @property
    def dropped_labels(self) -> Collection[str]: ...

    @property
    def legacy(self) -> bool: ...

    async def query(
        self, query: str, start_ms: int, end_ms: int, step_ms: int, *, instant: bool
    ) -> Matrix: ...


class Distributable(Protocol):
    """A Queryable that can push work to members: its engines, and itself without them."""

    def remote_engines(self) -> Sequence[RemoteEngine]: ...

    def without(self, names: Collection[str]) -> Queryable: ...

    @property
    def opaque_labels(self) -> Collection[str]: ...

    @property
    def partial_response(self) -> bool: ...


@dataclass(frozen=True, slots=True, eq=False)
class RemotePart:
    """One member's share of a pushed aggregation: the queries it runs."""

    engine: RemoteEngine
    queries: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class PushedAggregate(ast.Expr):
    """An aggregation split into member queries and a local part (see the module docstring).

    `children()` is empty on purpose: the outer plan must not select the
    local part's series from the whole fleet. The engine fills `local_data`
    (series from the fleet without the pushed members) and `results`
    (per part, per query) before evaluation.
    """

    agg: ast.AggregateExpr
    parts: tuple[RemotePart, ...]
    local_data: dict[SelectorKey, SeriesSet] = field(default_factory=dict)
    results: dict[int, list[Matrix | None]] = field(default_factory=dict)
    pos: int = -1

    @property
    def type(self) -> ast.ValueType:
        return "vector"

    @property
    def pushed_names(self) -> frozenset[str]:
        return frozenset(p.engine.name for p in self.parts)


def plan_pushdown(
    expr: ast.Expr,
    engines: Sequence[RemoteEngine],
    *,
    opaque_labels: Collection[str] = (),
) -> tuple[ast.Expr, list[PushedAggregate]]:
    """`expr` with every pushable aggregation replaced by a `PushedAggregate`."""
    pushed: list[PushedAggregate] = []
    if not engines:
        return expr, pushed
    opaque = frozenset(opaque_labels)

    def visit(node: ast.Expr) -> ast.Expr:
        if isinstance(node, ast.SubqueryExpr | ast.MatrixSelector | ast.VectorSelector):
            return node
        if isinstance(node, ast.AggregateExpr):
            planned = _plan_node(node, engines, opaque)
            if planned is not None:
                pushed.append(planned)
                return planned
        kids = node.children()
        if not kids:
            return node
        new = tuple(visit(k) for k in kids)
        if all(a is b for a, b in zip(new, kids, strict=True)):
            return node
        return ast._with_children(node, new)

    return visit(expr), pushed


def _plan_node(
    node: ast.AggregateExpr, engines: Sequence[RemoteEngine], opaque: frozenset[str]
) -> PushedAggregate | None:
    if node.op not in PUSHABLE_OPS:
        return None
    if node.param is not None and not isinstance(ast.unwrap_parens(node.param), ast.NumberLiteral):
        return None
    if METRIC_NAME in node.grouping or opaque & set(node.grouping):
        return None
    if not _cluster_local(node.expr, opaque):
        return None
    parts = []
    for engine in engines:
        inner = _for_member(node.expr, engine)
        if inner is None:
            continue
        if engine.legacy and not _legacy_ok(inner):
            continue
        grouping = tuple(g for g in node.grouping if g != CLUSTER_LABEL or node.without)
        if node.op == "avg":
            # One round trip: the sums, and the counts marked by a label.
            total = format_expr(replace(node, op="sum", expr=inner, grouping=grouping))
            count = format_expr(replace(node, op="count", expr=inner, grouping=grouping))
            query = f'{total} or label_replace({count}, "{AVG_COUNT_LABEL}", "count", "", "")'
        else:
            query = format_expr(replace(node, expr=inner, grouping=grouping))
        parts.append(RemotePart(engine, (query,)))
    if not parts:
        return None
    return PushedAggregate(node, tuple(parts), pos=node.pos)


def _cluster_local(expr: ast.Expr, opaque: frozenset[str]) -> bool:
    """Whether every output series of `expr` depends on series of one cluster only."""
    for node in ast.walk(expr):
        if isinstance(node, ast.VectorSelector):
            if any(m.name in opaque for m in node.matchers):
                return False
        elif isinstance(node, ast.SubqueryExpr):
            if not node.step_ms:
                return False
        elif isinstance(node, ast.Call):
            if node.func in UNSAFE_FUNCTIONS:
                return False
            if node.func in ("label_replace", "label_join") and len(node.args) > 1:
                dst = ast.unwrap_parens(node.args[1])
                names = {CLUSTER_LABEL, METRIC_NAME, *opaque}
                if not isinstance(dst, ast.StringLiteral) or dst.value in names:
                    return False
        elif isinstance(node, ast.AggregateExpr):
            names = set(node.grouping)
            if METRIC_NAME in names or names & opaque:
                return False
            keeps = (CLUSTER_LABEL not in names) if node.without else (CLUSTER_LABEL in names)
            if not keeps:
                return False
        elif isinstance(node, ast.BinaryExpr) and node.matching is not None:
            m = node.matching
            names = set(m.labels) | set(m.include)
            if METRIC_NAME in names or names & opaque:
                return False
            if m.on and CLUSTER_LABEL not in m.labels:
                return False
            if not m.on and CLUSTER_LABEL in m.labels:
                return False
    return True


def _for_member(expr: ast.Expr, engine: RemoteEngine) -> ast.Expr | None:
    """`expr` as the member sees it: partition matchers decided, legacy ranges adjusted."""
    partition = engine.partition_labels
    dropped = set(engine.dropped_labels)
    excluded = unselective = False

    def fix(node: ast.Expr) -> ast.Expr | None:
        nonlocal excluded, unselective
        if not isinstance(node, ast.VectorSelector):
            return None
        kept = []
        for m in node.matchers:
            if m.name in dropped:
                excluded |= not m.matches("")
            elif partition.has(m.name):
                excluded |= not m.matches(partition.get(m.name))
            else:
                kept.append(m)
        if all(m.matches("") for m in kept):
            unselective = True  # the member would need a matcher it cannot be sent
        if len(kept) == len(node.matchers):
            return None
        return replace(node, matchers=tuple(kept))

    out = ast.transform(expr, fix)
    if excluded or unselective:
        return None
    if engine.legacy:
        out = _left_open_ranges(out)
    return out


def _legacy_ok(expr: ast.Expr) -> bool:
    for node in ast.walk(expr):
        if isinstance(node, ast.Call) and node.func not in LEGACY_FUNCTIONS:
            return False
        if isinstance(node, ast.AggregateExpr) and node.op in ("limitk", "limit_ratio"):
            return False
    return True


def _left_open_ranges(expr: ast.Expr) -> ast.Expr:
    """Ranges 1 ms shorter (left-closed over whole ms = left-open), except where the
    range enters the result (rate, increase, delta)."""
    keep: set[int] = set()
    for node in ast.walk(expr):
        if isinstance(node, ast.Call) and node.func in RANGE_IN_RESULT:
            keep.update(id(a) for a in node.args)

    def fix(node: ast.Expr) -> ast.Expr | None:
        if isinstance(node, ast.MatrixSelector) and id(node) not in keep and node.range_ms > 1:
            return replace(node, range_ms=node.range_ms - 1)
        if isinstance(node, ast.SubqueryExpr) and id(node) not in keep and node.range_ms > 1:
            return replace(node, range_ms=node.range_ms - 1)
        return None

    return ast.transform(expr, fix)
