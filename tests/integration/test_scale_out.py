"""Scale-out in miniature, as real processes: two receiver shards, each owning its push
clusters, and a query tier that pulls both by remote read with `keep_cluster_label`.

Through the query tier every series keeps the `cluster` its shard gave it (not the
shard's name); `cluster` matchers narrow the shards' answers or are applied after
relabelling; a series that comes without a `cluster` gets the pull entry's name; a
stopped shard is named in the answer's warnings, and so are the clusters it serves,
while the other shard still answers; a member gone quiet on a healthy shard is named
as stale through the query tier.
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
