"""The only importer of `promql_parser`: PromQL text in, our types out.

`promql-parser` (a Rust parser) decides the structure of the query. Its tree has
no source positions and a few rough edges (a negative `@` timestamp panics on
access, `str()` is not a faithful printer), so the conversion walks the tree in
source order alongside our own token stream: each node consumes the tokens it
was written with, which gives every node its position and lets modifiers
(`offset`, `@`) be read from the text itself. Errors from the parser are
translated here, once, into `ParseError` (`parse_error`), with the reason and
position Prometheus gives (`promql.parse_errors`).
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

import promql_parser

from promql import ast
from promql.errors import InvalidQuery, ParseError
from promql.parse_errors import (
    Reparse,
    locate,
    regex_position,
    regex_reason,
    selector_error,
)
from promql.tokens import Token, tokenize, unquote
from storage.labels import InvalidRegex, Matcher, MatchType

_MATCH_TYPES = {
    str(promql_parser.MatchOp.Equal): MatchType.EQ,
    str(promql_parser.MatchOp.NotEqual): MatchType.NEQ,
    str(promql_parser.MatchOp.Re): MatchType.RE,
    str(promql_parser.MatchOp.NotRe): MatchType.NRE,
}

_VALUE_TYPES: dict[str, ast.ValueType] = {
    str(promql_parser.ValueType.Vector): "vector",
    str(promql_parser.ValueType.Scalar): "scalar",
    str(promql_parser.ValueType.Matrix): "matrix",
    str(promql_parser.ValueType.String): "string",
}

_CARDINALITY: dict[str, ast.Cardinality] = {
    str(promql_parser.VectorMatchCardinality.OneToOne): "one-to-one",
    str(promql_parser.VectorMatchCardinality.ManyToOne): "many-to-one",
    str(promql_parser.VectorMatchCardinality.OneToMany): "one-to-many",
    str(promql_parser.VectorMatchCardinality.ManyToMany): "many-to-many",
}

_PANIC = BaseException  # pyo3 panics derive from BaseException

MAX_QUERY_BYTES = 256 * 1024
"""Longest query text accepted (Prometheus has no limit; see `check_complexity`)."""
MAX_QUERY_DEPTH = 256
"""Deepest query accepted, counted as `check_complexity` does."""

_OPERATORS = frozenset(
    ("+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "and", "or", "unless", "atan2")
)


def check_complexity(text: str, tokens: list[Token] | None = None) -> None:
    """Refuse a query too long or too deep to parse and evaluate safely (InvalidQuery).

    promql-parser needs time superlinear in the depth of a query (a chain of
    2,000 `+` takes seconds) and overflows its stack, killing the process,
    past a few thousand levels; the converter and the evaluator recurse once
    per level too. So before anything parses a query, its depth is bounded
    from its tokens alone: the deepest bracket nesting, plus every operator
    outside braces, plus every `[` (ranges, subqueries). That is at least the
    depth of any path through its tree, since each level of the tree is a
    bracket, an operator or a range, and real queries stay far below the limit.
    """
    size = len(text.encode("utf-8", "surrogateescape"))
    if size > MAX_QUERY_BYTES:
        raise InvalidQuery(
            f"query is {size} bytes long, more than the limit of {MAX_QUERY_BYTES} bytes",
            query=text,
        )
    nesting = deepest = operators = ranges = braces = 0
    for token in tokens if tokens is not None else tokenize(text):
        t = token.text
        if t in ("(", "[", "{"):
            nesting += 1
            deepest = max(deepest, nesting)
            braces += t == "{"
            ranges += t == "["
        elif t in (")", "]", "}"):
            nesting -= 1
            braces -= t == "}"
        elif braces <= 0 and t in _OPERATORS and token.kind in ("op", "ident"):
            operators += 1
    depth = deepest + operators + ranges
    if depth > MAX_QUERY_DEPTH:
        raise InvalidQuery(
            f"query is too deep: {deepest} nested brackets, {operators} operators and "
            f"{ranges} ranges add up to {depth} levels, more than the limit of {MAX_QUERY_DEPTH}",
            query=text,
        )


def _parse(text: str, tokens: list[Token] | None = None) -> promql_parser.Expr:
    check_complexity(text, tokens)
    try:
        return promql_parser.parse(text)
    except ValueError as exc:
        raise parse_error(text, str(exc)) from None
    except _PANIC as exc:  # pragma: no cover - defensive: a panic inside the Rust parser
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise ParseError(str(exc), query=text) from None


def parse_error(text: str, message: str) -> ParseError:
    """promql-parser's `message` about `text` as Prometheus words and places it."""
    reason, position = locate(text, message, _REPARSE)
    return ParseError(reason, query=text, position=position)


