"""Print our syntax tree back as PromQL (for `/api/v1/format_query` and round trips).

The output follows Prometheus's `String()` forms (`sum by (job) (rate(x[5m]))`,
`foo @ 100.000 offset 5m`), quotes what must be quoted (UTF-8 metric and label
names, escapes in strings) and parses back to the same tree.
"""

from __future__ import annotations

import math
import re

from promql import ast
from promql.eval.gofmt import go_quote
from storage.labels import METRIC_NAME, Matcher, MatchType

_IDENT = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*$")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "atan2",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "inf",
        "nan",
    }
)

_UNITS = (
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
)


def format_duration(ms: int) -> str:
    """Prometheus `model.Duration` text: `1h30m`, `500ms`, `0s`; negative gets a `-`."""
    if ms == 0:
        return "0s"
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    parts = []
    for unit, size in _UNITS:
        if ms >= size:
            n, ms = divmod(ms, size)
            parts.append(f"{n}{unit}")
    return sign + "".join(parts)


def quote(value: str) -> str:
    """A PromQL double-quoted string literal (Go `%q`, so invalid UTF-8 survives)."""
    return go_quote(value)


def format_number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _label_name(name: str) -> str:
    return name if _LABEL.match(name) else quote(name)


def _matcher(m: Matcher) -> str:
    return f"{_label_name(m.name)}{m.type.value}{quote(m.value)}"


def _selector(vs: ast.VectorSelector) -> str:
    name = vs.name if vs.name and _IDENT.match(vs.name) and vs.name not in _KEYWORDS else None
    rest = []
    for m in vs.matchers:
        if name is not None and m.name == METRIC_NAME and m.type is MatchType.EQ:
            if m.value == name:
                continue
        rest.append(_matcher(m))
    if name is None:
        return "{" + ", ".join(rest) + "}"
    return name + ("{" + ", ".join(rest) + "}" if rest else "")


def _modifiers(at: ast.At | None, offset_ms: int) -> str:
    out = ""
    if at is not None:
        if at.kind == "start":
            out += " @ start()"
        elif at.kind == "end":
            out += " @ end()"
        else:
            out += f" @ {at.ts_ms / 1000:.3f}"
    if offset_ms:
        out += f" offset {format_duration(offset_ms)}"
    return out


def _grouping(e: ast.AggregateExpr) -> str:
    if e.without:
        return f" without ({', '.join(map(_label_name, e.grouping))}) "
    if e.grouping:
        return f" by ({', '.join(map(_label_name, e.grouping))}) "
    return ""


def format_expr(e: ast.Expr) -> str:
    """PromQL text for `e` (single line)."""
    if isinstance(e, ast.NumberLiteral):
        return format_number(e.value)
    if isinstance(e, ast.StringLiteral):
        return quote(e.value)
    if isinstance(e, ast.VectorSelector):
        return _selector(e) + _modifiers(e.at, e.offset_ms)
    if isinstance(e, ast.MatrixSelector):
        vs = e.selector
        return f"{_selector(vs)}[{format_duration(e.range_ms)}]" + _modifiers(vs.at, vs.offset_ms)
    if isinstance(e, ast.SubqueryExpr):
        step = format_duration(e.step_ms) if e.step_ms else ""
        return f"{format_expr(e.expr)}[{format_duration(e.range_ms)}:{step}]" + _modifiers(
            e.at, e.offset_ms
        )
    if isinstance(e, ast.ParenExpr):
        return f"({format_expr(e.expr)})"
    if isinstance(e, ast.UnaryExpr):
        return f"-{format_expr(e.expr)}"
    if isinstance(e, ast.Call):
        return f"{e.func}({', '.join(format_expr(a) for a in e.args)})"
    if isinstance(e, ast.AggregateExpr):
        args = format_expr(e.expr)
        if e.param is not None:
            args = f"{format_expr(e.param)}, {args}"
        grouping = _grouping(e)
        return f"{e.op}{grouping.rstrip() + ' ' if grouping else ''}({args})"
    if isinstance(e, ast.BinaryExpr):
        mod = ""
        if e.return_bool:
            mod += " bool"
        m = e.matching
        if m is not None:
            if m.on or m.labels:
                kw = "on" if m.on else "ignoring"
                mod += f" {kw} ({', '.join(map(_label_name, m.labels))})"
            if m.card in ("many-to-one", "one-to-many"):
                kw = "group_left" if m.card == "many-to-one" else "group_right"
                mod += f" {kw} ({', '.join(map(_label_name, m.include))})"
        return f"{format_expr(e.lhs)} {e.op}{mod} {format_expr(e.rhs)}"
    raise TypeError(f"cannot print {type(e).__name__}")
