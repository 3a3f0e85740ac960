"""The receiver and the storage together: rejections with storage's reasons, WAL failures,
limits, cluster identity, and data surviving a restart on the same data directory."""

from __future__ import annotations

import os
import resource
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aggregator.config import Config, LimitsConfig, StorageConfig
from remote_write.batch import SeriesMetadata
from storage.wal.reader import list_segments, segment_path
from tests.aggregator.conftest import (
    MakeService,
    Service,
    clusters,
    encode,
    stored_samples,
)

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
    service = await make_service()
    t = now_ms()
    status, text = await service.write(encode([(UP, [t - 15_000, t], [1.0, 2.0])]))
    assert (status, text) == (204, "")
    assert await series(service) == [dict(UP)]
    status, body = await service.get_json("/api/v1/label/job/values")
    assert body["data"] == ["api"]


async def test_storage_rejections_reach_the_sender(make_service: MakeService) -> None:
    # Without a late window, samples behind the out-of-order window are refused.
    config = Config(
        limits=LimitsConfig(max_future_ms=60_000, out_of_order_window_ms=60_000),
        storage=StorageConfig(late_window_ms=0),
    )
    service = await make_service(config)
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
    service = await make_service(config)
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
    service = await make_service(Config(clusters=clusters("edge", "dc")))
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
    service = await make_service()
    t = now_ms()
    meta = [SeriesMetadata("up", "gauge", "Target up.", "")]
    assert (await service.write(encode([(UP, [t], [1.0])], metadata=meta)))[0] == 204
    got = await scrape(service)
    assert got[("aggregator_wal_fsync_duration_seconds_count", ())] >= 1
    await service.client.close()  # runs the app's cleanup: storage closes

    again = await make_service()
    assert await series(again) == [dict(UP)]
    _, body = await again.get_json("/api/v1/metadata")
    assert body["data"] == {"up": [{"type": "gauge", "help": "Target up.", "unit": ""}]}


# -- WAL failures, produced for real ---------------------------------------------

ONE_SEGMENT_PER_REQUEST = Config(storage=StorageConfig(wal_segment_bytes=1))
"""Each write rotates to a new segment, so a test can decide what the next segment is."""


def next_segment(data_dir: Path) -> Path:
    wal = data_dir / "wal"
    return segment_path(wal, list_segments(wal)[-1] + 1)


def padding(t: int) -> list[Any]:
    """About 80 KB of incompressible series, to make the WAL segment that large."""
    return [
        ((("__name__", "pad"), ("i", str(i)), ("v", os.urandom(1000).hex())), [t], [0.0])
        for i in range(40)
    ]


@contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """RLIMIT_FSIZE for this process: writes past `limit` bytes of any file fail with EFBIG.

    A disk that refuses the next WAL write and accepts writes again afterwards,
    for real. It applies to every file of the process, so it is held only for
    one request, and the WAL segment is padded far past anything else a test
    writes meanwhile (pytest keeps log records in memory).
    """
    if signal.getsignal(signal.SIGXFSZ) != signal.SIG_IGN:
        pytest.skip("SIGXFSZ is not ignored here: exceeding RLIMIT_FSIZE would kill the run")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def current_segment(data_dir: Path) -> Path:
    wal = data_dir / "wal"
    return segment_path(wal, list_segments(wal)[-1])


async def test_wal_out_of_space_is_503_and_reads_go_on(
    make_service: MakeService, data_dir: Path
) -> None:
    if not os.access("/dev/full", os.W_OK):
        pytest.skip("no writable /dev/full to stand for a full disk")
    service = await make_service(ONE_SEGMENT_PER_REQUEST)
    t = now_ms()
    assert (await service.write(encode([(UP, [t], [1.0])])))[0] == 204
    full = next_segment(data_dir)
    full.symlink_to("/dev/full")  # every write to the next segment: ENOSPC

    resp = await service.client.post("/api/v1/write", data=encode([(UP, [t + 1000], [2.0])]))
    text = await resp.text()
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "10"
    assert text.splitlines()[0] == (
        f"storage unavailable: WAL write failed: {full}: [Errno 28] No space left on device"
    )

    # What was acknowledged is served; the service answers reads and health checks.
    assert await series(service) == [dict(UP)]
    assert (t, 1.0) in await stored_samples(service.storage, UP)
    assert (await service.client.get("/-/healthy")).status == 200
    # /dev/full cannot be truncated, so the partial frame cannot be cut off: the WAL
    # refuses every further write rather than append after garbage.
    other = (("__name__", "other"),)
    status, text = await service.write(encode([(other, [t], [1.0])]))
    assert status == 503
    assert "refuses writes: cannot truncate a partial write" in text
    got = await scrape(service)
    assert (
        got[("aggregator_write_requests_failed_total", (("reason", "storage_unavailable"),))] == 2
    )


async def test_wal_write_failure_is_503_then_new_writes_are_stored(
    make_service: MakeService, data_dir: Path
) -> None:
    service = await make_service()
    t = now_ms()
    assert (await service.write(encode([(UP, [t], [1.0]), *padding(t)])))[0] == 204
    segment = current_segment(data_dir)
    with file_size_limit(segment.stat().st_size):
        status, text = await service.write(encode([(UP, [t + 1000], [2.0])]))
    assert status == 503
    assert text.splitlines()[0] == (
        f"storage unavailable: WAL write failed: {segment}: [Errno 27] File too large"
    )
    # The disk takes writes again: new data is acknowledged and durable.
    status, _ = await service.write(encode([(UP, [t + 2000], [3.0])]))
    assert status == 204
    await service.client.close()

    again = await make_service()
    assert await stored_samples(again.storage, UP) == [(t, 1.0), (t + 2000, 3.0)], (
        "after a restart: exactly the acknowledged samples"
    )


async def test_retry_of_a_write_the_wal_refused_is_stored(
    make_service: MakeService, data_dir: Path
) -> None:
    service = await make_service()
    t = now_ms()
    assert (await service.write(encode([(UP, [t], [1.0]), *padding(t)])))[0] == 204
    retried = encode([(UP, [t + 1000], [2.0])])
    with file_size_limit(current_segment(data_dir).stat().st_size):
        assert (await service.write(retried))[0] == 503
    status, text = await service.write(retried)  # what Prometheus does after a 503
    assert status == 204, text
    await service.client.close()

    again = await make_service()
    assert await stored_samples(again.storage, UP) == [(t, 1.0), (t + 1000, 2.0)]


async def test_wal_recovers_after_a_segment_it_could_not_open(
    make_service: MakeService, data_dir: Path
) -> None:
    service = await make_service(ONE_SEGMENT_PER_REQUEST)
    t = now_ms()
    assert (await service.write(encode([(UP, [t], [1.0])])))[0] == 204
    blocked = next_segment(data_dir)
    blocked.mkdir()  # the next segment cannot be opened (EISDIR; root ignores permissions)
    status, text = await service.write(encode([(UP, [t + 1000], [2.0])]))
    assert status == 503
    assert "Is a directory" in text
    blocked.rmdir()
    status, text = await service.write(encode([(UP, [t + 2000], [3.0])]))
    assert status == 204, text
    await service.client.close()

    again = await make_service(ONE_SEGMENT_PER_REQUEST)
    assert await stored_samples(again.storage, UP) == [(t, 1.0), (t + 2000, 3.0)], (
        "after a restart: exactly the acknowledged samples"
    )
