"""The receiver over the real Storage (head + WAL): rejections with storage's reasons,
limits, cluster identity, and data surviving a restart on the same data directory."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from aggregator.config import Config, LimitsConfig
from remote_write.batch import SeriesMetadata
from tests.aggregator.conftest import MakeService, Service, clusters, encode

UP = (("__name__", "up"), ("job", "api"))


def now_ms() -> int:
    return int(time.time() * 1000)


async def series(service: Service, match: str = '{__name__=~".+"}') -> list[dict[str, str]]:
    status, body = await service.get_json("/api/v1/series", params={"match[]": match})
    assert status == 200, body
    return body["data"]


async def scrape(service: Service) -> dict[tuple[str, tuple[Any, ...]], float]:
    text = await (await service.client.get("/metrics")).text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_write_then_read_back(make_service: MakeService) -> None:
    service = await make_service(real=True)
    t = now_ms()
    status, text = await service.write(encode([(UP, [t - 15_000, t], [1.0, 2.0])]))
    assert (status, text) == (204, "")
    assert await series(service) == [dict(UP)]
    status, body = await service.get_json("/api/v1/label/job/values")
    assert body["data"] == ["api"]


async def test_storage_rejections_reach_the_sender(make_service: MakeService) -> None:
    config = Config(limits=LimitsConfig(max_future_ms=60_000, out_of_order_window_ms=60_000))
    service = await make_service(config, real=True)
    t = now_ms()
    assert (await service.write(encode([(UP, [t], [1.0])])))[0] == 204

    # Same timestamp, same value: a sender's retry, accepted as a no-op.
    assert (await service.write(encode([(UP, [t], [1.0])])))[0] == 204

    other = (("__name__", "other"), ("job", "api"))
    status, text = await service.write(
        encode(
            [
                (UP, [t], [5.0]),  # same timestamp, different value
                (UP, [t - 3_600_000], [1.0]),  # older than the out-of-order window
                (other, [t + 3_600_000], [1.0]),  # an hour ahead of the clock
                (other, [t - 1000], [7.0]),  # fine
            ]
        )
    )
    assert status == 400
    lines = text.splitlines()
    assert lines[0].startswith("3 samples of 3 series rejected, 1 samples written; ")
    assert any(
        line.startswith("- duplicate_sample_for_timestamp: duplicate sample for timestamp")
        for line in lines
    )
    assert any(line.startswith("- out_of_order_sample: out of order sample") for line in lines)
    assert any(
        line.startswith("- sample_too_far_in_future: sample too far in the future")
        for line in lines
    )
    assert {s["__name__"] for s in await series(service)} == {"up", "other"}
    got = await scrape(service)
    assert (
        got[
            (
                "aggregator_rejected_samples_total",
                (("cluster", ""), ("reason", "out_of_order_sample")),
            )
        ]
        == 1
    )


async def test_series_limit_per_cluster_is_429(make_service: MakeService) -> None:
    config = Config(clusters=clusters("edge"), limits=LimitsConfig(max_series_per_cluster=2))
    service = await make_service(config, real=True)
    auth = {"Authorization": "Bearer token-edge"}
    t = now_ms()
    body = encode([((("__name__", "m"), ("i", str(i))), [t], [1.0]) for i in range(3)])
    resp = await service.client.post(
        "/api/v1/write", data=body, headers={**auth, "Content-Encoding": "snappy"}
    )
    text = await resp.text()
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "10"
    assert "series limit reached: cluster 'edge' has the maximum of 2 active series" in text
    assert len(await series(service, "m")) == 2
    got = await scrape(service)
    assert got[("aggregator_active_series", (("cluster", "edge"),))] == 2


async def test_cluster_identity_over_real_storage(make_service: MakeService) -> None:
    service = await make_service(Config(clusters=clusters("edge", "dc")), real=True)
    t = now_ms()
    sent = (("__name__", "up"), ("cluster", "spoofed"))
    for cluster in ("edge", "dc"):
        status, _ = await service.write(
            encode([(sent, [t], [1.0])]), headers={"Authorization": f"Bearer token-{cluster}"}
        )
        assert status == 204
    assert await series(service, "up") == [
        {"__name__": "up", "cluster": "dc"},
        {"__name__": "up", "cluster": "edge"},
    ]


async def test_data_survives_restart_and_fsyncs_are_timed(
    make_service: MakeService,
) -> None:
    service = await make_service(real=True)
    t = now_ms()
    meta = [SeriesMetadata("up", "gauge", "Target up.", "")]
    assert (await service.write(encode([(UP, [t], [1.0])], metadata=meta)))[0] == 204
    got = await scrape(service)
    assert got[("aggregator_wal_fsync_duration_seconds_count", ())] >= 1
    await service.client.close()  # runs the app's cleanup: storage closes

    again = await make_service(real=True)
    assert await series(again) == [dict(UP)]
    _, body = await again.get_json("/api/v1/metadata")
    assert body["data"] == {"up": [{"type": "gauge", "help": "Target up.", "unit": ""}]}
