"""Scale-out in miniature, as real processes: two receiver shards, each owning its push
clusters, and a query tier that pulls both by remote read with `keep_cluster_label`.

Through the query tier every series keeps the `cluster` its shard gave it (not the
shard's name); `cluster` matchers narrow the shards' answers or are applied after
relabelling; a series that comes without a `cluster` gets the pull entry's name; and
a stopped shard is named in the answer's warnings while the other shard still answers.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.fleetload import compress, encode_labels, encode_series
from tests.support.realparts import Process, http_get, post_write_as, start_aggregator

SHARDS = {"shard-0": ("eu-1", "eu-2"), "shard-1": ("us-1",)}


def _shard_config(clusters: tuple[str, ...]) -> str:
    lines = ["clusters:"]
    for name in clusters:
        lines += [f"  - name: {name}", f"    token: token-{name}"]
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
        lines = ["clusters:"]
        for shard, (_, url) in shards.items():
            lines += [
                f"  - name: {shard}",
                f"    url: {url}",
                "    keep_cluster_label: true",
                "    health_check_interval: 1s",
            ]
        query_proc, query_url = start_aggregator(tmp_path / "query", config="\n".join(lines))
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