def _error_of(text: str) -> str | None:
    try:
        promql_parser.parse(text)
    except ValueError as exc:
        return str(exc)
    return None


def _call_type(text: str) -> str | None:
    try:
        tree = promql_parser.parse(text)
    except ValueError:
        return None
    if not isinstance(tree, promql_parser.Call):
        return None
    return _VALUE_TYPES.get(str(tree.func.return_type))


_REPARSE = Reparse(error=_error_of, call_type=_call_type)


def convert_matchers(selector: promql_parser.VectorSelector, text: str) -> list[Matcher]:
    """The matchers of a parsed vector selector, the metric name included as `__name__`.

    A regex RE2 refuses (promql-parser checks them with another engine) is a
    parse error at its matcher in `text`.
    """
    out = []
    if selector.name:
        out.append(Matcher(MatchType.EQ, "__name__", selector.name))
    for m in selector.matchers.matchers:
        try:
            out.append(Matcher(_MATCH_TYPES[str(m.op)], m.name, m.value))
        except InvalidRegex as exc:
            reason = regex_reason(m.value) or str(exc)
            raise ParseError(reason, query=text, position=regex_position(text, m.value)) from None
    return out


def parse_series_selector(text: str) -> list[Matcher]:
    """Parse a `match[]` series selector such as `up{job=~"api|web"}`.

    Anything but a selector is refused where Prometheus's selector parser stops
    (`1:5: parse error: unexpected "("`). Like Prometheus, a selector must have a
    matcher that does not match the empty string, so that it cannot select every
    series; that refusal is `InvalidQuery`, worded as Prometheus's API words it.
    """
    try:
        expr = _parse(text)
    except ParseError as exc:
        if exc.reason == _EMPTY_MATCHERS:  # promql-parser checks this for every selector
            raise InvalidQuery(_MATCH_EMPTY, query=text) from None
        raise
    if not isinstance(expr, promql_parser.VectorSelector):
        reason, position = selector_error(text)
        raise ParseError(reason, query=text, position=position)
    if expr.matchers.or_matchers:
        raise ParseError("'or' inside a series selector is not supported", query=text)
    matchers = convert_matchers(expr, text)
    if not any(not m.matches_empty for m in matchers):
        raise InvalidQuery(_MATCH_EMPTY, query=text)
    return matchers


_EMPTY_MATCHERS = "vector selector must contain at least one non-empty matcher"
_MATCH_EMPTY = "match[] must contain at least one non-empty matcher"


def parse_expr(text: str) -> ast.Expr:
    """Parse a PromQL expression into our tree (positions are offsets into `text`)."""
    tokens = tokenize(text)
    tree = _parse(text, tokens)
    conv = _Converter(text, tokens)
    try:
        node = conv.convert(tree)
    except _PANIC as exc:  # pragma: no cover - defensive
        if isinstance(exc, KeyboardInterrupt | SystemExit | ParseError):
            raise
        raise ParseError(str(exc), query=text) from None
    _check(node, text)
    return node


_DURATION_UNITS = {
    "y": 365 * 86_400_000,
    "w": 7 * 86_400_000,
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1000,
    "ms": 1,
}
_DURATION_PART = re.compile(r"([0-9]+)(ms|[smhdwy])")


