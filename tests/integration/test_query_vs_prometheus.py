"""The same data in the service and in a real Prometheus 2.42, the same queries to
both: the answers must agree (same series, same timestamps, values equal within
1e-9 relative).

Both get the data through remote write. Where Prometheus 2.42 differs from the
3.x semantics the engine follows (ranges left-closed in 2.x, left-open in 3.x),
the data avoids the difference: samples sit 3.3 s off the 15 s grid and every
evaluation time sits 7.5 s off it, so no sample ever lands on a window
boundary; no window reaches back before the first sample, where 3.x changed how
rate() extrapolates. Functions that 2.42 does not have are left out.
"""

from __future__ import annotations

import json
import math
import time
import urllib.parse

import numpy as np
import pytest

from remote_write.batch import STALE_NAN, WriteBatch
from remote_write.codec import encode_write_request
from tests.support.realparts import http_get, post_write, prometheus_beside_aggregator

STEP_MS = 15_000
POINTS = 160  # 40 minutes of data
HEADERS = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}

QUERIES = [
    # selectors, offset, @
    "http_requests_total",
    'http_requests_total{job="api", code=~"2.."}',
    'http_requests_total{code!~"5.."}',
    "http_requests_total offset 7m",
    "memory_bytes @ {start}",
    "flaky_gauge",
    # counters
    "rate(http_requests_total[5m])",
    "irate(http_requests_total[2m])",
    "increase(http_requests_total[10m])",
    "resets(http_requests_total[15m])",
    "changes(memory_bytes[10m])",
    "delta(memory_bytes[5m])",
    "idelta(memory_bytes[5m])",
    "deriv(memory_bytes[10m])",
    "predict_linear(memory_bytes[10m], 3600)",
    # over_time
    "avg_over_time(memory_bytes[5m])",
    "min_over_time(memory_bytes[5m])",
    "max_over_time(memory_bytes[5m])",
    "sum_over_time(memory_bytes[5m])",
    "count_over_time(flaky_gauge[5m])",
    "quantile_over_time(0.9, memory_bytes[10m])",
    "stddev_over_time(memory_bytes[10m])",
    "stdvar_over_time(memory_bytes[10m])",
    "last_over_time(flaky_gauge[5m])",
    "present_over_time(flaky_gauge[2m])",
    # aggregations
    "sum(rate(http_requests_total[5m]))",
    "sum by (cluster, job) (rate(http_requests_total[5m]))",
    "avg without (instance) (memory_bytes)",
    "max by (cluster) (memory_bytes)",
    "min by (job) (memory_bytes)",
    "count by (code) (http_requests_total)",
    "group by (cluster) (http_requests_total)",
    "stddev by (cluster) (memory_bytes)",
    "stdvar(memory_bytes)",
    "topk(3, rate(http_requests_total[5m]))",
    "bottomk(2, memory_bytes)",
    "quantile by (cluster) (0.75, memory_bytes)",
    'count_values("value", round(memory_bytes / 1e8))',
    # binary operators and matching
    "memory_bytes / 1024 / 1024",
    "memory_bytes > 3e8",
    "memory_bytes > bool 3e8",
    "2 * memory_bytes - memory_bytes",
    "rate(http_requests_total[5m]) / on (cluster, instance, job) group_left "
    "sum by (cluster, instance, job) (rate(http_requests_total[5m]))",
    "sum by (cluster, instance) (rate(http_requests_total[5m])) "
    "* on (cluster, instance) group_left (zone) node_info",
    "memory_bytes and on (instance) flaky_gauge",
    "memory_bytes unless on (instance) flaky_gauge",
    "flaky_gauge or memory_bytes",
    "memory_bytes % 7 ^ 2",
    "-memory_bytes",
    "memory_bytes > bool on (cluster, instance, job) memory_bytes offset 1m",
    # errors: both must refuse, with the same status and errorType
    "memory_bytes == bool ignoring (job) memory_bytes",
    "sum(rate(http_requests_total[5m])) + on (nothing) group_left memory_bytes",
    # histograms
    "histogram_quantile(0.9, sum by (le, cluster) (rate(latency_seconds_bucket[5m])))",
    "histogram_quantile(0.5, rate(latency_seconds_bucket[5m]))",
    # labels, misc functions
    'label_replace(memory_bytes, "host", "$1", "instance", "(.*):.*")',
    'label_join(memory_bytes, "where", "/", "cluster", "instance")',
    "abs(delta(memory_bytes[5m]))",
    "ceil(memory_bytes / 1e7)",
    "floor(memory_bytes / 1e7)",
    "round(memory_bytes / 1e7, 0.5)",
    "clamp(memory_bytes, 2e8, 3e8)",
    "clamp_min(memory_bytes, 2.5e8)",
    "clamp_max(memory_bytes, 2.5e8)",
    "sqrt(memory_bytes)",
    "ln(memory_bytes)",
    "exp(memory_bytes / 1e9)",
    "sgn(delta(memory_bytes[5m]))",
    "timestamp(flaky_gauge)",
    "time() - timestamp(memory_bytes)",
    "hour(memory_bytes)",
    "day_of_week()",
    'absent(nonexistent_metric{job="x"})',
    "absent_over_time(flaky_gauge[1m])",
    "scalar(sum(memory_bytes))",
    "vector(scalar(count(memory_bytes)))",
    "sort_desc(sum by (cluster) (memory_bytes))",
    # subqueries
    "max_over_time(rate(http_requests_total[2m])[10m:1m])",
    "avg_over_time(sum by (cluster) (memory_bytes)[5m:30s])",
]


