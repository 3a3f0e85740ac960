"""Parsing into our tree: structure, positions, modifiers, and errors."""

from __future__ import annotations

import pytest

from promql import ast
from promql.errors import ParseError
from promql.parser import parse_duration_ms, parse_expr
from storage.labels import MatchType


def test_positions_point_at_each_argument() -> None:
    text = "count(limit_ratio(1.1, http_requests))"
    e = parse_expr(text)
    assert isinstance(e, ast.AggregateExpr)
    inner = e.expr
    assert isinstance(inner, ast.AggregateExpr)
    assert inner.param is not None
    assert ast.render_position(text, inner.param.pos) == "1:19"
    assert ast.render_position(text, inner.expr.pos) == "1:24"


def test_positions_on_later_lines() -> None:
    text = "sum(\n  rate(foo[5m])\n)"
    e = parse_expr(text)
    assert isinstance(e, ast.AggregateExpr)
    assert ast.render_position(text, e.expr.pos) == "2:3"


def test_selector_modifiers_in_either_order() -> None:
    a = parse_expr("foo offset 5m @ 100")
    b = parse_expr("foo @ 100 offset 5m")
    for e in (a, b):
        assert isinstance(e, ast.VectorSelector)
        assert e.offset_ms == 300_000
        assert e.at == ast.At("ts", 100_000)


def test_negative_at_and_offset() -> None:
    e = parse_expr("foo @ -5 offset -1m")
    assert isinstance(e, ast.VectorSelector)
    assert e.at == ast.At("ts", -5000)
    assert e.offset_ms == -60_000


def test_start_end_and_duration_at() -> None:
    e = parse_expr("rate(foo[5m] @ start())")
    assert isinstance(e, ast.Call)
    m = e.args[0]
    assert isinstance(m, ast.MatrixSelector)
    assert m.selector.at == ast.At("start")
    e2 = parse_expr("foo @ 1m40s")
    assert isinstance(e2, ast.VectorSelector)
    assert e2.at == ast.At("ts", 100_000)


def test_subquery_default_step_and_offset() -> None:
    e = parse_expr("max_over_time(rate(foo[1m])[30m:] offset 2m)")
    assert isinstance(e, ast.Call)
    sq = e.args[0]
    assert isinstance(sq, ast.SubqueryExpr)
    assert (sq.range_ms, sq.step_ms, sq.offset_ms) == (1_800_000, 0, 120_000)


def test_matchers_and_utf8_names() -> None:
    e = parse_expr('{"my.metric", job=~"a|b", x!="y"}')
    assert isinstance(e, ast.VectorSelector)
    assert e.name == "my.metric"
    kinds = {(m.name, m.type) for m in e.matchers}
    assert ("__name__", MatchType.EQ) in kinds
    assert ("job", MatchType.RE) in kinds


def test_numbers_fold_unary_minus() -> None:
    for text, value in [("0x1F", 31.0), ("1e3", 1000.0), ("- - -1", -1.0), ("-Inf", float("-inf"))]:
        e = parse_expr(text)
        assert isinstance(e, ast.NumberLiteral)
        assert e.value == value


def test_binary_matching() -> None:
    e = parse_expr("a > bool on(x) group_left(y) b")
    assert isinstance(e, ast.BinaryExpr)
    assert e.return_bool
    assert e.matching == ast.VectorMatching("many-to-one", True, ("x",), ("y",))
    s = parse_expr("a and b")
    assert isinstance(s, ast.BinaryExpr)
    assert s.matching is not None
    assert s.matching.card == "many-to-many"


@pytest.mark.parametrize(
    "text",
    ["sum(", "foo{", "rate(foo)", '{job=~""}', "foo[5m", "1 +"],
)
def test_bad_queries_raise_parse_error(text: str) -> None:
    with pytest.raises(ParseError):
        parse_expr(text)


def test_durations() -> None:
    assert parse_duration_ms("1h30m") == 5_400_000
    assert parse_duration_ms("500ms") == 500
    assert parse_duration_ms("0s") == 0
    assert parse_duration_ms("90") == 90_000
    with pytest.raises(ParseError):
        parse_duration_ms("5x")
