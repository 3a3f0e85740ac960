"""Our own PromQL syntax tree: frozen dataclasses with source positions.

`promql.parser` builds these from the `promql-parser` package's tree, so the
rest of the engine never sees that package's types. Times and durations are
int milliseconds. `pos` is the 0-based character offset of the node's first
character in the query text (-1 if unknown); `render_position` turns it into
Prometheus's `line:col` form used at the end of annotation messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

from promql.errors import line_col
from storage.labels import Matcher

ValueType = Literal["scalar", "vector", "matrix", "string"]

AtKind = Literal["ts", "start", "end"]


@dataclass(frozen=True, slots=True)
class At:
    """An `@` modifier: a fixed timestamp, or the query's `start()` / `end()`."""

    kind: AtKind
    ts_ms: int = 0


@dataclass(frozen=True, slots=True)
class Expr:
    """Base of all nodes."""

    @property
    def type(self) -> ValueType:  # pragma: no cover - overridden
        raise NotImplementedError

    def children(self) -> tuple[Expr, ...]:
        return ()


@dataclass(frozen=True, slots=True)
class NumberLiteral(Expr):
    value: float
    pos: int = -1

    @property
    def type(self) -> ValueType:
        return "scalar"


@dataclass(frozen=True, slots=True)
class StringLiteral(Expr):
    value: str
    pos: int = -1

    @property
    def type(self) -> ValueType:
        return "string"


@dataclass(frozen=True, slots=True)
class VectorSelector(Expr):
    """`name{matchers} offset o @ t`; `matchers` include `__name__` when a name is given."""

    name: str | None
    matchers: tuple[Matcher, ...]
    offset_ms: int = 0
    at: At | None = None
    pos: int = -1

    @property
    def type(self) -> ValueType:
        return "vector"


@dataclass(frozen=True, slots=True)
class MatrixSelector(Expr):
    """`selector[range]`; offset and `@` live on the inner selector."""

    selector: VectorSelector
    range_ms: int
    pos: int = -1

    @property
    def type(self) -> ValueType:
        return "matrix"

    def children(self) -> tuple[Expr, ...]:
        return (self.selector,)


@dataclass(frozen=True, slots=True)
class SubqueryExpr(Expr):
    """`expr[range:step] offset o @ t`; `step_ms == 0` means the default step."""

    expr: Expr
    range_ms: int
    step_ms: int = 0
    offset_ms: int = 0
    at: At | None = None
    pos: int = -1

    @property
    def type(self) -> ValueType:
        return "matrix"

    def children(self) -> tuple[Expr, ...]:
        return (self.expr,)


@dataclass(frozen=True, slots=True)
class Call(Expr):
    func: str
    args: tuple[Expr, ...]
    return_type: ValueType = "vector"
    pos: int = -1

    @property
    def type(self) -> ValueType:
        return self.return_type

    def children(self) -> tuple[Expr, ...]:
        return self.args


@dataclass(frozen=True, slots=True)
class AggregateExpr(Expr):
    """`op by|without (grouping) ([param,] expr)`; `by ()` and no clause are the same."""

    op: str
    expr: Expr
    param: Expr | None = None
    grouping: tuple[str, ...] = ()
    without: bool = False
    pos: int = -1

    @property
    def type(self) -> ValueType:
        return "vector"

    def children(self) -> tuple[Expr, ...]:
        return (self.param, self.expr) if self.param is not None else (self.expr,)


Cardinality = Literal["one-to-one", "many-to-one", "one-to-many", "many-to-many"]


@dataclass(frozen=True, slots=True)
class VectorMatching:
    """How two vectors are matched: `on`/`ignoring` labels and `group_x` includes."""

    card: Cardinality = "one-to-one"
    on: bool = False
    labels: tuple[str, ...] = ()
    include: tuple[str, ...] = ()


SET_OPS = frozenset({"and", "or", "unless"})
COMPARISON_OPS = frozenset({"==", "!=", ">", "<", ">=", "<="})
ARITHMETIC_OPS = frozenset({"+", "-", "*", "/", "%", "^", "atan2"})


@dataclass(frozen=True, slots=True)
class BinaryExpr(Expr):
    op: str
    lhs: Expr
    rhs: Expr
    return_bool: bool = False
    matching: VectorMatching | None = None
    """None unless both sides are vectors."""
    pos: int = -1

    @property
    def type(self) -> ValueType:
        if self.lhs.type == "scalar" and self.rhs.type == "scalar":
            return "scalar"
        return "vector"

    def children(self) -> tuple[Expr, ...]:
        return (self.lhs, self.rhs)


@dataclass(frozen=True, slots=True)
class UnaryExpr(Expr):
    """Unary minus (unary plus is dropped by the parser)."""

    expr: Expr
    pos: int = -1

    @property
    def type(self) -> ValueType:
        return self.expr.type

    def children(self) -> tuple[Expr, ...]:
        return (self.expr,)


@dataclass(frozen=True, slots=True)
class ParenExpr(Expr):
    expr: Expr
    pos: int = -1

    @property
    def type(self) -> ValueType:
        return self.expr.type

    def children(self) -> tuple[Expr, ...]:
        return (self.expr,)


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query: the tree plus the text its positions refer to."""

    expr: Expr
    text: str = field(default="", compare=False)


def walk(expr: Expr) -> Iterator[Expr]:
    """Every node of the tree, parents before children, in source order."""
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children()))


def transform(expr: Expr, fn: Callable[[Expr], Expr | None]) -> Expr:
    """Rebuild the tree bottom-up, replacing each node by `fn(node)` unless it returns None."""
    kids = expr.children()
    if kids:
        new_kids = tuple(transform(k, fn) for k in kids)
        if any(a is not b for a, b in zip(new_kids, kids, strict=True)):
            expr = _with_children(expr, new_kids)
    out = fn(expr)
    return expr if out is None else out


def _with_children(expr: Expr, kids: tuple[Expr, ...]) -> Expr:
    if isinstance(expr, MatrixSelector):
        assert isinstance(kids[0], VectorSelector)
        return replace(expr, selector=kids[0])
    if isinstance(expr, SubqueryExpr | UnaryExpr | ParenExpr):
        return replace(expr, expr=kids[0])
    if isinstance(expr, Call):
        return replace(expr, args=kids)
    if isinstance(expr, AggregateExpr):
        if expr.param is not None:
            return replace(expr, param=kids[0], expr=kids[1])
        return replace(expr, expr=kids[0])
    if isinstance(expr, BinaryExpr):
        return replace(expr, lhs=kids[0], rhs=kids[1])
    return expr


def render_position(text: str, pos: int) -> str:
    """Prometheus's `line:col` (both 1-based) of offset `pos` in `text`, "" if unknown."""
    if pos < 0:
        return ""
    return line_col(text, pos)


def unwrap_parens(expr: Expr) -> Expr:
    while isinstance(expr, ParenExpr):
        expr = expr.expr
    return expr
