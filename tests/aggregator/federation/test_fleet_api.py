"""The fleet as users see it through the API: freshness warnings of push clusters, HA
dedup of pushed replicas, the clusters registry, and our own remote-read server."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from aggregator.config import Config, QueryConfig
from remote_write.read import (
    SAMPLES,
    STREAMED_XOR_CHUNKS,
    ReadQuery,
    decode_read_response,
    encode_read_request,
    read_frames,
)
from tests.aggregator.conftest import clusters, encode
from tests.support.xor_reference import decode_xor_chunk

STEP = 15_000


def _now_ms() -> int:
    return int(time.time() * 1000)


async def test_push_cluster_stale_after_stale_after_and_fresh_again(make_service):
    config = Config(clusters=clusters("edge"), query=QueryConfig(stale_after_ms=1_000))
    svc = await make_service(config)
    body = encode([([("__name__", "up"), ("job", "a")], [_now_ms()], [1.0])])
    status, _ = await svc.write(body, headers={"Authorization": "Bearer token-edge"})
    assert status == 204
    status, data = await svc.get_json("/api/v1/query", params={"query": "up"})
    assert status == 200
    assert "warnings" not in data
    await asyncio.sleep(1.3)
    status, data = await svc.get_json("/api/v1/query", params={"query": "up"})
    assert status == 200
    (warning,) = data["warnings"]
    assert 'cluster "edge" is stale' in warning
    assert "query.stale_after is 1s" in warning
    # a query that excludes the cluster is not told about it
    _, data = await svc.get_json("/api/v1/query", params={"query": 'up{cluster="other"}'})
    assert "warnings" not in data
    _, listed = await svc.get_json("/api/v1/clusters")
    (entry,) = listed["data"]
    assert entry["name"] == "edge"
    assert entry["mode"] == "push"
    assert entry["healthy"] is False
    assert entry["active_series"] == 1
    body = encode([([("__name__", "up"), ("job", "a")], [_now_ms()], [1.0])])
    await svc.write(body, headers={"Authorization": "Bearer token-edge"})
    _, data = await svc.get_json("/api/v1/query", params={"query": "up"})
    assert "warnings" not in data
    _, listed = await svc.get_json("/api/v1/clusters")
    assert listed["data"][0]["healthy"] is True
    assert listed["data"][0]["samples_per_second"] > 0


async def test_pushed_ha_pair_reads_as_one_series_with_the_gap_filled(make_service):
    config = Config(clusters=clusters("ha"), query=QueryConfig(replica_labels=("replica",)))
    svc = await make_service(config)
    t0 = _now_ms() - 100 * STEP
    ts = [t0 + i * STEP for i in range(100)]
    a_ts = [t for i, t in enumerate(ts) if not 40 <= i < 70]  # replica a was down
    b_ts = [t + 2_000 for t in ts]  # replica b scrapes 2 s later
    lbl = [("__name__", "temp"), ("instance", "x")]
    body = encode(
        [
            ([*lbl, ("replica", "a")], a_ts, [1.0] * len(a_ts)),
            ([*lbl, ("replica", "b")], b_ts, [2.0] * len(b_ts)),
        ]
    )
    status, _ = await svc.write(body, headers={"Authorization": "Bearer token-ha"})
    assert status == 204
    params = {"query": "temp", "start": t0 / 1000, "end": ts[-1] / 1000, "step": "15s"}
    _, data = await svc.get_json("/api/v1/query_range", params=params)
    (series,) = data["data"]["result"]
    assert series["metric"] == {"__name__": "temp", "cluster": "ha", "instance": "x"}
    values = [float(v) for _, v in series["values"]]
    assert len(values) == 100  # no gap
    assert set(values[:40]) == {1.0}
    assert set(values[42:70]) == {2.0}
    _, raw = await svc.get_json("/api/v1/query_range", params={**params, "dedup": "false"})
    replicas = {s["metric"]["replica"]: len(s["values"]) for s in raw["data"]["result"]}
    assert replicas["b"] == 99  # its first sample comes 2 s after the first step
    assert replicas["a"] < 95  # its gap shows past the 5 m lookback
    _, names = await svc.get_json("/api/v1/labels")
    assert "replica" not in names["data"]


async def test_remote_read_server_answers_samples_and_xor_chunks(make_service):
    svc = await make_service(Config(clusters=clusters("c1")))
    t0 = _now_ms() - 300 * STEP
    ts = [t0 + i * STEP + 3 for i in range(300)]
    rng = np.random.default_rng(7)
    series = [
        ([("__name__", "m"), ("i", str(k))], ts, rng.normal(size=300).cumsum().tolist())
        for k in range(3)
    ]
    await svc.write(encode(series), headers={"Authorization": "Bearer token-c1"})
    query = ReadQuery(t0, ts[-1], (("=", "__name__", "m"), ("!=", "i", "2")))
    for accepted in ([SAMPLES], [STREAMED_XOR_CHUNKS, SAMPLES]):
        resp = await svc.client.post(
            "/api/v1/read",
            data=encode_read_request([query], accepted),
            headers={"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"},
        )
        assert resp.status == 200
        body = await resp.read()
        got: dict[str, list[tuple[int, float]]] = {}
        if accepted[0] == SAMPLES:
            (result,) = decode_read_response(body)
            b = result.batch
            for i in range(len(b.series)):
                pairs = dict(b.series[i])
                sel = b.series_idx == i
                got[pairs["i"]] = list(
                    zip(b.timestamps[sel].tolist(), b.values[sel].tolist(), strict=False)
                )
                assert pairs["cluster"] == "c1"
        else:
            assert resp.content_type == "application/x-streamed-protobuf"
            for msg in read_frames(body):
                for cs in msg.chunked_series:
                    pairs = {lb.name: lb.value for lb in cs.labels}
                    got[pairs["i"]] = [p for c in cs.chunks for p in decode_xor_chunk(c.data)]
        assert sorted(got) == ["0", "1"]
        for k in ("0", "1"):
            assert got[k] == list(zip(ts, series[int(k)][2], strict=True))


async def test_bad_fleet_parameters_are_400(make_service):
    svc = await make_service(Config())
    status, data = await svc.get_json(
        "/api/v1/query", params={"query": "up", "partial_response": "maybe"}
    )
    assert status == 400
    assert data["error"] == (
        "invalid parameter \"partial_response\": expected true or false, got 'maybe'"
    )
    status, _ = await svc.get_json("/api/v1/clusters")
    assert status == 200


async def test_workspace_label_from_kubesphere_mapping_at_query_time(make_service):
    config = Config(clusters=clusters("c1", "c2"), query=QueryConfig(workspace_label="workspace"))
    svc = await make_service(config)
    now = _now_ms()
    ts = [now - 60_000, now - 30_000]
    mapping = "kube_namespace_labels"
    for cluster, ns_ws, cpu in (
        ("c1", {"shop": "ws-a", "ops": "ws-b"}, {"shop": 1.0, "ops": 2.0, "free": 8.0}),
        ("c2", {"shop": "ws-b"}, {"shop": 4.0}),
    ):
        series = [
            (
                [("__name__", mapping), ("namespace", ns), ("label_kubesphere_io_workspace", ws)],
                ts,
                [1.0, 1.0],
            )
            for ns, ws in ns_ws.items()
        ]
        series += [([("__name__", "cpu"), ("namespace", ns)], ts, [v, v]) for ns, v in cpu.items()]
        status, _ = await svc.write(
            encode(series), headers={"Authorization": f"Bearer token-{cluster}"}
        )
        assert status == 204
    _, data = await svc.get_json("/api/v1/query", params={"query": "sum by (workspace) (cpu)"})
    got = {r["metric"].get("workspace", ""): float(r["value"][1]) for r in data["data"]["result"]}
    # c1/shop and c2/shop have the same namespace name but different workspaces
    assert got == {"ws-a": 1.0, "ws-b": 6.0, "": 8.0}
    _, data = await svc.get_json("/api/v1/query", params={"query": 'cpu{workspace="ws-b"}'})
    found = {(r["metric"]["cluster"], r["metric"]["namespace"]) for r in data["data"]["result"]}
    assert found == {("c1", "ops"), ("c2", "shop")}
    _, values = await svc.get_json("/api/v1/label/workspace/values")
    assert values["data"] == ["ws-a", "ws-b"]


async def test_remote_read_for_a_query_tier_reading_our_blocks_itself(make_service):
    """`X-Aggregator-Blocks-Read-Through: T`: our blocks answer only after T, our head all
    of its samples (a late one into the flushed range too); a bad value is a 400."""
    svc = await make_service(Config(clusters=clusters("c1")))
    auth = {"Authorization": "Bearer token-c1"}
    t0 = _now_ms() - 600 * STEP
    flushed = [t0 + i * STEP for i in range(100)]
    await svc.write(encode([([("__name__", "m")], flushed, [1.0] * 100)]), headers=auth)
    resp = await svc.client.post("/api/v1/admin/flush")
    assert resp.status == 200
    newer = [t0 + i * STEP for i in range(100, 120)]
    await svc.write(encode([([("__name__", "m")], newer, [2.0] * 20)]), headers=auth)
    late = [t0 + 50 * STEP + 7]
    await svc.write(encode([([("__name__", "m"), ("late", "1")], late, [3.0])]), headers=auth)

    async def read(header: str | None) -> tuple[int, dict[str, list[int]]]:
        headers = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}
        if header is not None:
            headers["X-Aggregator-Blocks-Read-Through"] = header
        query = ReadQuery(t0, newer[-1], (("=", "__name__", "m"),))
        resp = await svc.client.post(
            "/api/v1/read", data=encode_read_request([query]), headers=headers
        )
        if resp.status != 200:
            return resp.status, {}
        (result,) = decode_read_response(await resp.read())
        b = result.batch
        got = {}
        for i in range(len(b.series)):
            got[dict(b.series[i]).get("late", "")] = b.timestamps[b.series_idx == i].tolist()
        return 200, got

    assert await read(None) == (200, {"": flushed + newer, "1": late})
    assert await read(str(flushed[-1])) == (200, {"": newer, "1": late})
    assert await read(str(flushed[49])) == (200, {"": flushed[50:] + newer, "1": late})
    status, _ = await read("yesterday")
    assert status == 400
