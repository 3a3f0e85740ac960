"""`/api/v1/query_exemplars`: selectors, time range, and a reader limited to one cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.api.exemplars import marshal_timestamp
from aggregator.config import Config
from tests.aggregator.api.test_access import basic, get, web_config
from tests.aggregator.conftest import MakeService, Service, clusters
from tests.support.rw2 import RW2_HEADERS, SeriesV2, request_v2

T0 = 1_700_000_000_000


def series(name: str, job: str, trace: str, t: int, value: float = 1.0) -> SeriesV2:
    return SeriesV2(
        (("__name__", name), ("job", job)),
        [(t, value)],
        exemplars=[((("trace_id", trace),), value, t)],
    )


@pytest.fixture
async def service(make_service: MakeService, tmp_path: Path) -> Service:
    config = Config(clusters=clusters("a", "b"), web_config_file=web_config(tmp_path))
    svc = await make_service(config)
    for cluster in ("a", "b"):
        body = request_v2(
            [
                series("rpc_total", "api", f"{cluster}-1", T0),
                series("rpc_total", "api", f"{cluster}-2", T0 + 60_000, 2.0),
                series("rpc_total", "db", f"{cluster}-3", T0 + 1_500, 3.0),
                series("other_total", "api", f"{cluster}-4", T0),
            ]
        )
        resp = await svc.client.post(
            "/api/v1/write",
            data=body,
            headers={**RW2_HEADERS, "Authorization": f"Bearer token-{cluster}"},
        )
        assert resp.status == 204, await resp.text()
    return svc


def traces(data: list[dict]) -> list[str]:
    return [e["labels"]["trace_id"] for s in data for e in s["exemplars"]]


async def test_every_selector_of_the_expression_picks_series(service: Service) -> None:
    status, body = await get(
        service,
        "/api/v1/query_exemplars",
        basic("alice"),
        query='sum(rate(rpc_total{job="api"}[5m])) / on() other_total{cluster="b"}',
    )
    assert status == 200
    assert [s["seriesLabels"] for s in body["data"]] == [
        {"__name__": "other_total", "cluster": "b", "job": "api"},
        {"__name__": "rpc_total", "cluster": "a", "job": "api"},
        {"__name__": "rpc_total", "cluster": "b", "job": "api"},
    ]
    assert traces(body["data"]) == ["b-4", "a-1", "a-2", "b-1", "b-2"]
    assert body["data"][1]["exemplars"][1] == {
        "labels": {"trace_id": "a-2"},
        "value": "2",
        "timestamp": 1700000060,
    }


async def test_start_and_end_bound_the_exemplars(service: Service) -> None:
    _, body = await get(
        service,
        "/api/v1/query_exemplars",
        basic("alice"),
        query='rpc_total{cluster="a"}',
        start=str(T0 / 1000 + 1),
        end=str(T0 / 1000 + 30),
    )
    assert traces(body["data"]) == ["a-3"]
    assert body["data"][0]["exemplars"][0]["timestamp"] == 1700000001.5


async def test_a_reader_limited_to_a_cluster_sees_only_its_exemplars(service: Service) -> None:
    _, body = await get(service, "/api/v1/query_exemplars", basic("bob"), query="rpc_total")
    assert {s["seriesLabels"]["cluster"] for s in body["data"]} == {"a"}
    assert sorted(traces(body["data"])) == ["a-1", "a-2", "a-3"]
    status, _ = await get(service, "/api/v1/query_exemplars", {}, query="rpc_total")
    assert status == 401


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"query": "rpc_total{"}, "parse error"),
        ({"query": "rpc_total", "start": "10", "end": "5"}, "end timestamp must not be before"),
        ({"query": "rpc_total", "start": "yesterday"}, "start"),
    ],
)
async def test_bad_parameters_are_400(service: Service, params: dict, message: str) -> None:
    status, body = await get(service, "/api/v1/query_exemplars", basic("alice"), **params)
    assert status == 400
    assert body["errorType"] == "bad_data"
    assert message in body["error"]


def test_timestamps_are_written_as_prometheus_writes_them() -> None:
    assert marshal_timestamp(1_600_096_945_479) == b"1600096945.479"
    assert marshal_timestamp(12_050) == b"12.050"
    assert marshal_timestamp(7_000) == b"7"
    assert marshal_timestamp(-1_500) == b"-1.500"
