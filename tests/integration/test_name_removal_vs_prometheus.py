"""With `query.delayed_name_removal: false` the service drops `__name__` where and
when Prometheus does without the feature flag; Prometheus 2.42 has no such flag
and always drops it at once, so the same data and queries must get the same
answers from both, errors included (same status, errorType and message).

The queries are the ones whose answers depend on when the name goes: a name read
by `label_replace` after a function, `by (__name__)` over mixed inputs, series
selected by a regex on `__name__` colliding once a function drops it. The data
keeps away from what 2.42 does differently: samples sit 3.3 s off the 15 s grid
and evaluation times 7.5 s off it (ranges are left-closed in 2.x), and windows
never reach back to the first sample.
"""

from __future__ import annotations

import json
import math
import time
import urllib.parse

import pytest

from remote_write.batch import WriteBatch
from remote_write.codec import encode_write_request
from tests.support.realparts import http_get, post_write, prometheus_beside_aggregator

STEP_MS = 15_000
POINTS = 80

QUERIES = [
    # the name is gone before label_replace reads it
    'label_replace(rate(metric_total[5m]), "__name__", "rate_$1", "__name__", "(.+)")',
    'label_replace(rate(metric_total[5m]), "src", "[$1]", "__name__", "(.*)")',
    # two metrics, one label set once the names are dropped
    'label_replace(rate({__name__=~".+_total", env="1"}[5m]), "src", "$1", "__name__", "(.+)")',
    'sum by (env) (rate({__name__=~".+_total", env="1"}[5m]))',
    '-{__name__=~".+_total", env="1"}',
    'timestamp({__name__=~".+_total", env="1"})',
    '{__name__=~".+_total", env="1"} > bool 100',
    '{__name__=~".+_total", env="1"} * on () group_left info',
    'metric_total / on (env) group_left sum by (env) ({__name__=~".+_total"})',
    # each side keeps or loses its name on its own
    'sum by (__name__) (metric_total{env="1"} or rate(metric_total{env="2"}[5m]))',
    'count by (__name__) (abs({__name__=~"metric_total|info"}))',
    "sum by (__name__, env) (rate(metric_total[5m]))",
    # what keeps the name
    '{__name__=~".+_total"} > 100',
    "last_over_time(metric_total[5m])",
    'sum by (__name__, env) ({__name__=~".+_total"})',
    "topk(1, sum by (__name__, env) (rate(metric_total[5m])))",
]

AGGREGATOR_CONFIG = "query:\n  delayed_name_removal: false\n"


def _series(base_ms: int) -> list[tuple[tuple[tuple[str, str], ...], list[int], list[float]]]:
    ts = [base_ms + k * STEP_MS + 3_300 for k in range(POINTS)]
    out = []
    for name, env, slope in (
        ("metric_total", "1", 2.0),
        ("metric_total", "2", 3.0),
        ("another_metric_total", "1", 5.0),
    ):
        labels = (("__name__", name), ("env", env))
        out.append((labels, ts, [slope * k + 0.25 * (k % 7) for k in range(POINTS)]))
    out.append(((("__name__", "info"), ("env", "3")), ts, [1.0] * POINTS))
    return out


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):  # type: ignore[no-untyped-def]
    now = int(time.time() * 1000)
    base = now - now % STEP_MS - POINTS * STEP_MS - 60_000
    body = encode_write_request(WriteBatch.from_series(_series(base)))
    tmp = tmp_path_factory.mktemp("names")
    with prometheus_beside_aggregator(tmp, aggregator_config=AGGREGATOR_CONFIG) as urls:
        for url in urls:
            assert post_write(url, body) // 100 == 2
        yield (*urls, base)


def _get(url: str, path: str, params: dict[str, str]) -> tuple[int, dict]:  # type: ignore[type-arg]
    status, body = http_get(f"{url}{path}?{urllib.parse.urlencode(params)}", timeout=30)
    return status, json.loads(body)


def _same_number(a: str, b: str) -> bool:
    x, y = float(a), float(b)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return x == y or abs(x - y) <= 1e-9 * max(abs(x), abs(y))


def _assert_same(ours: tuple[int, dict], theirs: tuple[int, dict], what: str) -> None:  # type: ignore[type-arg]
    """Same error, or the same series with the same points; an empty answer proves nothing."""
    if theirs[0] != 200:
        assert (ours[0], ours[1].get("errorType"), ours[1].get("error")) == (
            theirs[0],
            theirs[1]["errorType"],
            theirs[1]["error"],
        ), what
        return
    assert theirs[1]["data"]["result"], f"{what}: Prometheus has no data for it"
    assert ours[0] == 200, f"{what}: {ours}"
    mine, prom = ours[1]["data"], theirs[1]["data"]
    key = "values" if prom["resultType"] == "matrix" else "value"

    def points(result: list[dict]) -> dict[str, list[list]]:  # type: ignore[type-arg]
        return {
            json.dumps(r["metric"], sort_keys=True): r[key] if key == "values" else [r[key]]
            for r in result
        }

    got, expected = points(mine["result"]), points(prom["result"])
    assert sorted(got) == sorted(expected), what
    for labels, exp in expected.items():
        assert [p[0] for p in got[labels]] == [p[0] for p in exp], f"{what} {labels}"
        for (_, v1), (_, v2) in zip(got[labels], exp, strict=True):
            assert _same_number(v1, v2), f"{what} {labels}: {v1} != {v2}"


@pytest.mark.parametrize("query", QUERIES)
def test_same_answers_as_prometheus_without_delayed_name_removal(loaded, query: str) -> None:  # type: ignore[no-untyped-def]
    prom_url, agg_url, base = loaded
    start_s = (base + 30 * STEP_MS + 7_500) / 1000
    end_s = (base + (POINTS - 2) * STEP_MS + 7_500) / 1000
    params = {"query": query, "time": f"{end_s:.3f}"}
    _assert_same(
        _get(agg_url, "/api/v1/query", params), _get(prom_url, "/api/v1/query", params), query
    )
    params = {"query": query, "start": f"{start_s:.3f}", "end": f"{end_s:.3f}", "step": "60"}
    _assert_same(
        _get(agg_url, "/api/v1/query_range", params),
        _get(prom_url, "/api/v1/query_range", params),
        f"{query} range",
    )
