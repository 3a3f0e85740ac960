"""`POST /api/v1/write` with remote write 2.0 bodies: stored, or refused with reasons."""

from __future__ import annotations

import snappy

from aggregator.api.write import SYMBOL_IDS
from aggregator.config import Config
from remote_write.codec_v2 import decode_write_request_v2
from storage.labels import Matcher
from tests.aggregator.conftest import MakeService, Service, clusters, encode, stored_samples
from tests.support.rw2 import RW2_HEADERS, SeriesV2, build_v2, request_v2

T0 = 1_700_000_000_000
UP = (("__name__", "up"), ("instance", "a:9100"), ("job", "node"))
REQS = (("__name__", "http_requests_total"), ("code", "200"), ("job", "api"))
WRITTEN = "X-Prometheus-Remote-Write-{}-Written"


def written(headers) -> tuple[int, int, int]:
    return tuple(int(headers[WRITTEN.format(k)]) for k in ("Samples", "Histograms", "Exemplars"))


async def post(service: Service, body: bytes, **headers: str):
    resp = await service.client.post("/api/v1/write", data=body, headers={**RW2_HEADERS, **headers})
    return resp, await resp.text()


async def test_floats_exemplars_and_metadata_are_stored_and_counted(
    make_service: MakeService,
) -> None:
    service = await make_service()
    body = request_v2(
        [
            SeriesV2(UP, [(T0, 1.0), (T0 + 15_000, 1.0)], metric_type="gauge", help="Up."),
            SeriesV2(
                REQS,
                [(T0, 10.0)],
                exemplars=[((("trace_id", "4bf92f"),), 0.125, T0 - 500)],
                metric_type="counter",
                help="Requests.",
                created_ms=T0 - 3_600_000,
            ),
        ]
    )
    resp, text = await post(service, body)
    assert (resp.status, text) == (204, "")
    assert written(resp.headers) == (3, 0, 1)
    assert await stored_samples(service.storage, UP) == [(T0, 1.0), (T0 + 15_000, 1.0)]
    assert await stored_samples(service.storage, REQS) == [(T0, 10.0)]
    status, meta = await service.get_json("/api/v1/metadata")
    assert status == 200
    assert meta["data"]["http_requests_total"] == [
        {"type": "counter", "help": "Requests.", "unit": ""}
    ]
    assert meta["data"]["up"] == [{"type": "gauge", "help": "Up.", "unit": ""}]
    status, ex = await service.get_json(
        "/api/v1/query_exemplars", params={"query": "http_requests_total"}
    )
    assert ex["data"] == [
        {
            "seriesLabels": dict(REQS),
            "exemplars": [
                {"labels": {"trace_id": "4bf92f"}, "value": "0.125", "timestamp": 1699999999.5}
            ],
        }
    ]


async def test_native_histograms_are_stored_and_counted(make_service: MakeService) -> None:
    service = await make_service()
    body = request_v2(
        [
            SeriesV2(
                (("__name__", "rpc_seconds"), ("job", "api")),
                histograms=[
                    {"count_int": 3, "zero_count_int": 3, "schema": 0, "timestamp": T0},
                    {"count_int": 5, "zero_count_int": 5, "schema": 0, "timestamp": T0 + 1},
                ],
            )
        ]
    )
    resp, text = await post(service, body)
    assert resp.status == 204, text
    assert written(resp.headers) == (0, 2, 0)
    # Read back from storage, then through PromQL.
    async with service.storage.querier(0, T0 + 60_000) as querier:
        found = await querier.select([Matcher.eq("__name__", "rpc_seconds")], 0, T0 + 60_000)
    hs = found.histograms
    assert hs is not None
    assert str(hs.labels[0]) == 'rpc_seconds{job="api"}'
    assert hs.samples.timestamps.tolist() == [T0, T0 + 1]
    assert hs.samples.count.tolist() == [3.0, 5.0]
    status, result = await service.get_json(
        "/api/v1/query",
        params={"query": "histogram_count(rpc_seconds)", "time": str((T0 + 1) / 1000)},
    )
    assert status == 200
    assert result["data"]["result"][0]["value"][1] == "5"


