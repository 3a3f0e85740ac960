"""Tiering over HTTP: flush, the blocks status, query stats with object-store cost, the
per-query limits, `max_source_resolution`, late samples, and the backlog metrics."""

from __future__ import annotations

import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aggregator.config import Config, QueryConfig
from tests.aggregator.conftest import MakeService, Service, encode

HOUR_MS = 3_600_000
START_MS = (int(time.time() * 1000) - 3 * HOUR_MS) // (2 * HOUR_MS) * (2 * HOUR_MS)
"""An hour of data from here lies inside one two-hour block range, in the past."""
NOW_S = (START_MS + HOUR_MS) // 1000  # just after the last sample
UP = (("__name__", "up"), ("job", "api"))


def hour_of_scrapes(job: str, start_ms: int, minutes: int = 60) -> Any:
    ts = [start_ms + k * 15_000 for k in range(minutes * 4)]
    return (
        (("__name__", "requests_total"), ("job", job)),
        ts,
        [float(k * 7) for k in range(len(ts))],
    )


async def flushed_service(make_service: MakeService, config: Config | None = None) -> Service:
    service = await make_service(config)
    status, text = await service.write(
        encode([hour_of_scrapes("api", START_MS), hour_of_scrapes("web", START_MS)])
    )
    assert status == 204, text
    resp = await service.client.post("/api/v1/admin/flush")
    assert resp.status == 200
    body = await resp.json()
    assert body["data"] == {"blocks": 1, "series": 2, "samples": 480}
    return service


async def metrics(service: Service) -> dict[tuple[str, tuple[Any, ...]], float]:
    text = await (await service.client.get("/metrics")).text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_flush_moves_the_head_into_the_object_store(make_service: MakeService) -> None:
    service = await flushed_service(make_service)
    status, body = await service.get_json("/api/v1/status/blocks")
    assert status == 200
    data = body["data"]
    assert data["head"]["samples"] == 0
    assert data["backlog"] == {"blocks": 0, "bytes": 0, "samples": 0, "oldestSeconds": 0}
    (block,) = data["blocks"]
    assert block["samples"] == 480
    assert block["series"] == 2
    assert block["kind"] == "flush"
    assert block["minTime"] == START_MS
    assert data["objectStore"].startswith("local:")
    got = await metrics(service)
    assert got[("aggregator_tiering_blocks", ())] == 1
    assert got[("aggregator_tiering_pending_blocks", ())] == 0
    assert got[("aggregator_tiering_blocks_uploaded_total", ())] == 1
    assert got[("aggregator_object_store_requests_total", (("operation", "put"),))] >= 3


async def test_query_stats_count_object_store_reads(make_service: MakeService) -> None:
    service = await flushed_service(make_service)
    params = {
        "query": "sum(rate(requests_total[5m]))",
        "start": str(NOW_S - 3000),
        "end": str(NOW_S),
        "step": "60",
        "stats": "all",
    }
    status, body = await service.get_json("/api/v1/query_range", params=params)
    assert status == 200, body
    stats = body["data"]["stats"]
    assert stats["samples"]["totalQueryableSamples"] > 0
    assert set(stats["timings"]) >= {"evalTotalTime", "execTotalTime", "innerEvalTime"}
    cold = stats["objectStore"]
    assert cold["requests"] >= 3  # series table, footer, column chunks
    assert cold["bytes"] > 0
    assert cold["blocks"] == 1
    # The same query again: the block cache answers, nothing is fetched.
    status, body = await service.get_json("/api/v1/query_range", params=params)
    warm = body["data"]["stats"]["objectStore"]
    assert warm["requests"] == 0
    assert warm["bytes"] == 0
    assert warm["cachedBytes"] >= cold["bytes"] - 65536
    # Without `stats`, no stats.
    params.pop("stats")
    status, body = await service.get_json("/api/v1/query_range", params=params)
    assert "stats" not in body["data"]
    got = await metrics(service)
    assert got[("aggregator_query_object_store_bytes_count", ())] == 3
    assert got[("aggregator_query_object_store_bytes_sum", ())] == cold["bytes"]


async def test_object_store_limit_fails_the_query_naming_it(make_service: MakeService) -> None:
    config = Config(query=QueryConfig(max_object_store_bytes=1000))
    service = await flushed_service(make_service, config)
    status, body = await service.get_json(
        "/api/v1/query", params={"query": "requests_total[30m]", "time": str(NOW_S)}
    )
    assert status == 422
    assert body["errorType"] == "execution"
    assert "query.max_object_store_bytes limit of 1000" in body["error"]
    # The head alone is not limited: a query of recent data still works.
    status, body = await service.get_json("/api/v1/query", params={"query": "up"})
    assert status == 200


async def test_request_limit_names_its_key(make_service: MakeService) -> None:
    config = Config(query=QueryConfig(max_object_store_requests=1))
    service = await flushed_service(make_service, config)
    status, body = await service.get_json(
        "/api/v1/query", params={"query": "requests_total[30m]", "time": str(NOW_S)}
    )
    assert status == 422
    assert "query.max_object_store_requests limit of 1" in body["error"]


@pytest.mark.parametrize("value", ["auto", "raw", "0s", "5m", "1h"])
async def test_max_source_resolution_values(make_service: MakeService, value: str) -> None:
    service = await flushed_service(make_service)
    status, body = await service.get_json(
        "/api/v1/query",
        params={
            "query": "count(requests_total)",
            "time": str(NOW_S),
            "max_source_resolution": value,
        },
    )
    assert status == 200, body
    assert body["data"]["result"][0]["value"][1] == "2"


async def test_bad_max_source_resolution(make_service: MakeService) -> None:
    service = await make_service()
    status, body = await service.get_json(
        "/api/v1/query", params={"query": "up", "max_source_resolution": "fine"}
    )
    assert status == 400
    assert body["error"].startswith('invalid parameter "max_source_resolution"')


async def test_late_samples_are_accepted_by_default(make_service: MakeService) -> None:
    service = await make_service()
    now = int(time.time() * 1000)
    assert (await service.write(encode([(UP, [now], [1.0])])))[0] == 204
    six_hours = 6 * 3_600_000
    status, text = await service.write(encode([(UP, [now - six_hours], [0.5])]))
    assert (status, text) == (204, "")
    # Beyond the late window: refused, naming it.
    config_window = Config().storage.late_window_ms
    status, text = await service.write(encode([(UP, [now - config_window - 60_000], [0.5])]))
    assert status == 400
    assert "storage.late_window of 7d" in text or "storage.late_window of 168h0m0s" in text