def parse_duration_ms(text: str) -> int:
    """A Prometheus duration (`1h30m`, `500ms`, `0s`, or plain seconds `90`) in ms."""
    text = text.strip()
    sign = 1
    if text[:1] in "+-":
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?", text):
        return sign * round(float(text) * 1000)
    total = 0
    pos = 0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += int(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ParseError(f'bad duration "{text}"')
    return sign * total


def _td_ms(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


class _Converter:
    """Walks the promql-parser tree in source order, consuming our tokens."""

    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.toks = tokens
        self.i = 0

    # token helpers
    def peek(self, k: int = 0) -> Token:
        j = min(self.i + k, len(self.toks) - 1)
        return self.toks[j]

    def take(self) -> Token:
        t = self.toks[self.i]
        if self.i < len(self.toks) - 1:
            self.i += 1
        return t

    def skip(self, text: str) -> bool:
        if self.peek().text.lower() == text:
            self.take()
            return True
        return False

    def skip_balanced(self, open_: str, close: str) -> None:
        """Consume `open_ ... close` including nested pairs."""
        if not self.skip(open_):
            return
        depth = 1
        while depth and self.peek().kind != "eof":
            t = self.take().text
            if t == open_:
                depth += 1
            elif t == close:
                depth -= 1

    def skip_plus(self) -> None:
        while self.peek().text == "+":
            self.take()

    # conversion
    def convert(self, node: promql_parser.Expr) -> ast.Expr:
        self.skip_plus()
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise ParseError(f"unsupported expression {type(node).__name__}", query=self.text)
        return method(node)

    def _NumberLiteral(self, node: promql_parser.NumberLiteral) -> ast.Expr:
        pos = self.peek().pos
        while self.peek().text in ("+", "-"):
            self.take()
        self.take()
        return ast.NumberLiteral(float(node.val), pos)

    def _StringLiteral(self, node: promql_parser.StringLiteral) -> ast.Expr:
        tok = self.take()
        value = node.val
        if tok.kind == "string":
            value = unquote(tok.text)
        return ast.StringLiteral(value, tok.pos)

    def _ParenExpr(self, node: promql_parser.ParenExpr) -> ast.Expr:
        pos = self.take().pos  # (
        inner = self.convert(node.expr)
        self.skip(")")
        return ast.ParenExpr(inner, pos)

    def _UnaryExpr(self, node: promql_parser.UnaryExpr) -> ast.Expr:
        pos = self.take().pos  # -
        inner = self.convert(node.expr)
        return ast.UnaryExpr(inner, pos)

    def _selector_head(self) -> int:
        """Consume `name{...}` (either part optional); return the start position."""
        pos = self.peek().pos
        if self.peek().kind == "ident":
            self.take()
        if self.peek().text == "{":
            self.skip_balanced("{", "}")
        return pos

    def _modifiers(self) -> tuple[int, ast.At | None]:
        """Consume any `offset d` and `@ t` modifiers, in either order."""
        offset = 0
        at: ast.At | None = None
        while True:
            t = self.peek()
            if t.kind == "ident" and t.text.lower() == "offset":
                self.take()
                sign = 1
                while self.peek().text in ("+", "-"):
                    if self.take().text == "-":
                        sign = -sign
                offset = sign * parse_duration_ms(self.take().text)
            elif t.text == "@":
                self.take()
                nxt = self.peek()
                if nxt.kind == "ident" and nxt.text.lower() in ("start", "end"):
                    self.take()
                    self.skip_balanced("(", ")")
                    at = ast.At("start" if nxt.text.lower() == "start" else "end")
                else:
                    at_sign = 1
                    while self.peek().text in ("+", "-"):
                        if self.take().text == "-":
                            at_sign = -at_sign
                    tok = self.take()
                    if tok.kind == "duration":
                        at = ast.At("ts", at_sign * parse_duration_ms(tok.text))
                    else:
                        at = ast.At("ts", _at_ms(at_sign * _number(tok.text), self.text))
            else:
                return offset, at

    def _VectorSelector(self, node: promql_parser.VectorSelector) -> ast.Expr:
        pos = self._selector_head()
        offset, at = self._modifiers()
        if node.matchers.or_matchers:
            raise ParseError(
                "'or' inside a vector selector is not supported", query=self.text, position=pos
            )
        matchers = tuple(convert_matchers(node, self.text))
        name = node.name or _name_from(matchers)
        return ast.VectorSelector(name, matchers, offset, at, pos)

    def _MatrixSelector(self, node: promql_parser.MatrixSelector) -> ast.Expr:
        pos = self._selector_head()
        off1, at1 = self._modifiers()
        self.skip_balanced("[", "]")
        off2, at2 = self._modifiers()
        vs_node = node.vector_selector
        if vs_node.matchers.or_matchers:
            raise ParseError(
                "'or' inside a vector selector is not supported", query=self.text, position=pos
            )
        matchers = tuple(convert_matchers(vs_node, self.text))
        name = vs_node.name or _name_from(matchers)
        vs = ast.VectorSelector(name, matchers, off2 or off1, at2 or at1, pos)
        return ast.MatrixSelector(vs, _td_ms(node.range), pos)

    def _SubqueryExpr(self, node: promql_parser.SubqueryExpr) -> ast.Expr:
        pos = self.peek().pos
        inner = self.convert(node.expr)
        self.skip_balanced("[", "]")
        offset, at = self._modifiers()
        step = node.step
        return ast.SubqueryExpr(
            inner,
            _td_ms(node.range),
            _td_ms(step) if step is not None else 0,
            offset,
            at,
            pos,
        )

    def _Call(self, node: promql_parser.Call) -> ast.Expr:
        pos = self.take().pos  # name
        self.skip("(")
        args = []
        for k, arg in enumerate(node.args):
            if k:
                self.skip(",")
            args.append(self.convert(arg))
        self.skip(")")
        func = node.func
        ret = _VALUE_TYPES.get(str(func.return_type), "vector")
        return ast.Call(func.name, tuple(args), ret, pos)

    def _grouping_clause(self) -> None:
        if self.peek().kind == "ident" and self.peek().text.lower() in ("by", "without"):
            self.take()
            self.skip_balanced("(", ")")

    def _AggregateExpr(self, node: promql_parser.AggregateExpr) -> ast.Expr:
        pos = self.take().pos  # op
        self._grouping_clause()
        self.skip("(")
        param = None
        if node.param is not None:
            param = self.convert(node.param)
            self.skip(",")
        inner = self.convert(node.expr)
        self.skip(")")
        self._grouping_clause()
        mod = node.modifier
        grouping: tuple[str, ...] = ()
        without = False
        if mod is not None:
            grouping = tuple(mod.labels)
            without = str(mod.type) == str(promql_parser.AggModifierType.Without)
        return ast.AggregateExpr(str(node.op).lower(), inner, param, grouping, without, pos)

    def _BinaryExpr(self, node: promql_parser.BinaryExpr) -> ast.Expr:
        lhs = self.convert(node.lhs)
        op = str(node.op).lower()
        self.take()  # operator token
        while self.peek().kind == "ident" and self.peek().text.lower() in (
            "bool",
            "on",
            "ignoring",
            "group_left",
            "group_right",
        ):
            self.take()
            if self.peek().text == "(":
                self.skip_balanced("(", ")")
        rhs = self.convert(node.rhs)
        mod = node.modifier
        return_bool = bool(mod is not None and mod.return_bool)
        matching = None
        if lhs.type == "vector" and rhs.type == "vector":
            matching = _matching(mod, op)
        return ast.BinaryExpr(op, lhs, rhs, return_bool, matching, _first_pos(lhs))


def _matching(mod: promql_parser.BinModifier | None, op: str) -> ast.VectorMatching:
    if mod is None:
        card: ast.Cardinality = "many-to-many" if op in ast.SET_OPS else "one-to-one"
        return ast.VectorMatching(card)
    card = _CARDINALITY.get(str(mod.card), "one-to-one")
    if op in ast.SET_OPS:
        card = "many-to-many"
    on = False
    labels: tuple[str, ...] = ()
    m = mod.matching
    if m is not None:
        on = str(m.type) == str(promql_parser.LabelModifierType.Include)
        labels = tuple(m.labels)
    include = tuple(mod.group_labels or ())
    return ast.VectorMatching(card, on, labels, include)


def _first_pos(expr: ast.Expr) -> int:
    return getattr(expr, "pos", -1)


def _name_from(matchers: tuple[Matcher, ...]) -> str | None:
    for m in matchers:
        if m.name == "__name__" and m.type is MatchType.EQ:
            return m.value
    return None


def _number(text: str) -> float:
    low = text.lower()
    if low in ("inf", "+inf"):
        return math.inf
    if low == "nan":
        return math.nan
    if low.startswith("0x"):
        return float(int(low, 16))
    return float(text)


def _at_ms(seconds: float, query: str) -> int:
    if not math.isfinite(seconds):
        raise ParseError(f"timestamp out of bounds for @ modifier: {seconds}", query=query)
    return round(seconds * 1000)


# --- checks promql-parser does not make -------------------------------------


def _check(node: ast.Expr, text: str) -> None:
    for n in ast.walk(node):
        if isinstance(n, ast.VectorSelector) and not any(not m.matches_empty for m in n.matchers):
            raise ParseError(
                _EMPTY_MATCHERS,
                query=text,
                position=n.pos,
            )
