"""`POST /api/v1/write`: every bad input gets its status and message, and nothing else is lost."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
import snappy

from aggregator.app import BACKEND
from aggregator.config import Config, LimitsConfig
from remote_write.batch import STALE_NAN, SeriesMetadata
from remote_write.prompb import remote_pb2
from tests.aggregator.conftest import HoldWAL, MakeService, Service, encode, stored_samples

UP = (("__name__", "up"), ("job", "api"), ("instance", "a:9100"))
T0 = 1_700_000_000_000


def now_ms() -> int:
    return int(time.time() * 1000)


async def series_of(service: Service, match: str = '{__name__=~".+"}') -> list[dict[str, str]]:
    status, body = await service.get_json("/api/v1/series", params={"match[]": match})
    assert status == 200, body
    return body["data"]


async def samples_of(service: Service, labels: tuple[tuple[str, str], ...]) -> list[Any]:
    return await stored_samples(service.storage, labels)


async def test_good_write_is_204_and_visible(make_service: MakeService) -> None:
    service = await make_service()
    status, text = await service.write(encode([(UP, [T0, T0 + 15_000], [1.0, 0.0])]))
    assert (status, text) == (204, "")
    assert await series_of(service) == [dict(sorted(UP))]
    assert await samples_of(service, UP) == [(T0, 1.0), (T0 + 15_000, 0.0)]


async def test_stale_marker_kept_bit_exact(make_service: MakeService) -> None:
    service = await make_service()
    status, _ = await service.write(encode([(UP, [T0], [STALE_NAN])]))
    assert status == 204
    [(ts, value)] = await samples_of(service, UP)
    assert ts == T0
    assert math.isnan(value)
    import struct

    assert struct.pack("<d", value) == struct.pack("<d", STALE_NAN)


async def test_missing_headers_are_accepted_like_prometheus(make_service: MakeService) -> None:
    service = await make_service()
    resp = await service.client.post(
        "/api/v1/write", data=encode([(UP, [T0], [1.0])]), skip_auto_headers=["Content-Type"]
    )
    assert resp.status == 204
    resp = await service.client.post(
        "/api/v1/write",
        data=encode([(UP, [T0 + 1], [1.0])]),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert resp.status == 204
    assert len(await samples_of(service, UP)) == 2


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Content-Type": "application/json"}, "unsupported Content-Type 'application/json'"),
        (
            {"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v3.Request"},
            "unsupported remote-write message 'io.prometheus.write.v3.Request'",
        ),
        ({"Content-Encoding": "gzip"}, "gzip encoding (compression) is not accepted"),
    ],
)
async def test_wrong_format_is_415(
    make_service: MakeService, headers: dict[str, str], message: str
) -> None:
    service = await make_service()
    status, text = await service.write(encode([(UP, [T0], [1.0])]), headers=headers)
    assert status == 415
    assert message in text
    assert await series_of(service) == []


async def test_rw1_proto_parameter_is_accepted(make_service: MakeService) -> None:
    service = await make_service()
    status, _ = await service.write(
        encode([(UP, [T0], [1.0])]),
        headers={"Content-Type": "application/x-protobuf; proto=prometheus.WriteRequest"},
    )
    assert status == 204


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "snappy: empty body"),
        (b"\xff\xff\xff\xff\xff\xff", "snappy: corrupt input"),
        (b"garbage that is not snappy", "snappy: corrupt input"),
        (snappy.compress(b"\x0a\x05\x0a\x03"), "protobuf: cannot parse WriteRequest"),
        # A Label message with a field of wire type 7, in a series framed correctly.
        (
            snappy.compress(b"\x0a\x12\x0a\x03\x0f\x01\x02\x12\x0b\x09" + bytes(8) + b"\x10\x01"),
            "protobuf: unsupported wire type 7 in label",
        ),
    ],
)
async def test_undecodable_body_is_400_with_the_reason(
    make_service: MakeService, body: bytes, message: str
) -> None:
    service = await make_service()
    status, text = await service.write(body)
    assert status == 400
    assert text.startswith(message), text


async def test_body_over_the_limit_is_413_before_reading(make_service: MakeService) -> None:
    config = Config(limits=LimitsConfig(max_request_bytes=1000))
    service = await make_service(config)
    body = encode([((("__name__", "m"), ("i", str(i))), [T0], [1.0]) for i in range(200)])
    assert len(body) > 1000
    status, text = await service.write(body)
    assert status == 413
    assert "exceeds the limit of 1000 bytes" in text
    assert f"Content-Length: {len(body)}" in text


async def test_chunked_body_over_the_limit_is_413(make_service: MakeService) -> None:
    config = Config(limits=LimitsConfig(max_request_bytes=1000))
    service = await make_service(config)
    body = encode([((("__name__", "m"), ("i", str(i))), [T0], [1.0]) for i in range(200)])

    async def chunks() -> Any:
        for i in range(0, len(body), 100):
            yield body[i : i + 100]

    status, text = await service.write(chunks())
    assert status == 413
    assert "exceeds the limit of 1000 bytes" in text


async def test_decoded_size_over_the_limit_is_413(make_service: MakeService) -> None:
    config = Config(limits=LimitsConfig(max_decoded_bytes=500))
    service = await make_service(config)
    body = encode([((("__name__", "m"), ("i", "x" * 100)), list(range(50)), [1.0] * 50)])
    status, text = await service.write(body)
    assert status == 413
    assert "exceeds the limit of 500 bytes" in text


async def test_partly_bad_request_writes_good_series_and_lists_bad(
    make_service: MakeService,
) -> None:
    service = await make_service()
    good = (("__name__", "ok"), ("job", "a"))
    body = encode(
        [
            (good, [T0, T0 + 1], [1.0, 2.0]),
            ((("__name__", "bad"), ("0lead", "x")), [T0], [1.0]),
            ((("job", "nometric"),), [T0, T0 + 1, T0 + 2], [1.0, 2.0, 3.0]),
            ((("__name__", "dup"), ("a", "1"), ("a", "2")), [T0], [1.0]),
        ]
    )
    status, text = await service.write(body)
    assert status == 400
    lines = text.splitlines()
    assert lines[0].startswith("5 samples of 3 series rejected, 2 samples written; ")
    assert "invalid label name '0lead'" in lines[0], "the first line names the first problem"
    assert any(line.startswith("- invalid_label_name: ") for line in lines)
    assert any(
        line.startswith("- missing_metric_name: ") and "(3 samples)" in line for line in lines
    )
    assert any("duplicate label name 'a'" in line for line in lines)
    assert await series_of(service) == [dict(good)]
    assert await samples_of(service, good) == [(T0, 1.0), (T0 + 1, 2.0)]


async def test_label_limits_from_config(make_service: MakeService) -> None:
    from remote_write.validate import SeriesLimits

    config = Config(
        limits=LimitsConfig(series=SeriesLimits(max_label_names=3, max_label_value_length=5))
    )
    service = await make_service(config)
    body = encode(
        [
            ((("__name__", "m"), ("a", "1"), ("b", "2"), ("c", "3")), [T0], [1.0]),
            ((("__name__", "m"), ("a", "toolong")), [T0], [1.0]),
        ]
    )
    status, text = await service.write(body)
    assert status == 400
    assert "series has 4 labels, more than the limit of 3" in text
    assert "has length 7, more than the limit of 5" in text


async def test_rejection_list_is_capped(make_service: MakeService) -> None:
    service = await make_service()
    body = encode([((("__name__", "m"), ("", str(i))), [T0], [1.0]) for i in range(25)])
    status, text = await service.write(body)
    assert status == 400
    lines = text.splitlines()
    assert sum(line.startswith("- ") for line in lines) == 20
    assert lines[-1] == "... and 5 more rejected series"


async def test_series_limit_is_429_with_retry_after(make_service: MakeService) -> None:
    service = await make_service(Config(limits=LimitsConfig(max_series_per_cluster=1)))
    first = (("__name__", "a"), ("cluster", "c1"))
    second = (("__name__", "b"), ("cluster", "c1"))
    resp = await service.client.post(
        "/api/v1/write",
        data=encode([(first, [T0], [1.0]), (second, [T0], [1.0])]),
    )
    text = await resp.text()
    assert resp.status == 429
    assert resp.headers["Retry-After"].isdigit()
    assert "refused for now (retry later)" in text.splitlines()[0]
    assert "series limit reached: cluster 'c1' has the maximum of 1 active series" in text
    assert await series_of(service) == [dict(first)], "the series within the limit is written"


async def test_histograms_and_exemplars_are_written(
    make_service: MakeService,
) -> None:
    service = await make_service()
    request = remote_pb2.WriteRequest()
    ts = request.timeseries.add()
    for name, value in UP:
        ts.labels.add(name=name, value=value)
    ts.samples.add(value=5.0, timestamp=T0)
    ts.exemplars.add(value=1.0, timestamp=T0).labels.add(name="trace_id", value="abc")
    ts.histograms.add(timestamp=T0, count_int=3, zero_count_int=3)
    ts.histograms.add(timestamp=T0 + 1, count_int=4, zero_count_int=4)
    status, text = await service.write(snappy.compress(request.SerializeToString()))
    assert (status, text) == (204, "")
    assert await samples_of(service, UP) == [(T0, 5.0)]
    status, body = await service.get_json("/api/v1/query_exemplars", params={"query": "up"})
    assert status == 200
    assert body["data"] == [
        {
            "seriesLabels": dict(UP),
            "exemplars": [
                {"labels": {"trace_id": "abc"}, "value": "1", "timestamp": T0 / 1000},
            ],
        }
    ]


async def test_metadata_is_stored_and_served(make_service: MakeService) -> None:
    service = await make_service()
    meta = [
        SeriesMetadata("up", "gauge", "1 if the target is up", ""),
        SeriesMetadata("http_requests", "counter", "Requests.", "requests"),
    ]
    status, _ = await service.write(encode([(UP, [T0], [1.0])], metadata=meta))
    assert status == 204
    status, body = await service.get_json("/api/v1/metadata")
    assert status == 200
    assert body["data"] == {
        "http_requests": [{"type": "counter", "help": "Requests.", "unit": "requests"}],
        "up": [{"type": "gauge", "help": "1 if the target is up", "unit": ""}],
    }
    _, one = await service.get_json("/api/v1/metadata", params={"metric": "up"})
    assert list(one["data"]) == ["up"]
    _, limited = await service.get_json("/api/v1/metadata", params={"limit": "1"})
    assert len(limited["data"]) == 1
    _, none = await service.get_json("/api/v1/metadata", params={"limit": "0"})
    assert none["data"] == {}
    status, err = await service.get_json("/api/v1/metadata", params={"limit": "x"})
    assert (status, err["error"]) == (400, "limit must be a number")


async def test_not_ready_is_503(make_service: MakeService, held_wal: HoldWAL) -> None:
    wal = await held_wal([(UP, [now_ms()], [1.0])])
    service = await make_service(wait=False)
    resp = await service.client.post("/api/v1/write", data=encode([(UP, [now_ms()], [2.0])]))
    assert resp.status == 503
    assert "replaying the write-ahead log" in await resp.text()
    assert "Retry-After" in resp.headers
    await wal.release()
    await service.app[BACKEND].wait_open()
    assert len(await samples_of(service, UP)) == 1, "the refused write stored nothing"


async def test_unexpected_storage_error_is_500_and_the_service_recovers(
    make_service: MakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception that is not StorageUnavailable is a bug; the real storage turns every
    I/O failure into StorageUnavailable (503, see test_write_storage.py), so this one
    is injected: the storage's appender is replaced by one that raises."""
    service = await make_service()

    class Broken:
        def append(self, batch: Any) -> Any:
            raise RuntimeError("head index out of step")

    monkeypatch.setattr(service.storage, "appender", lambda *, cluster=None: Broken())
    status, text = await service.write(encode([(UP, [T0], [1.0])]))
    assert status == 500
    assert text.strip() == "internal error: RuntimeError: head index out of step"
    monkeypatch.undo()
    status, _ = await service.write(encode([(UP, [T0], [1.0])]))
    assert status == 204
    assert await samples_of(service, UP) == [(T0, 1.0)]


async def test_get_is_405(make_service: MakeService) -> None:
    service = await make_service()
    resp = await service.client.get("/api/v1/write")
    assert resp.status == 405


async def test_service_keeps_serving_after_bad_inputs(make_service: MakeService) -> None:
    config = Config(limits=LimitsConfig(max_request_bytes=4096))
    service = await make_service(config)
    assert (await service.write(encode([(UP, [T0], [1.0])])))[0] == 204
    bad_inputs: list[tuple[bytes, dict[str, str]]] = [
        (b"junk", {}),
        (snappy.compress(b"\xff\xff"), {}),
        (b"x" * 5000, {}),
        (encode([(UP, [T0 + 1], [2.0])]), {"Content-Encoding": "zstd"}),
        (encode([((("a", "b"),), [T0], [1.0])]), {}),
    ]
    for body, headers in bad_inputs:
        status, _ = await service.write(body, headers=headers)
        assert 400 <= status < 500
    assert (await service.write(encode([(UP, [T0 + 15_000], [3.0])])))[0] == 204
    assert await samples_of(service, UP) == [(T0, 1.0), (T0 + 15_000, 3.0)]
    resp = await service.client.get("/-/healthy")
    assert resp.status == 200
