"""Health, readiness, buildinfo and the self-metrics exposition."""

from __future__ import annotations

import re
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from aggregator.app import BACKEND, version
from aggregator.config import Config
from storage.db import Storage
from tests.aggregator.conftest import (
    HoldWAL,
    MakeService,
    Service,
    clusters,
    encode,
    stored_samples,
)

T0 = 1_700_000_000_000


def now_ms() -> int:
    return int(time.time() * 1000)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parsed exposition: (sample name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def scrape(service: Service) -> str:
    resp = await service.client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    return await resp.text()


async def test_healthy_and_ready(make_service: MakeService) -> None:
    service = await make_service()
    for path in ("/-/healthy", "/-/ready"):
        resp = await service.client.get(path)
        assert resp.status == 200, path
        head = await service.client.head(path)
        assert head.status == 200


async def test_ready_is_503_while_storage_replays(
    make_service: MakeService, held_wal: HoldWAL
) -> None:
    up = (("__name__", "up"), ("job", "api"))
    wal = await held_wal([(up, [now_ms()], [1.0])])
    service = await make_service(wait=False)
    assert (await service.client.get("/-/ready")).status == 503
    assert (await service.client.get("/-/healthy")).status == 200
    resp = await service.client.get("/api/v1/labels")
    assert resp.status == 503
    assert (await resp.json())["errorType"] == "unavailable"
    got = samples(await scrape(service))
    assert got[("aggregator_ready", ())] == 0
    await wal.release()
    await service.app[BACKEND].wait_open()
    assert (await service.client.get("/-/ready")).status == 200
    status, body = await service.get_json("/api/v1/labels")
    assert (status, body["data"]) == (200, ["__name__", "job"])


async def test_storage_is_closed_on_shutdown(make_service: MakeService, data_dir: Path) -> None:
    service = await make_service()
    storage = service.storage
    up = (("__name__", "up"), ("job", "api"))
    t = now_ms()
    assert (await service.write(encode([(up, [t], [1.0])])))[0] == 204
    await service.client.close()
    assert not storage.ready
    # Closed for real: the data directory's lock is free and the WAL holds the write.
    again = await Storage.open(data_dir)
    try:
        assert await stored_samples(again, up) == [(t, 1.0)]
    finally:
        await again.close()


async def test_buildinfo(make_service: MakeService) -> None:
    service = await make_service()
    status, body = await service.get_json("/api/v1/status/buildinfo")
    assert status == 200
    assert body["status"] == "success"
    data = body["data"]
    assert data["version"] == version()
    prometheus_fields = {"version", "revision", "branch", "buildUser", "buildDate", "goVersion"}
    assert prometheus_fields <= set(data)
    # What Grafana's alerting UI checks before it edits rules through the ruler API.
    assert data["application"] == "Grafana Mimir"
    assert data["features"]["ruler_config_api"] == "true"


async def test_unknown_path_is_404(make_service: MakeService) -> None:
    service = await make_service()
    assert (await service.client.get("/api/v1/nope")).status == 404


async def test_metrics_count_ingest_requests_and_state(make_service: MakeService) -> None:
    service = await make_service(Config(clusters=clusters("edge")))
    auth = {"Authorization": "Bearer token-edge"}
    good = encode([((("__name__", "up"), ("job", "a")), [T0, T0 + 1], [1.0, 1.0])])
    mixed = encode(
        [
            ((("__name__", "up"), ("job", "b")), [T0], [1.0]),
            ((("__name__", "bad"), ("0x", "1")), [T0, T0 + 1, T0 + 2], [1.0, 1.0, 1.0]),
        ]
    )
    assert (await service.write(good, headers=auth))[0] == 204
    assert (await service.write(mixed, headers=auth))[0] == 400
    assert (await service.write(b"junk", headers=auth))[0] == 400
    assert (await service.write(good))[0] == 401
    await service.client.get("/api/v1/label/job/values")
    await service.client.get("/api/v1/label/0/values")
    before = samples(await scrape(service))
    assert before[("aggregator_wal_fsync_duration_seconds_count", ())] >= 1, "real WAL fsyncs"
    fsync_callback = service.storage.options.on_wal_fsync
    assert fsync_callback is not None, "build_app wires WAL fsync timing into storage"
    fsync_callback(0.002)

    text = await scrape(service)
    got = samples(text)

    def added(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return got[(name, labels)] - before[(name, labels)]

    assert got[("aggregator_received_samples_total", (("cluster", "edge"),))] == 6
    assert got[("aggregator_received_series_total", (("cluster", "edge"),))] == 3
    assert got[("aggregator_received_bytes_total", (("cluster", "edge"),))] == len(good) + len(
        mixed
    ) + len(b"junk")
    assert (
        got[
            (
                "aggregator_rejected_samples_total",
                (("cluster", "edge"), ("reason", "invalid_label_name")),
            )
        ]
        == 3
    )
    assert got[("aggregator_write_requests_failed_total", (("reason", "decode"),))] == 1
    assert got[("aggregator_write_requests_failed_total", (("reason", "unauthorized"),))] == 1
    write_codes = {
        labels[0][1]: v
        for (name, labels), v in got.items()
        if name == "aggregator_http_requests_total" and ("handler", "/api/v1/write") in labels
        for labels in [tuple(sorted(set(labels) - {("handler", "/api/v1/write")}))]
    }
    assert write_codes == {"204": 1, "400": 2, "401": 1}
    values_route = "/api/v1/label/{name}/values"
    assert (
        got[("aggregator_http_requests_total", (("code", "200"), ("handler", values_route)))] == 1
    )
    assert (
        got[("aggregator_http_requests_total", (("code", "400"), ("handler", values_route)))] == 1
    )
    assert (
        got[("aggregator_http_request_duration_seconds_count", (("handler", "/api/v1/write"),))]
        == 4
    )
    assert got[("aggregator_active_series", (("cluster", "edge"),))] == 2
    assert got[("aggregator_ready", ())] == 1
    assert added("aggregator_wal_fsync_duration_seconds_count") == 1
    assert added("aggregator_wal_fsync_duration_seconds_bucket", (("le", "0.0025"),)) == 1
    assert added("aggregator_wal_fsync_duration_seconds_bucket", (("le", "0.001"),)) == 0
    assert re.search(
        r'^aggregator_build_info\{python_version="[^"]+",version="[^"]+"\} 1\.0$', text, re.M
    )
    assert "process_resident_memory_bytes" in text


async def test_metrics_use_their_own_registry(make_service: MakeService) -> None:
    from prometheus_client import REGISTRY

    await make_service()
    assert REGISTRY.get_sample_value("aggregator_ready") is None


async def test_openmetrics_when_asked(make_service: MakeService) -> None:
    service = await make_service()
    resp = await service.client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert resp.content_type == "application/openmetrics-text"
    assert (await resp.text()).rstrip().endswith("# EOF")
