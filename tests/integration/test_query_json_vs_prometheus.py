"""The query API's JSON, byte for byte, against a real Prometheus 2.42.

Constant queries need no data, so both servers answer the same question and
their response bodies must be identical: value formatting (`1e+21`, `1e-07`,
`-0`, `+Inf`), timestamps (`100.050` in vectors, `100.05` for scalars), label
escaping, envelopes and error messages.
"""

from __future__ import annotations

import time
import urllib.parse
import urllib.request

import pytest

from remote_write.batch import WriteBatch
from remote_write.codec import encode_write_request
from tests.support.realparts import http_get, post_write, prometheus_beside_aggregator

INSTANT = [
    ("vector(1e21)", "100"),
    ("vector(1e-7)", "100"),
    ("vector(1e-6)", "100"),
    ("vector(2.5e-6)", "100"),
    ("vector(1.5e16)", "100"),
    ("vector(123456789012345678)", "100"),
    ("vector(0.1+0.2)", "100.05"),
    ("vector(-1/0)", "1.001"),
    ("vector(0/0)", "100"),
    ("-0", "100"),
    ("1", "-100.25"),
    ("0.000001", "100"),
    ('"x"', "100.5"),
    ("vector(1) + vector(2)", "1700000000.123"),
]

RANGE = [
    ("vector(1.5)", "100", "160", "15"),
    ("time() * 1e-6", "100.05", "101", "0.5"),
    ("vector(time()) > 130", "100", "160", "15"),
]


def _get(url: str, path: str, params: dict[str, str]) -> tuple[int, bytes]:
    return http_get(f"{url}{path}?{urllib.parse.urlencode(params)}")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with prometheus_beside_aggregator(tmp_path_factory.mktemp("json")) as urls:
        yield urls


@pytest.mark.parametrize(("expr", "at"), INSTANT)
def test_instant_query_json_is_identical(servers, expr: str, at: str) -> None:  # type: ignore[no-untyped-def]
    prom_url, agg_url = servers
    params = {"query": expr, "time": at}
    expected = _get(prom_url, "/api/v1/query", params)
    assert expected[0] == 200, expected
    assert _get(agg_url, "/api/v1/query", params) == expected


@pytest.mark.parametrize(("expr", "start", "end", "step"), RANGE)
def test_range_query_json_is_identical(servers, expr: str, start: str, end: str, step: str) -> None:  # type: ignore[no-untyped-def]
    prom_url, agg_url = servers
    params = {"query": expr, "start": start, "end": end, "step": step}
    expected = _get(prom_url, "/api/v1/query_range", params)
    assert expected[0] == 200, expected
    assert _get(agg_url, "/api/v1/query_range", params) == expected


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/query_range", {"query": "1", "start": "10", "end": "5", "step": "1"}),
        ("/api/v1/query_range", {"query": "1", "start": "0", "end": "5", "step": "0"}),
        ("/api/v1/query_range", {"query": "1", "start": "0", "end": "100000", "step": "1"}),
        ("/api/v1/query_range", {"query": "1", "end": "5", "step": "1"}),
        ("/api/v1/query", {"query": "1", "time": "abc"}),
        ("/api/v1/query", {"query": "1", "timeout": "x"}),
        ("/api/v1/series", {}),
        ("/api/v1/series", {"match[]": "up", "start": "abc"}),
        ("/api/v1/label/1a/values", {}),
        ("/api/v1/metadata", {"limit": "x"}),
    ],
)
def test_parameter_errors_are_identical(servers, path: str, params: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    prom_url, agg_url = servers
    expected = _get(prom_url, path, params)
    assert expected[0] == 400, expected
    assert _get(agg_url, path, params) == expected


BAD_QUERIES = [
    "sum(",
    "",
    "foo bar",
    "up +",
    "1 +* 2",
    "sum(up) by",
    'x{a="b" c="d"}',
    "a +\n b c",
    "rate(x[5m]",
    "up[5m",
    "a}",
    "x[5m]]",
    ")",
    'x{a="\\q"}',
    "up[5m:1m:2m]",
    "rate(up)",
    "round(x, y)",
    'label_replace(x, "a", "b", "c", 1)',
    "topk(a, b)",
    "abs(x, y)",
    "sum(x, y)",
    "foo()",
    '1 + "a"',
    "x[5m] + 1",
    '-"a"',
    "1 and 2",
    "a and on(b) group_left c",
    "1 == 1",
    "rate(x[5m])[5m]",
    "x offset 5m offset 1m",
    "x[5m:1m][5m:1m]",
    'a{__name__="b"}',
    '{a=""}',
    'foo{a=~"("}',
    'x{a=~"a**"}',
    'x @ "a"',
]
"""Bad queries whose answer from Prometheus 2.42 is also Prometheus 3's; left out are
the ones that changed since (3.x has sort_by_label, UTF-8 label names, Go 1.22 regexps)."""

BAD_SELECTORS = ["up{", "rate(up[5m])", "1", "foo bar", 'up{job=~"("}', '{job=""}', "sum(up)"]


@pytest.mark.parametrize("query", BAD_QUERIES)
def test_parse_errors_are_identical_on_every_query_endpoint(servers, query: str) -> None:  # type: ignore[no-untyped-def]
    prom_url, agg_url = servers
    for path, params in [
        ("/api/v1/query", {"query": query, "time": "100"}),
        ("/api/v1/query_range", {"query": query, "start": "0", "end": "100", "step": "10"}),
        ("/api/v1/format_query", {"query": query}),
        ("/api/v1/query_exemplars", {"query": query}),
    ]:
        expected = _get(prom_url, path, params)
        assert expected[0] == 400, (path, expected)
        assert _get(agg_url, path, params) == expected, path


@pytest.mark.parametrize("selector", BAD_SELECTORS)
def test_match_parse_errors_are_identical(servers, selector: str) -> None:  # type: ignore[no-untyped-def]
    prom_url, agg_url = servers
    for path in ("/api/v1/series", "/api/v1/labels", "/api/v1/label/job/values"):
        params = {"match[]": selector}
        expected = _get(prom_url, path, params)
        assert expected[0] == 400, (path, expected)
        assert _get(agg_url, path, params) == expected, path


def test_written_series_json_is_identical(servers) -> None:  # type: ignore[no-untyped-def]
    """Label escaping (`<`, `&`, quotes, newlines) and sample timestamps with milliseconds."""
    prom_url, agg_url = servers
    now_ms = int(time.time() * 1000) // 1000 * 1000 - 5_000
    labels = (("__name__", "esc"), ("a", '<b>&c "q"\nx'), ("z", "é☃"))
    body = encode_write_request(
        WriteBatch.from_series([(labels, [now_ms - 1_950, now_ms - 50], [1e-7, 3.0])])
    )
    for url in (prom_url, agg_url):
        assert post_write(url, body) in (200, 204)
    at = f"{now_ms / 1000:.3f}"
    for path, params in [
        ("/api/v1/query", {"query": "esc", "time": at}),
        ("/api/v1/query", {"query": "esc[5s]", "time": at}),
        ("/api/v1/query_range", {"query": "esc", "start": at, "end": at, "step": "1"}),
        ("/api/v1/series", {"match[]": "esc"}),
        ("/api/v1/label/a/values", {}),
    ]:
        expected = _get(prom_url, path, params)
        assert expected[0] == 200, expected
        assert _get(agg_url, path, params) == expected, path