async def test_a_bad_symbol_reference_is_a_partial_write_naming_the_series(
    make_service: MakeService,
) -> None:
    service = await make_service()
    request = build_v2([SeriesV2(UP, [(T0, 1.0)]), SeriesV2(REQS, [(T0, 2.0)])])
    request.timeseries[1].labels_refs[1] = 4096
    resp, text = await post(service, snappy.compress(request.SerializeToString()))
    assert resp.status == 400
    first = text.splitlines()[0]
    assert first.startswith("1 samples of 1 series rejected, 1 samples written;")
    assert "label reference 4096 is past the symbols table" in first
    assert "- bad_symbol_reference:" in text
    assert written(resp.headers) == (1, 0, 0)
    assert await stored_samples(service.storage, UP) == [(T0, 1.0)]


async def test_missing_symbols_refuse_the_request(make_service: MakeService) -> None:
    service = await make_service()
    request = build_v2([SeriesV2(UP, [(T0, 1.0)])])
    del request.symbols[:]
    resp, text = await post(service, snappy.compress(request.SerializeToString()))
    assert resp.status == 400
    assert "has no symbols table" in text
    assert written(resp.headers) == (0, 0, 0)
    assert await stored_samples(service.storage, UP) == []


async def test_invalid_labels_are_refused_like_1_0(make_service: MakeService) -> None:
    service = await make_service()
    body = request_v2(
        [SeriesV2((("__name__", "ok"),), [(T0, 1.0)]), SeriesV2((("job", "x"),), [(T0, 1.0)])]
    )
    resp, text = await post(service, body)
    assert resp.status == 400
    assert "1 samples of 1 series rejected, 1 samples written" in text
    assert "metric name" in text  # the 1.0 validation's reason, for the series without one
    assert written(resp.headers)[0] == 1


async def test_an_unknown_proto_is_415_and_a_1_0_body_as_2_0_is_400(
    make_service: MakeService,
) -> None:
    service = await make_service()
    resp, text = await post(
        service,
        request_v2([SeriesV2(UP, [(T0, 1.0)])]),
        **{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v3.Request"},
    )
    assert resp.status == 415
    assert "unsupported remote-write message 'io.prometheus.write.v3.Request'" in text
    resp, text = await post(service, encode([(UP, [T0], [1.0])]))
    assert resp.status == 400
    assert "a 1.0 WriteRequest sent with the 2.0 Content-Type" in text
    assert await stored_samples(service.storage, UP) == []


async def test_the_token_sets_the_cluster_and_a_bad_one_is_401(make_service: MakeService) -> None:
    service = await make_service(Config(clusters=clusters("edge-1")))
    body = request_v2([SeriesV2((*UP, ("cluster", "spoofed")), [(T0, 1.0)])])
    resp, _ = await post(service, body, Authorization="Bearer nope")
    assert resp.status == 401
    resp, text = await post(service, body, Authorization="Bearer token-edge-1")
    assert resp.status == 204, text
    want = (*UP, ("cluster", "edge-1"))
    assert await stored_samples(service.storage, want) == [(T0, 1.0)]


async def test_2_0_writes_and_exemplars_survive_a_restart(make_service: MakeService) -> None:
    service = await make_service()
    body = request_v2([SeriesV2(REQS, [(T0, 4.0)], exemplars=[((("trace_id", "t1"),), 4.0, T0)])])
    resp, text = await post(service, body)
    assert resp.status == 204, text
    later = request_v2([SeriesV2(UP, [(T0, 1.0)])])  # other strings, numbered from 0 again
    resp, text = await post(service, later)
    assert resp.status == 204, text
    await service.client.close()  # storage closes; the next service replays the WAL

    again = await make_service()
    assert await stored_samples(again.storage, REQS) == [(T0, 4.0)]
    # Replay used the receiver's own symbol ids: the next request's keys are known
    # (with ids of its own, replay would have numbered UP's strings after REQS's).
    keys = decode_write_request_v2(later, symbol_ids=again.app[SYMBOL_IDS]).batch.series_keys
    assert keys is not None
    assert keys[0] in again.storage._head.key_cache(None)
    status, ex = await again.get_json(
        "/api/v1/query_exemplars", params={"query": "http_requests_total"}
    )
    assert status == 200
    assert [e["labels"] for s in ex["data"] for e in s["exemplars"]] == [{"trace_id": "t1"}]
    # The same request again is a retry: acknowledged, nothing stored twice.
    resp, _ = await post(again, body)
    assert resp.status == 204
    assert await stored_samples(again.storage, REQS) == [(T0, 4.0)]
