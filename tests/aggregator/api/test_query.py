"""`/api/v1/query`, `/api/v1/query_range`, `/api/v1/format_query`, `/api/v1/query_exemplars`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest
from multidict import MultiDict

from aggregator.api.query import query_options
from aggregator.api.responses import classify
from aggregator.config import Config, QueryConfig
from promql.engine import MAX_POINTS_PER_SERIES, QueryOpts
from promql.errors import QueryCanceled, QueryTimeout
from tests.aggregator.conftest import MakeService, Service, encode

NOW_S = int(time.time()) // 60 * 60 - 600  # a whole minute, ten minutes ago
T0 = NOW_S * 1000


@pytest.fixture
async def service(make_service: MakeService) -> Service:
    service = await make_service()
    series = []
    for job, base in (("api", 10.0), ("web", 100.0)):
        labels = (("__name__", "requests_total"), ("job", job))
        ts = [T0 - 300_000 + k * 15_000 for k in range(21)]  # 5 minutes at 15s, up to T0
        series.append((labels, ts, [base + k for k in range(21)]))
    series.append(((("__name__", "temp"), ("room", "a")), [T0 - 1_500, T0 - 500], [20.5, 21.0]))
    status, text = await service.write(encode(series))
    assert status == 204, text
    return service


async def query(service: Service, path: str, params: Any, method: str = "GET") -> tuple[int, Any]:
    if method == "GET":
        resp = await service.client.get(path, params=params)
    else:
        resp = await service.client.post(path, data=params)
    assert resp.content_type == "application/json", await resp.text()
    return resp.status, await resp.json()


async def test_instant_vector(service: Service) -> None:
    status, body = await query(
        service, "/api/v1/query", {"query": "sum by (job) (requests_total)", "time": str(NOW_S)}
    )
    assert status == 200
    assert body == {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"job": "api"}, "value": [NOW_S, "30"]},
                {"metric": {"job": "web"}, "value": [NOW_S, "120"]},
            ],
        },
    }


async def test_instant_query_time_as_rfc3339_and_post(service: Service) -> None:
    rfc3339 = time.strftime("%Y-%m-%dT%H:%M:%S.250Z", time.gmtime(NOW_S))
    status, body = await query(
        service, "/api/v1/query", {"query": "temp", "time": rfc3339}, method="POST"
    )
    assert status == 200
    [sample] = body["data"]["result"]
    assert sample == {"metric": {"__name__": "temp", "room": "a"}, "value": [NOW_S + 0.25, "21"]}


async def test_instant_scalar_and_string(service: Service) -> None:
    _, body = await query(service, "/api/v1/query", {"query": "1 / 4", "time": "100.5"})
    assert body["data"] == {"resultType": "scalar", "result": [100.5, "0.25"]}
    _, body = await query(service, "/api/v1/query", {"query": '"hi"', "time": "100"})
    assert body["data"] == {"resultType": "string", "result": [100, "hi"]}


async def test_instant_range_selector_is_a_matrix_with_sample_times(service: Service) -> None:
    _, body = await query(service, "/api/v1/query", {"query": "temp[1m]", "time": str(NOW_S)})
    assert body["data"] == {
        "resultType": "matrix",
        "result": [
            {
                "metric": {"__name__": "temp", "room": "a"},
                "values": [[NOW_S - 1.5, "20.5"], [NOW_S - 0.5, "21"]],
            }
        ],
    }


async def test_range_query(service: Service) -> None:
    params = {
        "query": 'requests_total{job="api"} * 2',
        "start": str(NOW_S - 60),
        "end": str(NOW_S),
        "step": "30s",
    }
    status, body = await query(service, "/api/v1/query_range", params)
    assert status == 200
    assert body["data"] == {
        "resultType": "matrix",
        "result": [
            {
                "metric": {"job": "api"},
                "values": [[NOW_S - 60, "52"], [NOW_S - 30, "56"], [NOW_S, "60"]],
            }
        ],
    }


async def test_range_query_of_a_scalar(service: Service) -> None:
    params = {"query": "time()", "start": "10", "end": "20", "step": "5"}
    _, body = await query(service, "/api/v1/query_range", params, method="POST")
    assert body["data"] == {
        "resultType": "matrix",
        "result": [{"metric": {}, "values": [[10, "10"], [15, "15"], [20, "20"]]}],
    }


@pytest.mark.parametrize(
    ("end", "step", "accepted"),
    [
        ("11000", "1", True),  # 11,000 steps between start and end: 11,001 points
        ("11001", "1", False),
        ("22001", "2", True),  # 11,000.5 steps: the half step adds no point
        ("22002", "2", False),
        ("1100.0", "0.1", True),
        ("1100.1", "0.1", False),
    ],
)
async def test_range_query_resolution_limit_is_prometheus_s(
    service: Service, end: str, step: str, accepted: bool
) -> None:
    # Answers checked against Prometheus 2.42 for the same parameters.
    params = {"query": "1", "start": "0", "end": end, "step": step}
    status, body = await query(service, "/api/v1/query_range", params)
    if accepted:
        assert status == 200
        assert len(body["data"]["result"][0]["values"]) == MAX_POINTS_PER_SERIES == 11_001
    else:
        assert (status, body["errorType"]) == (400, "bad_data")
        assert body["error"] == (
            "exceeded maximum resolution of 11,000 points per timeseries. "
            "Try decreasing the query resolution (?step=XX)"
        )


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        (
            "/api/v1/query",
            {"query": "sum(", "time": "1"},
            'invalid parameter "query": 1:5: parse error: unclosed left parenthesis',
        ),
        (
            "/api/v1/query",
            {"time": "1"},
            'invalid parameter "query": 1:1: parse error: no expression found in input',
        ),
        (
            "/api/v1/query",
            {"query": "up", "time": "abc"},
            "invalid parameter \"time\": Invalid time value for 'time': "
            'cannot parse "abc" to a valid timestamp',
        ),
        (
            "/api/v1/query",
            {"query": "up", "timeout": "abc"},
            'invalid parameter "timeout": cannot parse "abc" to a valid duration',
        ),
        (
            "/api/v1/query_range",
            {"query": "up", "end": "5", "step": "1"},
            'invalid parameter "start": cannot parse "" to a valid timestamp',
        ),
        (
            "/api/v1/query_range",
            {"query": "up", "start": "10", "end": "5", "step": "1"},
            'invalid parameter "end": end timestamp must not be before start time',
        ),
        (
            "/api/v1/query_range",
            {"query": "up", "start": "0", "end": "5"},
            'invalid parameter "step": cannot parse "" to a valid duration',
        ),
        (
            "/api/v1/query_range",
            {"query": "up", "start": "0", "end": "5", "step": "0"},
            'invalid parameter "step": zero or negative query resolution step widths are not '
            "accepted. Try a positive integer",
        ),
        (
            "/api/v1/query_range",
            {"query": "up", "start": "0", "end": "100000", "step": "1"},
            "exceeded maximum resolution of 11,000 points per timeseries. "
            "Try decreasing the query resolution (?step=XX)",
        ),
        (
            "/api/v1/query_range",
            {"query": "up[5m]", "start": "0", "end": "5", "step": "1"},
            'invalid expression type "range vector" for range query, must be Scalar or instant '
            "Vector",
        ),
        (
            "/api/v1/format_query",
            {"query": "sum(up"},
            'invalid parameter "query": 1:7: parse error: unclosed left parenthesis',
        ),
        (
            "/api/v1/query_exemplars",
            {"query": "up{"},
            "1:4: parse error: unexpected end of input inside braces",
        ),
        (
            "/api/v1/query_exemplars",
            {"query": "up", "start": "10", "end": "5"},
            "end timestamp must not be before start timestamp",
        ),
    ],
)
async def test_bad_requests(
    service: Service, path: str, params: dict[str, str], message: str
) -> None:
    status, body = await query(service, path, params)
    assert status == 400
    assert body == {"status": "error", "errorType": "bad_data", "error": message}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        # Prometheus 2.42's answers to the same queries (position, wording, quoting)
        ("sum(", "1:5: parse error: unclosed left parenthesis"),
        ("foo bar", '1:5: parse error: unexpected identifier "bar"'),
        ("up +", "1:5: parse error: unexpected end of input"),
        ("1 +* 2", "1:4: parse error: unexpected <op:*>"),
        ("sum(up) by", '1:11: parse error: unexpected end of input in grouping opts, expected "("'),
        (
            'x{a="b" c="d"}',
            '1:9: parse error: unexpected identifier "c" in label matching, expected "," or "}"',
        ),
        ("a +\n b c", '2:4: parse error: unexpected identifier "c"'),
        ("up[5m", "1:6: parse error: unclosed left bracket"),
        ("a}", "1:2: parse error: unexpected character: '}'"),
        (
            "rate(up)",
            '1:6: parse error: expected type range vector in call to function "rate", '
            "got instant vector",
        ),
        (
            "round(x, y)",
            '1:10: parse error: expected type scalar in call to function "round", '
            "got instant vector",
        ),
        ("abs(x, y)", '1:1: parse error: expected 1 argument(s) in call to "abs", got 2'),
        ("foo()", '1:1: parse error: unknown function with name "foo"'),
        (
            '1 + "a"',
            "1:5: parse error: binary expression must contain only scalar and instant vector types",
        ),
        ('{a=""}', "1:1: parse error: vector selector must contain at least one non-empty matcher"),
        ('foo{a=~"("}', "1:5: parse error: error parsing regexp: missing closing ): `^(?:()$`"),
    ],
)
async def test_parse_errors_are_prometheus_s_on_every_query_endpoint(
    service: Service, text: str, error: str
) -> None:
    expected = {"status": "error", "errorType": "bad_data"}
    status, body = await query(service, "/api/v1/query", {"query": text, "time": "1"})
    assert (status, body) == (400, {**expected, "error": f'invalid parameter "query": {error}'})
    status, body = await query(service, "/api/v1/format_query", {"query": text})
    assert (status, body) == (400, {**expected, "error": f'invalid parameter "query": {error}'})
    params = {"query": text, "start": "0", "end": "10", "step": "1"}
    status, body = await query(service, "/api/v1/query_range", params)
    assert (status, body) == (400, {**expected, "error": error})
    status, body = await query(service, "/api/v1/query_exemplars", {"query": text})
    assert (status, body) == (400, {**expected, "error": error})


async def test_execution_error_is_422(service: Service) -> None:
    status, body = await query(
        service,
        "/api/v1/query",
        {"query": "requests_total + on() requests_total", "time": str(NOW_S)},
    )
    assert status == 422
    assert body["errorType"] == "execution"
    assert "many-to-many matching not allowed" in body["error"]


async def test_too_many_samples_is_422(make_service: MakeService) -> None:
    service = await make_service(Config(query=QueryConfig(max_samples=2)))
    body = encode([((("__name__", "m"),), [T0 - 2000, T0 - 1000, T0], [1.0, 2.0, 3.0])])
    assert (await service.write(body))[0] == 204
    status, err = await query(service, "/api/v1/query", {"query": "m[1m]", "time": str(NOW_S)})
    assert status == 422
    assert err["errorType"] == "execution"
    assert "too many samples" in err["error"]


@pytest.mark.parametrize(
    ("error", "status", "error_type"),
    [
        (QueryTimeout("query timed out in query execution"), 503, "timeout"),
        (QueryCanceled("query was canceled in query execution"), 499, "canceled"),
    ],
)
def test_engine_failures_map_to_prometheus_error_types(
    error: Exception, status: int, error_type: str
) -> None:
    # A cancel only happens when the client is gone, so no client can see it: the
    # mapping table is checked directly.
    assert classify(error) == (error_type, status)


async def test_query_timeout_is_503_timeout(make_service: MakeService) -> None:
    service = await make_service()
    ts = [T0 - 600_000 + k * 15_000 for k in range(41)]
    series = [((("__name__", "load"), ("i", str(i))), ts, [float(i)] * 41) for i in range(2000)]
    assert (await service.write(encode(series)))[0] == 204
    # A 1h subquery at 1s steps over 2000 series takes far longer than 1 ms.
    params = {"query": "count_over_time(load[1h:1s])", "time": str(NOW_S), "timeout": "0.001"}
    status, body = await query(service, "/api/v1/query", params)
    assert (status, body["errorType"]) == (503, "timeout")
    assert body["error"].startswith("query timed out in query execution")


async def test_warnings_and_infos_reach_the_response(service: Service) -> None:
    _, body = await query(service, "/api/v1/query", {"query": "rate(temp[5m])", "time": str(NOW_S)})
    assert body["infos"] == [
        "PromQL info: metric might not be a counter, name does not end in "
        '_total/_sum/_count/_bucket: "temp" (1:6)'
    ]
    assert "warnings" not in body
    _, body = await query(
        service, "/api/v1/query", {"query": "histogram_quantile(2, requests_total)"}
    )
    assert (
        "PromQL warning: quantile value should be between 0 and 1, got 2 (1:20)"
        in (body["warnings"])
    )


def test_timeout_parameter_only_shortens_the_configured_timeout() -> None:
    def opts(params: dict[str, str]) -> QueryOpts:
        return query_options(MultiDict(params), 10_000)

    assert opts({"timeout": "2s"}) == QueryOpts(timeout_s=2.0)
    assert opts({"timeout": "1h"}) == QueryOpts(timeout_s=10.0)
    assert opts({}) == QueryOpts(timeout_s=10.0)


async def test_format_query(service: Service) -> None:
    status, body = await query(service, "/api/v1/format_query", {"query": "sum(rate(x[5m]))by(a)"})
    assert (status, body) == (200, {"status": "success", "data": "sum by (a) (rate(x[5m]))"})


async def test_query_exemplars_is_empty(service: Service) -> None:
    status, body = await query(service, "/api/v1/query_exemplars", {"query": "requests_total"})
    assert (status, body) == (200, {"status": "success", "data": []})


async def test_big_range_result_round_trips(make_service: MakeService) -> None:
    service = await make_service()
    n_series, points = 200, 41
    ts = [T0 - 600_000 + k * 15_000 for k in range(points)]
    rng = np.random.default_rng(5)
    data = rng.normal(size=(n_series, points)) * 1e3
    series = [
        ((("__name__", "g"), ("i", f"{i:03d}")), ts, data[i].tolist()) for i in range(n_series)
    ]
    assert (await service.write(encode(series)))[0] == 204
    start_s, end_s = (T0 - 600_000) // 1000, T0 // 1000
    _, body = await query(
        service,
        "/api/v1/query_range",
        {"query": "g", "start": str(start_s), "end": str(end_s), "step": "15"},
    )
    result = body["data"]["result"]
    assert [r["metric"]["i"] for r in result] == [f"{i:03d}" for i in range(n_series)]
    got = np.array([[float(v) for _, v in r["values"]] for r in result])
    assert np.array_equal(got, data)
    assert [t for t, _ in result[0]["values"]] == list(range(start_s, end_s + 1, 15))


async def test_big_range_answer_is_complete_json(make_service: MakeService) -> None:
    """Bodies past the streaming threshold arrive whole, with their length and warnings."""
    service = await make_service()
    ts = [T0 - 3_600_000 + k * 15_000 for k in range(241)]
    series = [
        ((("__name__", "g"), ("i", f"{i:03d}")), ts, [i + k / 4 for k in range(241)])
        for i in range(300)
    ]
    assert (await service.write(encode(series)))[0] == 204
    params = {"query": "g", "start": str(NOW_S - 3600), "end": str(NOW_S), "step": "15"}
    resp = await service.client.get("/api/v1/query_range", params=params)
    raw = await resp.read()
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert int(resp.headers["Content-Length"]) == len(raw) > 1 << 16
    body = await resp.json()
    assert body["status"] == "success"
    result = body["data"]["result"]
    assert [s["metric"]["i"] for s in result] == [f"{i:03d}" for i in range(300)]
    assert result[7]["values"][0] == [NOW_S - 3600, "7"]
    assert result[7]["values"][-1] == [NOW_S, "67"]
    # A warning rides along after the data.
    params["query"] = "rate(g[1m])"
    body = await (await service.client.get("/api/v1/query_range", params=params)).json()
    assert body["status"] == "success"
    assert len(body["data"]["result"]) == 300
    assert any("might not be a counter" in i for i in body["infos"])


async def test_client_leaving_mid_answer_leaves_the_server_serving(
    make_service: MakeService, caplog: pytest.LogCaptureFixture
) -> None:
    service = await make_service()
    ts = [T0 - 3_600_000 + k * 15_000 for k in range(241)]
    values = [float(k) for k in range(241)]
    series = [((("__name__", "g"), ("i", str(i))), ts, values) for i in range(500)]
    assert (await service.write(encode(series)))[0] == 204
    server = service.client.server
    path = f"/api/v1/query_range?query=g&start={NOW_S - 3600}&end={NOW_S}&step=15"
    for _ in range(3):  # ask for megabytes, hang up before the answer
        _, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        await asyncio.sleep(0.001)
        writer.transport.abort()
    await asyncio.sleep(0.2)
    status, body = await query(service, "/api/v1/query", {"query": "count(g)", "time": str(NOW_S)})
    assert status == 200
    assert body["data"]["result"][0]["value"][1] == "500"
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        # Each of these crashed the process inside promql-parser (stack overflow) or held
        # it for seconds before the depth limit; now they are refused before parsing.
        ("+".join(["requests_total"] * 6000), "5999 operators"),
        ("(" * 10_000 + "requests_total" + ")" * 10_000, "10000 nested brackets"),
        ("-" * 16_000 + "requests_total", "16000 operators"),
        ("sum(" * 300 + "requests_total" + ")" * 300, "300 nested brackets"),
        ("requests_total" + " or requests_total" * 300, "300 operators"),
    ],
)
async def test_too_deep_queries_are_refused_fast_and_the_service_lives(
    service: Service, text: str, why: str
) -> None:
    started = time.monotonic()
    status, body = await query(service, "/api/v1/query", {"query": text}, method="POST")
    assert time.monotonic() - started < 2
    assert status == 400
    assert body["errorType"] == "bad_data"
    assert "more than the limit of 256" in body["error"]
    assert why in body["error"]
    status, body = await query(service, "/api/v1/query", {"query": "sum(requests_total)"})
    assert status == 200


async def test_deep_query_within_the_limit_evaluates(service: Service) -> None:
    text = "(" + "+".join(["requests_total"] * 200) + ") / 200"
    status, body = await query(
        service, "/api/v1/query", {"query": text, "time": str(NOW_S)}, method="POST"
    )
    assert status == 200, body
    values = sorted(float(r["value"][1]) for r in body["data"]["result"])
    assert values == [30.0, 120.0]


async def test_query_text_over_the_size_limit_is_refused(service: Service) -> None:
    text = 'requests_total{job=~"' + "a|" * 140_000 + 'api"}'
    status, body = await query(service, "/api/v1/query", {"query": text}, method="POST")
    assert status == 400
    assert "more than the limit of 262144 bytes" in body["error"]
