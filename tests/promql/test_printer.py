"""The printer's output parses back to the same tree."""

from __future__ import annotations

import dataclasses

import pytest

from promql import ast
from promql.parser import parse_expr
from promql.printer import format_duration, format_expr


def _strip(e: ast.Expr) -> ast.Expr:
    return ast.transform(e, lambda n: dataclasses.replace(n, pos=-1) if hasattr(n, "pos") else None)


@pytest.mark.parametrize(
    "text",
    [
        'sum by (job) (rate(http_requests_total{code=~"5.."}[5m]))',
        "foo[30m:] offset 1m",
        "max_over_time(rate(x[1m])[1h:5m] @ end())",
        'label_replace(up, "dst", "$1", "src", "a\\\\\\"b(.*)")',
        '{"my.metric", "odd-label"="v"}',
        "-foo offset -5m",
        "a / on (x) group_left (y) b",
        "topk by (a) (3, foo)",
        "foo @ -5.5",
        "1 - -1",
        "(a + b) * c",
        'count_values without (x) ("v", foo)',
    ],
)
def test_round_trip(text: str) -> None:
    e = parse_expr(text)
    printed = format_expr(e)
    assert _strip(parse_expr(printed)) == _strip(e), printed


def test_prometheus_forms() -> None:
    assert format_expr(parse_expr("sum(foo) by (job)")) == "sum by (job) (foo)"
    assert format_expr(parse_expr("foo offset 5m @ 10")) == "foo @ 10.000 offset 5m"
    assert format_duration(5_400_000) == "1h30m"
    assert format_duration(7 * 86_400_000) == "1w"
