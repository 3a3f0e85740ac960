"""Scale-out in miniature, as real processes: two receiver shards, each owning its push
clusters, and a query tier that pulls both by remote read with `keep_cluster_label`.

Through the query tier every series keeps the `cluster` its shard gave it (not the
shard's name); `cluster` matchers narrow the shards' answers or are applied after
relabelling; a series that comes without a `cluster` gets the pull entry's name; a
stopped shard is named in the answer's warnings, and so are the clusters it serves,
while the other shard still answers; a member gone quiet on a healthy shard is named
as stale through the query tier.

With the shards writing blocks to one S3 bucket (moto on loopback) and the query tier
reading their prefixes (`read_prefixes`, `object_store_prefix`), history answers as a
single instance given the same samples does, with both shards up (late samples into an
uploaded range included at once), with one stopped (its history from the bucket, the
shard named in warnings) and after it is back (nothing counted twice).
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.fleetload import compress, encode_labels, encode_series
from tests.support.realparts import Process, http_get, post_write_as, start_aggregator, wait_for

SHARDS = {"shard-0": ("eu-1", "eu-2"), "shard-1": ("us-1",)}


def _shard_config(clusters: tuple[str, ...], extra: str = "") -> str:
    lines = ["clusters:"]
    for name in clusters:
        lines += [f"  - name: {name}", f"    token: token-{name}"]
    return "\n".join(lines) + "\n" + extra


def _query_tier_config(shards: dict[str, str]) -> str:
    lines = ["clusters:"]
    for shard, url in shards.items():
        lines += [
            f"  - name: {shard}",
            f"    url: {url}",
            "    keep_cluster_label: true",
            "    health_check_interval: 1s",
        ]
    return "\n".join(lines) + "\n"


def _query(url: str, query: str) -> dict:
    qs = urllib.parse.urlencode({"query": query})
    status, body = http_get(f"{url}/api/v1/query?{qs}")
    assert status == 200, body
    return json.loads(body)


def _push(url: str, cluster: str, now_ms: int) -> None:
    ts = np.array([now_ms - 30_000, now_ms - 15_000], dtype=np.int64)
    fields = [
        encode_series(
            encode_labels([("__name__", "up"), ("instance", f"{cluster}-node"), ("job", "node")]),
            ts,
            np.array([1.0, 1.0]),
        )
    ]
    assert post_write_as(url, compress(fields), f"token-{cluster}") == 204


@pytest.fixture
def tiers(tmp_path: Path) -> Iterator[tuple[dict[str, tuple[Process, str]], str]]:
    shards: dict[str, tuple[Process, str]] = {}
    procs: list[Process] = []
    try:
        for shard, clusters in SHARDS.items():
            shards[shard] = start_aggregator(tmp_path / shard, config=_shard_config(clusters))
            procs.append(shards[shard][0])
        config = _query_tier_config({shard: url for shard, (_, url) in shards.items()})
        query_proc, query_url = start_aggregator(tmp_path / "query", config=config)
        procs.append(query_proc)
        yield shards, query_url
    finally:
        for proc in reversed(procs):
            proc.stop()


def test_query_tier_sees_every_shards_clusters_by_their_own_name(tiers) -> None:
    shards, query_url = tiers
    now_ms = int(time.time() * 1000)
    for shard, clusters in SHARDS.items():
        for cluster in clusters:
            _push(shards[shard][1], cluster, now_ms)

    data = _query(query_url, "up")
    got = sorted(r["metric"]["cluster"] for r in data["data"]["result"])
    assert got == ["eu-1", "eu-2", "us-1"]
    assert "warnings" not in data

    # sent to the shards (it rejects the entries' own names) ...
    data = _query(query_url, 'up{cluster="eu-2"}')
    assert [r["metric"]["instance"] for r in data["data"]["result"]] == ["eu-2-node"]
    # ... or applied here after relabelling (it accepts "shard-0" and "shard-1")
    data = _query(query_url, 'count by (cluster) (up{cluster!="eu-1"})')
    assert sorted(r["metric"]["cluster"] for r in data["data"]["result"]) == ["eu-2", "us-1"]
    data = _query(query_url, 'up{cluster=~"shard-.*"}')
    assert data["data"]["result"] == []

    qs = urllib.parse.urlencode({"match[]": "up"})
    status, body = http_get(f"{query_url}/api/v1/label/cluster/values?{qs}")
    assert status == 200
    assert json.loads(body)["data"] == ["eu-1", "eu-2", "us-1"]


def test_series_without_a_cluster_label_get_the_pull_entrys_name(tmp_path: Path) -> None:
    # an open shard (no clusters configured) stores what it is sent as it is
    shard, shard_url = start_aggregator(tmp_path / "open")
    try:
        query, query_url = start_aggregator(
            tmp_path / "query",
            config=f"clusters:\n  - {{name: lake, url: '{shard_url}', keep_cluster_label: true}}\n",
        )
        try:
            now_ms = int(time.time() * 1000)
            ts = np.array([now_ms - 10_000], dtype=np.int64)
            fields = [
                encode_series(encode_labels([("__name__", "temp")]), ts, np.array([1.0])),
                encode_series(
                    encode_labels([("__name__", "temp"), ("cluster", "far")]), ts, np.array([2.0])
                ),
            ]
            assert post_write_as(shard_url, compress(fields), None) == 204
            data = _query(query_url, "temp")
            got = {r["metric"]["cluster"]: r["value"][1] for r in data["data"]["result"]}
            assert got == {"lake": "1", "far": "2"}
            data = _query(query_url, 'temp{cluster="lake"}')
            assert [r["value"][1] for r in data["data"]["result"]] == ["1"]
        finally:
            query.stop()
    finally:
        shard.stop()


def test_a_stopped_shard_is_named_and_the_other_still_answers(tiers) -> None:
    shards, query_url = tiers
    now_ms = int(time.time() * 1000)
    for shard, clusters in SHARDS.items():
        for cluster in clusters:
            _push(shards[shard][1], cluster, now_ms)
    shards["shard-1"][0].stop()
    data = _query(query_url, "up")
    assert sorted(r["metric"]["cluster"] for r in data["data"]["result"]) == ["eu-1", "eu-2"]
    assert any('cluster "shard-1"' in w for w in data.get("warnings", [])), data

    # the clusters behind the shard are named too, once the query tier has noticed
    def us1_unreachable() -> list[str] | None:
        warnings = _query(query_url, 'up{cluster="us-1"}').get("warnings", [])
        return [w for w in warnings if w.startswith('cluster "us-1" is unreachable')] or None

    (warning,) = wait_for(us1_unreachable, timeout=10, what="a warning naming us-1")
    assert 'served by "shard-1"' in warning
    # a query that cannot touch it is not told
    data = _query(query_url, 'up{cluster="eu-1"}')
    assert not any("us-1" in w for w in data.get("warnings", [])), data


def test_a_member_gone_quiet_on_a_healthy_shard_is_stale_through_the_query_tier(
    tmp_path: Path,
) -> None:
    shard, shard_url = start_aggregator(
        tmp_path / "shard",
        config=_shard_config(("eu-1", "eu-2"), "query:\n  stale_after: 2s\n"),
    )
    try:
        query, query_url = start_aggregator(
            tmp_path / "query", config=_query_tier_config({"shard-0": shard_url})
        )
        try:
            now_ms = int(time.time() * 1000)
            _push(shard_url, "eu-1", now_ms + 5_000)  # its newest sample: 10 s ago
            _push(shard_url, "eu-2", now_ms + 60_000)  # fresh for the test's span

            def eu1_stale() -> list[str] | None:
                warnings = _query(query_url, "up").get("warnings", [])
                return [w for w in warnings if w.startswith('cluster "eu-1" is stale')] or None

            (warning,) = wait_for(eu1_stale, timeout=15, what="eu-1 stale via the query tier")
            assert warning.endswith('(on "shard-0")')
            data = _query(query_url, 'up{cluster="eu-2"}')
            assert not any("stale" in w for w in data.get("warnings", [])), data
        finally:
            query.stop()
    finally:
        shard.stop()


# -- history from the object store -------------------------------------------------

STEP_MS = 15_000
HISTORY_POINTS = 480  # two hours of scrapes per series
QUERIES = [  # MATCH: which clusters
    ("sum by (cluster) (rate(requests_total{MATCH}[5m]))", 60),
    ("count_over_time(requests_total{MATCH}[20m])", 300),
    ('requests_total{instance="i1",MATCH}', 15),
    ("max_over_time(temperature{MATCH}[10m])", 120),
]
ALL_CLUSTERS = 'cluster!="none"'
US_1 = 'cluster="us-1"'


def _history_bodies(cluster: str, start_ms: int, first: int, last: int) -> list[bytes]:
    """Remote-write bodies of scrapes `first`..`last - 1` of one cluster (4 series), in order."""
    bodies = []
    for lo in range(first, last, 60):
        ks = np.arange(lo, min(lo + 60, last), dtype=np.int64)
        ts = start_ms + ks * STEP_MS
        fields = [
            encode_series(
                encode_labels([("__name__", "requests_total"), ("instance", f"i{i}")]),
                ts,
                (ks + 1).astype(np.float64) * (i + 1) * (len(cluster) + 1),
            )
            for i in range(3)
        ]
        fields.append(
            encode_series(
                encode_labels([("__name__", "temperature"), ("room", cluster)]),
                ts,
                20 + (ks % 13).astype(np.float64) * 0.5,
            )
        )
        bodies.append(compress(fields))
    return bodies


def _s3_storage(s3_config, prefix: str, read: list[str] = ()) -> str:
    text = (
        "storage:\n"
        "  block_duration: 15m\n"
        "  object_store:\n"
        "    type: s3\n"
        f"    bucket: {s3_config.bucket}\n"
        f"    prefix: {prefix}\n"
        f"    endpoint: {s3_config.endpoint}\n"
        "    region: us-east-1\n"
    )
    if read:
        text += f"    read_prefixes: [{', '.join(read)}]\n    read_relist_interval: 1s\n"
    return text


def _range(url: str, query: str, start_ms: int, end_ms: int, step_s: int) -> dict:
    qs = urllib.parse.urlencode(
        {"query": query, "start": start_ms / 1000, "end": end_ms / 1000, "step": step_s}
    )
    status, body = http_get(f"{url}/api/v1/query_range?{qs}", timeout=60)
    assert status == 200, body
    return json.loads(body)


def _by_labels(data: dict) -> dict[str, list]:
    return {json.dumps(r["metric"], sort_keys=True): r["values"] for r in data["data"]["result"]}


def _post(url: str, path: str) -> dict:
    request = urllib.request.Request(f"{url}{path}", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=120) as resp:
        return json.loads(resp.read())


def _listed(query_url: str, since: float) -> bool:
    status, body = http_get(f"{query_url}/api/v1/status/blocks")
    assert status == 200, body
    prefixes = json.loads(body)["data"]["readPrefixes"]
    return all(p["blocks"] > 0 and (p["lastRefresh"] or 0) > since for p in prefixes)


def test_history_comes_from_the_object_store_whole_and_once(tmp_path: Path, s3_config) -> None:
    now = int(time.time() * 1000)
    start_ms = now - now % 60_000 - HISTORY_POINTS * STEP_MS
    flushed = HISTORY_POINTS * 3 // 4  # the rest stays in the shards' heads
    flushed_end = start_ms + (flushed - 1) * STEP_MS
    end_ms = start_ms + (HISTORY_POINTS - 1) * STEP_MS
    everyone = tuple(c for clusters in SHARDS.values() for c in clusters)
    prefixes = {shard: f"fleet/{shard}" for shard in SHARDS}
    procs: list[Process] = []
    try:
        single, single_url = start_aggregator(
            tmp_path / "single",
            config=_shard_config(everyone, _s3_storage(s3_config, "fleet/single")),
        )
        procs.append(single)
        shards: dict[str, tuple[Process, str, str]] = {}
        for shard, clusters in SHARDS.items():
            config = _shard_config(clusters, _s3_storage(s3_config, prefixes[shard]))
            proc, url = start_aggregator(tmp_path / shard, config=config)
            procs.append(proc)
            shards[shard] = (proc, url, config)
        lines = ["clusters:"]
        for shard, (_, url, _) in shards.items():
            lines += [
                f"  - name: {shard}",
                f"    url: {url}",
                "    keep_cluster_label: true",
                "    health_check_interval: 1s",
                f"    object_store_prefix: {prefixes[shard]}",
            ]
        query_config = "\n".join(lines) + "\n"
        query_config += _s3_storage(s3_config, "fleet/query", list(prefixes.values()))
        query, query_url = start_aggregator(tmp_path / "query", config=query_config)
        procs.append(query)

        # the same samples to the single instance and to each cluster's shard: most of
        # them flushed to blocks on the shards, the newest quarter left in their heads
        for shard, clusters in SHARDS.items():
            for cluster in clusters:
                for body in _history_bodies(cluster, start_ms, 0, flushed):
                    assert post_write_as(single_url, body, f"token-{cluster}") == 204
                    assert post_write_as(shards[shard][1], body, f"token-{cluster}") == 204
        for shard in SHARDS:
            assert _post(shards[shard][1], "/api/v1/admin/flush")["data"]["blocks"] >= 1
        flushed_at = time.time()
        for shard, clusters in SHARDS.items():
            for cluster in clusters:
                for body in _history_bodies(cluster, start_ms, flushed, HISTORY_POINTS):
                    assert post_write_as(single_url, body, f"token-{cluster}") == 204
                    assert post_write_as(shards[shard][1], body, f"token-{cluster}") == 204
        wait_for(lambda: _listed(query_url, flushed_at) or None, timeout=30, what="a listing")

        # 1. both shards up: every query answers as the single instance does
        for template, step in QUERIES:
            query_text = template.replace("MATCH", ALL_CLUSTERS)
            want = _range(single_url, query_text, start_ms, end_ms, step)
            got = _range(query_url, query_text, start_ms, end_ms, step)
            assert "warnings" not in got, got["warnings"]
            assert _by_labels(got) == _by_labels(want), query_text
            assert len(_by_labels(got)) >= 3

        # late samples into a range shard-0 already uploaded: answered at once (from its head)
        late = [
            encode_series(
                encode_labels([("__name__", "late_total"), ("instance", "i0")]),
                start_ms + np.arange(20, 80, dtype=np.int64) * STEP_MS,
                np.arange(60, dtype=np.float64),
            )
        ]
        assert post_write_as(single_url, compress(late), "token-eu-1") == 204
        assert post_write_as(shards["shard-0"][1], compress(late), "token-eu-1") == 204
        want = _range(single_url, "late_total", start_ms, end_ms, 15)
        got = _range(query_url, "late_total", start_ms, end_ms, 15)
        assert len(_by_labels(want)) == 1
        assert _by_labels(got) == _by_labels(want)

        # 2. shard-1 stopped: its cluster's history still answers, from its blocks in the
        # bucket; the warnings name the shard (its head could hold late samples)
        shard1, shard1_url, shard1_config = shards["shard-1"]
        assert shard1.stop() == 0
        for template, step in QUERIES:
            us = template.replace("MATCH", US_1)
            want = _range(single_url, us, start_ms, flushed_end, step)
            got = _range(query_url, us, start_ms, flushed_end, step)
            assert _by_labels(want), us
            assert _by_labels(got) == _by_labels(want), us
            assert any('cluster "shard-1" left out' in w for w in got["warnings"]), got
        got = _range(query_url, 'requests_total{cluster="us-1"}', start_ms, end_ms, 60)
        assert any('cluster "shard-1" left out' in w for w in got["warnings"]), got["warnings"]

        def us1_unreachable() -> list[str] | None:
            got = _range(query_url, 'requests_total{cluster="us-1"}', start_ms, flushed_end, 60)
            warnings = got.get("warnings", [])
            return [w for w in warnings if w.startswith('cluster "us-1" is unreachable')] or None

        (warning,) = wait_for(us1_unreachable, timeout=10, what="a warning naming us-1")
        assert 'served by "shard-1"' in warning

        # 3. shard-1 back (same data, same address): nothing doubled, nothing missing
        port = int(shard1_url.rsplit(":", 1)[1])
        back, _ = start_aggregator(
            tmp_path / "shard-1-again",
            config=shard1_config,
            data_dir=tmp_path / "shard-1" / "data",
            port=port,
        )
        procs.append(back)

        def answered_whole() -> dict | None:
            data = _range(query_url, "requests_total", start_ms, end_ms, 60)
            return None if data.get("warnings") else data

        wait_for(answered_whole, timeout=30, what="shard-1 answering again")
        window = f"{(end_ms - start_ms) // 1000 + 60}s"
        qs = urllib.parse.urlencode(
            {"query": f"count_over_time(requests_total[{window}])", "time": end_ms / 1000}
        )
        status, body = http_get(f"{query_url}/api/v1/query?{qs}")
        assert status == 200, body
        result = json.loads(body)["data"]["result"]
        assert len(result) == 3 * len(everyone)
        assert {r["value"][1] for r in result} == {str(HISTORY_POINTS)}, result
        for template, step in QUERIES:
            query_text = template.replace("MATCH", ALL_CLUSTERS)
            want = _range(single_url, query_text, start_ms, end_ms, step)
            got = _range(query_url, query_text, start_ms, end_ms, step)
            assert _by_labels(got) == _by_labels(want), query_text
    finally:
        for proc in reversed(procs):
            proc.stop()