def _series_data(base_ms: int) -> list[tuple[tuple[tuple[str, str], ...], list[int], list[float]]]:
    rng = np.random.default_rng(42)
    ts = [base_ms + k * STEP_MS + 3300 for k in range(POINTS)]
    out = []
    for c, cluster in enumerate(("eu", "us")):
        for i in range(3):
            instance = f"10.0.{c}.{i}:9100"
            for job in ("api", "web"):
                for code in ("200", "404", "500"):
                    # Fractional increments keep rates distinct, so topk has no ties.
                    incr = rng.integers(0, 20, POINTS) + rng.random(POINTS)
                    values = np.cumsum(incr)
                    if (i + c) % 2 == 0 and code == "200":  # a counter reset halfway
                        values[POINTS // 2 :] -= values[POINTS // 2 - 1]
                    labels = (
                        ("__name__", "http_requests_total"),
                        ("cluster", cluster),
                        ("code", code),
                        ("instance", instance),
                        ("job", job),
                    )
                    out.append((labels, ts, values.tolist()))
                mem = 2e8 + 1e8 * np.sin(np.arange(POINTS) / (7 + i)) + rng.normal(0, 1e6, POINTS)
                out.append(
                    (
                        (
                            ("__name__", "memory_bytes"),
                            ("cluster", cluster),
                            ("instance", instance),
                            ("job", job),
                        ),
                        ts,
                        np.round(mem).tolist(),
                    )
                )
            out.append(
                (
                    (
                        ("__name__", "node_info"),
                        ("cluster", cluster),
                        ("instance", instance),
                        ("zone", f"z{i}"),
                    ),
                    ts,
                    [1.0] * POINTS,
                )
            )
            for le_i, le in enumerate(("0.1", "0.5", "1", "5", "+Inf")):
                counts = np.cumsum(rng.integers(0, 5 * (le_i + 1), POINTS)).astype(float)
                out.append(
                    (
                        (
                            ("__name__", "latency_seconds_bucket"),
                            ("cluster", cluster),
                            ("instance", instance),
                            ("le", le),
                        ),
                        ts,
                        (counts * (le_i + 1)).tolist(),
                    )
                )
        # A gauge with gaps and a stale marker: it ends, disappears, comes back.
        values = rng.normal(50, 10, POINTS).round(2).tolist()
        keep = [k for k in range(POINTS) if not 95 <= k < 125]
        values[140] = STALE_NAN
        out.append(
            (
                (
                    ("__name__", "flaky_gauge"),
                    ("cluster", cluster),
                    ("instance", f"10.0.{c}.0:9100"),
                ),
                [ts[k] for k in keep],
                [values[k] for k in keep],
            )
        )
    return out


def _write_all(url: str, series, base_ms: int) -> None:
    # One request per 10 points, so every series arrives in time order.
    for start in range(0, POINTS, 10):
        lo, hi = base_ms + start * STEP_MS, base_ms + (start + 10) * STEP_MS
        batch = []
        for labels, ts, values in series:
            pairs = [(t, v) for t, v in zip(ts, values, strict=True) if lo <= t < hi]
            if pairs:
                batch.append((labels, [t for t, _ in pairs], [v for _, v in pairs]))
        body = encode_write_request(WriteBatch.from_series(batch))
        assert post_write(url, body) // 100 == 2


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    now = int(time.time() * 1000)
    base = now - now % STEP_MS - POINTS * STEP_MS - 5 * 60_000
    series = _series_data(base)
    with prometheus_beside_aggregator(tmp) as (prom_url, agg_url):
        _write_all(prom_url, series, base)
        _write_all(agg_url, series, base)
        yield prom_url, agg_url, base


def _query(url: str, path: str, params: dict[str, str]) -> tuple[int, dict]:
    status, body = http_get(f"{url}{path}?{urllib.parse.urlencode(params)}", timeout=60)
    return status, json.loads(body)


def _close(a: str, b: str) -> bool:
    x, y = float(a), float(b)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if math.isinf(x) or math.isinf(y):
        return x == y
    return abs(x - y) <= 1e-9 * max(abs(x), abs(y)) or abs(x - y) < 1e-12


def _assert_same(ours_answer: tuple[int, dict], prom_answer: tuple[int, dict], what: str) -> int:
    """Assert both answers agree; returns how many series Prometheus answered with."""
    (status, ours), (prom_status, theirs) = ours_answer, prom_answer
    if prom_status != 200:
        assert (status, ours.get("errorType")) == (prom_status, theirs["errorType"]), (
            f"{what}: Prometheus says {theirs}, we say {ours}"
        )
        return 0
    assert status == 200, f"{what}: {ours}"
    ours, theirs = ours["data"], theirs["data"]
    assert ours["resultType"] == theirs["resultType"], what
    if theirs["resultType"] in ("scalar", "string"):
        assert ours["result"][0] == theirs["result"][0], what
        assert _close(ours["result"][1], theirs["result"][1]), (what, ours, theirs)
        return 1
    key = "values" if theirs["resultType"] == "matrix" else "value"

    def by_labels(result):
        return {json.dumps(r["metric"], sort_keys=True): r[key] for r in result}

    mine, prom = by_labels(ours["result"]), by_labels(theirs["result"])
    assert sorted(mine) == sorted(prom), f"{what}: different series"
    for labels, expected in prom.items():
        got = mine[labels]
        points = [got] if key == "value" else got
        exp_points = [expected] if key == "value" else expected
        assert [p[0] for p in points] == [p[0] for p in exp_points], f"{what} {labels}: times"
        for (_, v1), (_, v2) in zip(points, exp_points, strict=True):
            assert _close(v1, v2), f"{what} {labels}: {v1} != {v2}"
    return len(prom)


@pytest.mark.parametrize("query", QUERIES)
def test_same_answers_as_prometheus(loaded, query):
    prom_url, agg_url, base = loaded
    # Windows (up to 15m, plus the 7m offset) never reach back to before the data:
    # where they do, 3.x extrapolates rate() differently from 2.42 (it clamps the
    # extrapolation to zero after limiting it, not before).
    start_s = (base + 70 * STEP_MS + 7_500) / 1000
    end_s = (base + (POINTS - 2) * STEP_MS + 7_500) / 1000
    query = query.replace("{start}", f"{start_s:.3f}")
    answered = 0
    for at in (start_s + 600, (start_s + end_s) / 2, end_s):
        params = {"query": query, "time": f"{at:.3f}"}
        answered += _assert_same(
            _query(agg_url, "/api/v1/query", params),
            _query(prom_url, "/api/v1/query", params),
            f"{query} @ {at}",
        )
    params = {"query": query, "start": f"{start_s:.3f}", "end": f"{end_s:.3f}", "step": "45"}
    answered += _assert_same(
        _query(agg_url, "/api/v1/query_range", params),
        _query(prom_url, "/api/v1/query_range", params),
        f"{query} range",
    )
    status, _ = _query(prom_url, "/api/v1/query", {"query": query, "time": f"{end_s:.3f}"})
    # A comparison of empty answers proves nothing: every valid query has data.
    assert answered > 0 or status != 200, f"{query}: no data in any answer"
