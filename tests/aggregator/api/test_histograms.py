"""Native histograms through the HTTP API: remote write in, Prometheus JSON out."""

from __future__ import annotations

import time

from tests.aggregator.conftest import MakeService
from tests.support.nhist import H, request


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_histogram_written_and_queried_as_prometheus_json(make_service: MakeService) -> None:
    service = await make_service()
    t = now_ms() - 60_000
    hs = [
        H(t, count=4, sum=3.5, schema=0, zero_threshold=0.001, zero_count=1,
          positive={1: 2}, negative={0: 1}),
        H(t + 30_000, count=8, sum=7.0, schema=0, zero_threshold=0.001, zero_count=2,
          positive={1: 4}, negative={0: 2}),
    ]  # fmt: skip
    status, text = await service.write(request([({"__name__": "lat", "job": "a"}, hs)]))
    assert (status, text) == (204, "")
    status, body = await service.get_json(
        "/api/v1/query", params={"query": "lat", "time": str((t + 30_000) / 1000)}
    )
    assert status == 200, body
    (item,) = body["data"]["result"]
    assert item["metric"] == {"__name__": "lat", "job": "a"}
    ts, h = item["histogram"]
    assert ts == (t + 30_000) / 1000
    assert h == {
        "count": "8",
        "sum": "7",
        "buckets": [
            [1, "-1", "-0.5", "2"],
            [3, "-0.001", "0.001", "2"],
            [0, "1", "2", "4"],
        ],
    }
    status, body = await service.get_json(
        "/api/v1/query",
        params={"query": "histogram_count(lat)", "time": str((t + 30_000) / 1000)},
    )
    assert body["data"]["result"] == [{"metric": {"job": "a"}, "value": [ts, "8"]}]
    status, body = await service.get_json(
        "/api/v1/query_range",
        params={"query": "lat", "start": str(t / 1000), "end": str((t + 30_000) / 1000),
                "step": "30"},
    )  # fmt: skip
    (series,) = body["data"]["result"]
    assert "values" not in series
    assert [p[1]["count"] for p in series["histograms"]] == ["4", "8"]
    # The series API is unaffected.
    status, body = await service.get_json("/api/v1/series", params={"match[]": "lat"})
    assert body["data"] == [{"__name__": "lat", "job": "a"}]


async def test_custom_bucket_histogram_json(make_service: MakeService) -> None:
    service = await make_service()
    t = now_ms() - 10_000
    h = H(t, count=6, sum=4.0, schema=-53, positive={0: 1, 1: 2, 2: 3}, custom_values=[0.5, 1])
    status, _ = await service.write(request([({"__name__": "nhcb"}, [h])]))
    assert status == 204
    status, body = await service.get_json(
        "/api/v1/query", params={"query": "nhcb", "time": str(t / 1000)}
    )
    (item,) = body["data"]["result"]
    assert item["histogram"][1]["buckets"] == [
        [0, "-Inf", "0.5", "1"],
        [0, "0.5", "1", "2"],
        [0, "1", "+Inf", "3"],
    ]


async def test_stale_histogram_ends_the_series(make_service: MakeService) -> None:
    from remote_write.batch import STALE_NAN

    service = await make_service()
    t = now_ms() - 60_000
    hs = [H(t, count=1, zero_count=1), H(t + 15_000, count=0, sum=STALE_NAN)]
    status, _ = await service.write(request([({"__name__": "gone"}, hs)]))
    assert status == 204
    at = {"query": "gone", "time": str((t + 5_000) / 1000)}
    status, body = await service.get_json("/api/v1/query", params=at)
    assert len(body["data"]["result"]) == 1
    after = {"query": "gone", "time": str((t + 20_000) / 1000)}
    status, body = await service.get_json("/api/v1/query", params=after)
    assert body["data"]["result"] == [], "the stale marker ends the series at once"
