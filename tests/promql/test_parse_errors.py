"""Parse errors say where and what as Prometheus does: `1:5: parse error: <reason>`.

Every row is a query with the answer Prometheus 2.42 gives for it (recorded from
`/api/v1/query`; `tests/integration/test_query_json_vs_prometheus.py` compares
the endpoints with a live one): the position in line:column (the column in
bytes), the reason in Prometheus's words. Queries whose answer changed in
Prometheus 3 are left out.
"""

from __future__ import annotations

import pytest

from promql.errors import ParseError, line_col
from promql.parser import parse_expr

PROMETHEUS_ANSWERS = [
    (
        "sum(x, y)",
        "1:1: parse error: wrong number of arguments for aggregate expression "
        "provided, expected 1, got 2",
    ),
    ("sum()", "1:1: parse error: no arguments for aggregate expression provided"),
    (
        "topk(x)",
        "1:1: parse error: wrong number of arguments for aggregate expression "
        "provided, expected 2, got 1",
    ),
    (
        "topk(1, 2, x)",
        "1:1: parse error: wrong number of arguments for aggregate expression "
        "provided, expected 2, got 3",
    ),
    (
        'quantile("a", x)',
        "1:10: parse error: expected type scalar in aggregation parameter, got string",
    ),
    (
        "rate(x)",
        "1:6: parse error: expected type range vector in call to function "
        '"rate", got instant vector',
    ),
    ("rate(x[5m], 1)", '1:1: parse error: expected 1 argument(s) in call to "rate", got 2'),
    (
        'round(x, "a")',
        '1:10: parse error: expected type scalar in call to function "round", got string',
    ),
    (
        "round(x, y)",
        '1:10: parse error: expected type scalar in call to function "round", got instant vector',
    ),
    ("abs()", '1:1: parse error: expected 1 argument(s) in call to "abs", got 0'),
    ("abs(x, y)", '1:1: parse error: expected 1 argument(s) in call to "abs", got 2'),
    (
        'label_replace(x, "a")',
        '1:1: parse error: expected 5 argument(s) in call to "label_replace", got 2',
    ),
    (
        'label_replace(x, "a", "b", "c", 1)',
        '1:33: parse error: expected type string in call to function "label_replace", got scalar',
    ),
    (
        "histogram_quantile(x, y)",
        "1:20: parse error: expected type scalar in call to function "
        '"histogram_quantile", got instant vector',
    ),
    (
        'vector("a")',
        '1:8: parse error: expected type scalar in call to function "vector", got string',
    ),
    (
        "scalar(x[5m])",
        "1:8: parse error: expected type instant vector in call to function "
        '"scalar", got range vector',
    ),
    ("1 and 2", '1:1: parse error: set operator "and" not allowed in binary scalar expression'),
    ("a and 1", '1:1: parse error: set operator "and" not allowed in binary scalar expression'),
    ("a and on(b) group_left c", '1:1: parse error: no grouping allowed for "and" operation'),
    (
        "x[5m] + 1",
        "1:1: parse error: binary expression must contain only scalar and instant vector types",
    ),
    (
        '1 + "a"',
        "1:5: parse error: binary expression must contain only scalar and instant vector types",
    ),
    (
        '"a" + 1',
        "1:1: parse error: binary expression must contain only scalar and instant vector types",
    ),
    (
        '-"a"',
        "1:1: parse error: unary expression only allowed on expressions of "
        'type scalar or instant vector, got "string"',
    ),
    (
        "-x[5m]",
        "1:1: parse error: unary expression only allowed on expressions of "
        'type scalar or instant vector, got "range vector"',
    ),
    ("x[5m][5m]", "1:6: parse error: ranges only allowed for vector selectors"),
    ("x[5m] offset 1m [1m]", "1:17: parse error: ranges only allowed for vector selectors"),
    ("x offset 5m offset 1m", "1:1: parse error: offset may not be set multiple times"),
    ("x @ 5 @ 6", "1:1: parse error: @ <timestamp> may not be set multiple times"),
    (
        "x[5m:1m][5m:1m]",
        "1:1: parse error: subquery is only allowed on instant vector, got matrix instead",
    ),
    ('"a"[5m]', "1:4: parse error: ranges only allowed for vector selectors"),
    ("rate(x[5m])[5m]", "1:12: parse error: ranges only allowed for vector selectors"),
    ("sum(x)[5m]", "1:7: parse error: ranges only allowed for vector selectors"),
    ("1[5m]", "1:2: parse error: ranges only allowed for vector selectors"),
    ("x @ start() @ end()", "1:1: parse error: @ <timestamp> may not be set multiple times"),
    (
        "count_values(1, x)",
        "1:14: parse error: expected type string in aggregation parameter, got scalar",
    ),
    ('x{a="b"}{c="d"}', '1:9: parse error: unexpected "{"'),
    ("x == bool 1 bool", "1:13: parse error: unexpected <bool>"),
    ("1 == 1", "1:3: parse error: comparisons between scalars must use BOOL modifier"),
    ("absent(x, y)", '1:1: parse error: expected 1 argument(s) in call to "absent", got 2'),
    ("time(1)", '1:1: parse error: expected 0 argument(s) in call to "time", got 1'),
    ("{}", "1:1: parse error: vector selector must contain at least one non-empty matcher"),
    ('x{a=~"["}', "1:3: parse error: error parsing regexp: missing closing ]: `[)$`"),
    ("a + bool b", "1:3: parse error: bool modifier can only be used on comparison operators"),
    ('a{__name__="b"}', '1:1: parse error: metric name must not be set twice: "a" or "b"'),
    (
        "quantile_over_time(x, y[5m])",
        "1:20: parse error: expected type scalar in call to function "
        '"quantile_over_time", got instant vector',
    ),
    ('x @ "a"', '1:5: parse error: unexpected string "\\"a\\"" in @, expected timestamp'),
    ("sum(", "1:5: parse error: unclosed left parenthesis"),
    ("up{", "1:4: parse error: unexpected end of input inside braces"),
    ("up +", "1:5: parse error: unexpected end of input"),
    ("rate(up[5m]", "1:12: parse error: unclosed left parenthesis"),
    ("foo bar", '1:5: parse error: unexpected identifier "bar"'),
    ("up[5m", "1:6: parse error: unclosed left bracket"),
    ("1 +* 2", "1:4: parse error: unexpected <op:*>"),
    ("sum(up) by", '1:11: parse error: unexpected end of input in grouping opts, expected "("'),
    ('up{a="b"', "1:9: parse error: unexpected end of input inside braces"),
    ("up offset", "1:10: parse error: unexpected end of input in offset, expected duration"),
    ('{a=""}', "1:1: parse error: vector selector must contain at least one non-empty matcher"),
    (
        "rate(up)",
        "1:6: parse error: expected type range vector in call to function "
        '"rate", got instant vector',
    ),
    ('foo{a=~"("}', "1:5: parse error: error parsing regexp: missing closing ): `^(?:()$`"),
    (")", "1:2: parse error: unexpected right parenthesis ')'"),
    ("up @ foo", '1:6: parse error: unexpected identifier "foo" in @, expected timestamp'),
    ('"abc', "1:1: parse error: unterminated quoted string"),
    ("sum without", '1:12: parse error: unexpected end of input in grouping opts, expected "("'),
    ("up == bool up2 and", "1:19: parse error: unexpected end of input"),
    ("abs(1,2)", '1:1: parse error: expected 1 argument(s) in call to "abs", got 2'),
    ("foo()", '1:1: parse error: unknown function with name "foo"'),
    ("up[5m:1m:2m]", "1:9: parse error: unexpected colon ':'"),
    (
        "sum by (a b) (x)",
        '1:11: parse error: unexpected identifier "b" in grouping opts, expected "," or ")"',
    ),
    (
        "x{a b}",
        '1:5: parse error: unexpected identifier "b" in label matching, '
        "expected label matching operator",
    ),
    (
        'x{a="b" c="d"}',
        '1:9: parse error: unexpected identifier "c" in label matching, expected "," or "}"',
    ),
    ("(1 +)", '1:5: parse error: unexpected ")"'),
    ("max_over_time(x[5m:1m] 3)", '1:24: parse error: unexpected number "3"'),
    ("a + on(b) c d", '1:13: parse error: unexpected identifier "d"'),
    ("sum(a) by (b) by (c)", "1:15: parse error: unexpected <by>"),
    ('up{a="b",}x', '1:11: parse error: unexpected identifier "x"'),
    ("rate(x[5m]) foo", '1:13: parse error: unexpected identifier "foo"'),
    (
        "x offset 5m offset",
        "1:19: parse error: unexpected end of input in offset, expected duration",
    ),
    ("x[5m] offset", "1:13: parse error: unexpected end of input in offset, expected duration"),
    ("a and on(b) group_left c", '1:1: parse error: no grouping allowed for "and" operation'),
    ('x{a="\\q"}', "1:5: parse error: unknown escape sequence U+0071 'q'"),
    (
        "topk(a, b)",
        "1:6: parse error: expected type scalar in aggregation parameter, got instant vector",
    ),
    ("rate(x[5m", "1:10: parse error: unclosed left parenthesis"),
    ("up @", "1:5: parse error: unexpected end of input in @, expected timestamp"),
    ("sum by (", "1:9: parse error: unclosed left parenthesis"),
    ("x{a=", "1:5: parse error: unexpected end of input inside braces"),
    ('x{a="b",', "1:9: parse error: unexpected end of input inside braces"),
    ("sum(x) by (a", "1:13: parse error: unclosed left parenthesis"),
    ("(", "1:2: parse error: unclosed left parenthesis"),
    ("x offset -", "1:11: parse error: unexpected end of input in offset, expected duration"),
    ("up @ start(", "1:12: parse error: unclosed left parenthesis"),
    ("x[5m:", "1:6: parse error: unclosed left bracket"),
    ("# comment", "1:1: parse error: no expression found in input"),
    ("foo(", "1:5: parse error: unclosed left parenthesis"),
    ("sum(a) + on(", "1:13: parse error: unclosed left parenthesis"),
    ("a + on(b) group_left(", "1:22: parse error: unclosed left parenthesis"),
    ('"a', "1:1: parse error: unterminated quoted string"),
    ("'a", "1:1: parse error: unterminated quoted string"),
    ('x{"a', "1:3: parse error: unterminated quoted string"),
    ("a}", "1:2: parse error: unexpected character: '}'"),
    ("a]", "1:2: parse error: unexpected right bracket ']'"),
    ("x[5m]]", "1:6: parse error: unexpected right bracket ']'"),
    ("a ~ b", "1:3: parse error: unexpected character: '~'"),
    ("a $ b", "1:3: parse error: unexpected character: '$'"),
    ('x{a="b"}}', "1:9: parse error: unexpected character: '}'"),
    ("sum(a,", "1:7: parse error: unclosed left parenthesis"),
    ("histogram_quantile(0.9 rate(x[5m]))", '1:24: parse error: unexpected identifier "rate"'),
    ("a == bool", "1:10: parse error: unexpected end of input"),
    ("1 + 2 +", "1:8: parse error: unexpected end of input"),
    ('1 "a"', '1:3: parse error: unexpected string "\\"a\\""'),
    ("a 5m", '1:3: parse error: unexpected duration "5m"'),
    ("sum(x) sum", "1:8: parse error: unexpected <aggr:sum>"),
    ("a by", "1:3: parse error: unexpected <by>"),
    ("a offset 5m 3", '1:13: parse error: unexpected number "3"'),
    ('x{a="b"} (1)', '1:10: parse error: unexpected "("'),
    ("a + * b", "1:5: parse error: unexpected <op:*>"),
    ("a and or b", '1:10: parse error: unexpected identifier "b"'),
    ("1 ,", '1:3: parse error: unexpected ","'),
    ("a bool b", "1:3: parse error: unexpected <bool>"),
    ("x @ start() foo", '1:13: parse error: unexpected identifier "foo"'),
    ("a:b c", '1:5: parse error: unexpected identifier "c"'),
    ('1 {a="b"}', '1:3: parse error: unexpected "{"'),
    ("a == bool == b", "1:11: parse error: unexpected <op:==>"),
    ("rate(x[5m] 1)", '1:12: parse error: unexpected number "1"'),
    ("a on(b) c", "1:3: parse error: unexpected <on>"),
    ('x{a="b"} offset', "1:16: parse error: unexpected end of input in offset, expected duration"),
    ("sum(x) by (a) 1", '1:15: parse error: unexpected number "1"'),
    ("a group_left b", "1:3: parse error: unexpected <group_left>"),
    ("a ignoring b", "1:3: parse error: unexpected <ignoring>"),
    ('count_values("a", x) 2', '1:22: parse error: unexpected number "2"'),
    ("(a b)", '1:4: parse error: unexpected identifier "b"'),
    ("abs(x y)", '1:7: parse error: unexpected identifier "y"'),
    ("a + on b", '1:8: parse error: unexpected identifier "b" in grouping opts, expected "("'),
    ("a{b=~c}", '1:6: parse error: unexpected identifier "c" in label matching, expected string'),
    ("a{=}", '1:3: parse error: unexpected "=" in label matching, expected identifier or "}"'),
    ("a{,}", '1:3: parse error: unexpected "," in label matching, expected identifier or "}"'),
    ("a >= bool on()", "1:15: parse error: unexpected end of input"),
    ("a + (b", "1:7: parse error: unclosed left parenthesis"),
    ('x{a="b"}[5m] foo', '1:14: parse error: unexpected identifier "foo"'),
    ("x[5m:1m] 1", '1:10: parse error: unexpected number "1"'),
    ("sum by (1) (x)", '1:9: parse error: unexpected number "1" in grouping opts, expected label'),
    ("a +\n b c", '2:4: parse error: unexpected identifier "c"'),
    ("sum(\n  rate(x[5m])\n) foo", '3:3: parse error: unexpected identifier "foo"'),
    ("é + ö foo", "1:1: parse error: unexpected character: 'é'"),
    ('x{a="é"} foo', '1:11: parse error: unexpected identifier "foo"'),
    ('"aaaaaaaaaaaaaaa" x', '1:19: parse error: unexpected identifier "x"'),
    ("12345678901234 x", '1:16: parse error: unexpected identifier "x"'),
    ("a)", "1:3: parse error: unexpected right parenthesis ')'"),
    ("(a))", "1:5: parse error: unexpected right parenthesis ')'"),
    ('x{a="b"} } ', "1:10: parse error: unexpected character: '}'"),
    ("sum(rate(x[5m])) + foo(1)", '1:20: parse error: unknown function with name "foo"'),
    (
        "sum(rate(x[5m])) by (job) / on(job) group_left abs(y, 2)",
        '1:48: parse error: expected 1 argument(s) in call to "abs", got 2',
    ),
    (
        "max(rate(x[5m]) > bool 1, 2)",
        "1:1: parse error: wrong number of arguments for aggregate expression "
        "provided, expected 1, got 2",
    ),
    (
        "histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m]))) + round(y, z)",
        '1:70: parse error: expected type scalar in call to function "round", got instant vector',
    ),
    (
        'label_join(x, "a", "-", 1)',
        '1:25: parse error: expected type string in call to function "label_join", got scalar',
    ),
    (
        "clamp(x, 1, y)",
        '1:13: parse error: expected type scalar in call to function "clamp", got instant vector',
    ),
    (
        "topk(3, rate(x[5m])) + topk(y, z)",
        "1:29: parse error: expected type scalar in aggregation parameter, got instant vector",
    ),
    (
        "(1 + 2) and on() (3)",
        '1:1: parse error: set operator "and" not allowed in binary scalar expression',
    ),
    (
        'x + -"a"',
        "1:5: parse error: unary expression only allowed on expressions of "
        'type scalar or instant vector, got "string"',
    ),
    (
        "x and 1 or 2",
        '1:1: parse error: set operator "and" not allowed in binary scalar expression',
    ),
    (
        "x + ((y[5m]))",
        "1:5: parse error: binary expression must contain only scalar and instant vector types",
    ),
    ("rate(x[5m] offset 1m offset 2m)", "1:6: parse error: offset may not be set multiple times"),
    (
        "sum(x) by (a) offset 5m",
        "1:1: parse error: offset modifier must be preceded by an instant "
        "vector selector or range vector selector or a subquery",
    ),
    (
        "avg_over_time(rate(x[5m])[10m:1m][5m:])",
        "1:15: parse error: subquery is only allowed on instant vector, got matrix instead",
    ),
    ("(x)[5m]", "1:4: parse error: ranges only allowed for vector selectors"),
    ("abs(x)[5m:1m][1m]", "1:14: parse error: ranges only allowed for vector selectors"),
    (
        '{__name__="a", b=~"("}',
        "1:16: parse error: error parsing regexp: missing closing ): `^(?:()$`",
    ),
    (
        "count_values(x, y)",
        "1:14: parse error: expected type string in aggregation parameter, got instant vector",
    ),
    (
        'quantile_over_time("a", x[5m])',
        "1:20: parse error: expected type scalar in call to function "
        '"quantile_over_time", got string',
    ),
    (
        "predict_linear(x[5m], y)",
        "1:23: parse error: expected type scalar in call to function "
        '"predict_linear", got instant vector',
    ),
    ("sum without (a) (x) by (b)", "1:21: parse error: unexpected <by>"),
    (
        "a * on(b) group_left(c) d * on(e) group_right f g",
        '1:49: parse error: unexpected identifier "g"',
    ),
    ('x{a="b"} @ start() @ 5', "1:1: parse error: @ <timestamp> may not be set multiple times"),
    (" sum(x", "1:7: parse error: unclosed left parenthesis"),
    ("sum(x)\n by", '2:4: parse error: unexpected end of input in grouping opts, expected "("'),
    ("rate(\n  x[5m]\n  y)", '3:3: parse error: unexpected identifier "y"'),
    (
        "sum(x) @ 5",
        "1:1: parse error: @ modifier must be preceded by an instant vector "
        "selector or range vector selector or a subquery",
    ),
    (
        "1 offset 5m",
        "1:1: parse error: offset modifier must be preceded by an instant "
        "vector selector or range vector selector or a subquery",
    ),
    (
        "(x) offset 5m",
        "1:1: parse error: offset modifier must be preceded by an instant "
        "vector selector or range vector selector or a subquery",
    ),
    (
        "rate(x[5m]) @ 5",
        "1:1: parse error: @ modifier must be preceded by an instant vector "
        "selector or range vector selector or a subquery",
    ),
]


@pytest.mark.parametrize(("query", "message"), PROMETHEUS_ANSWERS)
def test_parse_error_is_prometheus_s(query: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_expr(query)
    assert str(info.value) == message
    where, _, reason = message.partition(": parse error: ")
    assert info.value.reason == reason
    assert info.value.position is not None
    assert line_col(query, info.value.position) == where


def test_columns_count_utf8_bytes() -> None:
    assert line_col("é + ö foo", 6) == "1:9"
    assert line_col("a\nbé c", 5) == "2:5"
    assert line_col("", 0) == "1:1"


def test_without_a_position_the_reason_still_says_parse_error() -> None:
    err = ParseError("something promql-parser said", query="x")
    assert str(err) == "parse error: something promql-parser said"
