"""Types of `promql-parser` 0.12 (a Rust extension), as it behaves at run time.

Written from the installed module (`dir()`, attribute values of parsed trees,
`__text_signature__`s); the stub the wheel ships declares the enum-like classes
as `enum.Enum` and some attributes loosely, which is not what they are. mypy
reads this one instead (`mypy_path` in pyproject.toml). Where the package
surprises, the docstring says so. Re-check it when the pinned version changes.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import ClassVar, final

# --- enum-like classes ---------------------------------------------------------
# pyo3 enums, not `enum.Enum`: members are class attributes of the class's own
# type, compare with `==`, convert with `int()`, print as "MatchOp.Re"; they are
# unhashable (no dict keys or sets) and do not order.

@final
class MatchOp:
    Equal: ClassVar[MatchOp]
    NotEqual: ClassVar[MatchOp]
    Re: ClassVar[MatchOp]
    NotRe: ClassVar[MatchOp]
    def __int__(self) -> int: ...

@final
class ValueType:
    Vector: ClassVar[ValueType]
    Scalar: ClassVar[ValueType]
    Matrix: ClassVar[ValueType]
    String: ClassVar[ValueType]
    def __int__(self) -> int: ...

@final
class AggModifierType:
    By: ClassVar[AggModifierType]
    Without: ClassVar[AggModifierType]
    def __int__(self) -> int: ...

@final
class LabelModifierType:
    """`Include` is `on (...)`, `Exclude` is `ignoring (...)`."""

    Include: ClassVar[LabelModifierType]
    Exclude: ClassVar[LabelModifierType]
    def __int__(self) -> int: ...

@final
class VectorMatchCardinality:
    OneToOne: ClassVar[VectorMatchCardinality]
    ManyToOne: ClassVar[VectorMatchCardinality]
    OneToMany: ClassVar[VectorMatchCardinality]
    ManyToMany: ClassVar[VectorMatchCardinality]
    def __int__(self) -> int: ...

@final
class AtModifierType:
    Start: ClassVar[AtModifierType]
    End: ClassVar[AtModifierType]
    At: ClassVar[AtModifierType]
    def __int__(self) -> int: ...

@final
class TokenType:
    """An operator token; `str()` gives its text ("+", "sum", "and", "atan2")."""

# --- tree nodes ----------------------------------------------------------------
# Instances come only from `parse()`; the node classes cannot be constructed.

class Expr:
    @staticmethod
    def parse(input: str) -> Expr: ...
    def prettify(self) -> str: ...

@final
class AggregateExpr(Expr):
    op: TokenType
    expr: Expr
    param: Expr | None
    """The `k` of topk, `q` of quantile, label of count_values; None for the rest."""
    modifier: AggModifier | None

@final
class AggModifier:
    type: AggModifierType
    labels: list[str]
    def __init__(self, type: AggModifierType, labels: list[str]) -> None: ...

@final
class UnaryExpr(Expr):
    expr: Expr

@final
class BinaryExpr(Expr):
    op: TokenType
    lhs: Expr
    rhs: Expr
    modifier: BinModifier | None
    """None when the operator has no modifier at all (e.g. `a + b`, `1 + 2`)."""

@final
class BinModifier:
    card: VectorMatchCardinality
    matching: LabelModifier | None
    return_bool: bool
    group_labels: list[str] | None
    """None without `group_left`/`group_right`; [] with one but no labels."""
    fill_values: VectorMatchFillValues
    def __init__(
        self,
        card: VectorMatchCardinality,
        return_bool: bool,
        matching: LabelModifier | None = None,
        group_labels: list[str] | None = None,
        fill_values: VectorMatchFillValues | None = None,
    ) -> None: ...

@final
class VectorMatchFillValues:
    lhs: float | None
    rhs: float | None
    def __init__(self, lhs: float | None = None, rhs: float | None = None) -> None: ...

@final
class LabelModifier:
    type: LabelModifierType
    labels: list[str]
    def __init__(self, type: LabelModifierType, labels: list[str]) -> None: ...

@final
class ParenExpr(Expr):
    expr: Expr

@final
class SubqueryExpr(Expr):
    expr: Expr
    offset: timedelta | None
    at: AtModifier | None
    range: timedelta
    step: timedelta | None
    """None for `[5m:]` (the default resolution)."""

@final
class AtModifier:
    type: AtModifierType
    at: datetime | None
    """The `@` time (UTC), None for `start()` / `end()`. Reading it for a time
    before 1970 raises `pyo3_runtime.PanicException`, a BaseException."""

@final
class NumberLiteral(Expr):
    val: float

@final
class StringLiteral(Expr):
    val: str
    """The value with escapes decoded; a byte escape such as `\\xff` comes back as the
    code point U+00FF, not as the byte."""

@final
class Matcher:
    op: MatchOp
    name: str
    value: str
    def __init__(self, op: MatchOp, name: str, value: str) -> None: ...

@final
class Matchers:
    matchers: list[Matcher]
    or_matchers: list[list[Matcher]]
    """The alternatives of `{a="1" or b="2"}`; then `matchers` is empty."""
    def __init__(self, matchers: list[Matcher]) -> None: ...
    def with_or_matchers(self, or_matchers: list[list[Matcher]]) -> Matchers: ...

@final
class VectorSelector(Expr):
    name: str | None
    """The metric name written before the braces; None for `{__name__="x"}`."""
    matchers: Matchers
    """The braces' matchers only: the name above is not among them."""
    offset: timedelta | None
    at: AtModifier | None

@final
class MatrixSelector(Expr):
    vector_selector: VectorSelector
    """Carries the `offset` and `@` of the whole range selector."""
    range: timedelta

@final
class Call(Expr):
    func: Function
    args: list[Expr]

@final
class Function:
    name: str
    arg_types: list[ValueType]
    variadic: int
    """0: fixed arguments; -1: the last type repeats; n > 0: up to n optional ones."""
    return_type: ValueType
    experimental: bool
    def __init__(
        self,
        name: str,
        arg_types: list[ValueType],
        return_type: ValueType,
        variadic: int = 0,
        experimental: bool = False,
    ) -> None: ...

# --- functions -----------------------------------------------------------------

def parse(input: str) -> Expr:
    """The tree of a PromQL expression.

    Raises ValueError with a message and no position ("unclosed left
    parenthesis", "invalid promql query", ...).
    """

def parse_duration(duration: str) -> timedelta:
    """A Prometheus duration ("1h30m"); ValueError when malformed."""

def display_duration(delta: timedelta) -> str: ...
def register_extra_functions(functions: list[Function]) -> None:
    """Process-global; ValueError for the name of a built-in function."""

def clear_extra_functions() -> None: ...
def walk(
    expr: Expr,
    pre_visit: Callable[[Expr], bool | None] | None = None,
    post_visit: Callable[[Expr], bool | None] | None = None,
) -> bool: ...
def transform(
    expr: Expr,
    pre_visit: Callable[[Expr], Expr | None] | None = None,
    post_visit: Callable[[Expr], Expr | None] | None = None,
) -> Expr: ...
