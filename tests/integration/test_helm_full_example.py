"""The chart's full example, run: its rendered ConfigMap and the files its pods mount,
served by real processes — two receiver shards and the query tier — against a real
S3 endpoint (moto).

Only what cannot exist here is changed, in the values or the laid-out files, each
said where: the S3 endpoint is moto's; the shards' Service names and the unreachable
member (`eu-1`) and Alertmanager point at loopback; rules run every second; listen
address and data dir come from flags, as flags override the file.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from storage.objstore.s3 import S3Config, S3Store
from tests.helm.helmtool import full_example, objects, render
from tests.helm.podfiles import lay_out, secret_value, workload
from tests.support.fleetload import compress, encode_labels, encode_series
from tests.support.realparts import (
    Process,
    free_port,
    http_get,
    post_write_as,
    start_aggregator,
    wait_for,
)

SHARD_OWNERS = {0: "edge-1", 1: "edge-2"}


@pytest.fixture
def s3(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> S3Store:
    # the pods get these from the `fleet-s3` Secret (storage.objectStore.existingSecret)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    store = S3Store(S3Config(bucket="fleet-metrics", endpoint=moto_url, region="us-east-1"))
    asyncio.run(store.create_bucket())
    return store


@pytest.fixture
def fleet(tmp_path: Path, moto_url: str, s3: S3Store) -> Iterator[dict[str, str]]:
    values = full_example()
    values["storage"]["objectStore"]["endpoint"] = moto_url
    values["rules"]["evaluationInterval"] = "1s"
    objs = objects(render(values))
    procs: list[Process] = []
    urls: dict[str, str] = {}
    try:
        _, shard_args = lay_out(
            workload(objs, "StatefulSet", "fleet-aggregator-shard"), objs, tmp_path / "shard-etc"
        )
        for i in SHARD_OWNERS:
            pod = f"fleet-aggregator-shard-{i}"
            args = [a.replace("$(POD_NAME)", pod) for a in shard_args]
            proc, url = start_aggregator(tmp_path / pod, extra_args=args)
            procs.append(proc)
            urls[f"shard-{i}"] = url
        query_dir, query_args = lay_out(
            workload(objs, "Deployment", "fleet-aggregator-query"), objs, tmp_path / "query-etc"
        )
        config = query_dir / "query.yaml"
        text = config.read_text()
        for i in SHARD_OWNERS:  # the shards' Services, as loopback
            text = text.replace(
                f"http://fleet-aggregator-shard-{i}.monitoring.svc:9095", urls[f"shard-{i}"]
            )
        closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        text = text.replace("http://prometheus.eu-1.example:9090", closed)
        text = text.replace("http://alertmanager.monitoring.svc:9093", closed)
        text = text.replace(
            "http://notification-manager-svc.kubesphere-monitoring-system.svc:19093", closed
        )
        config.write_text(text)
        proc, urls["query"] = start_aggregator(tmp_path / "query", extra_args=query_args)
        procs.append(proc)
        yield urls
    finally:
        for proc in reversed(procs):
            proc.stop()


def _push(url: str, cluster: str) -> None:
    now = int(time.time() * 1000)
    ts = np.array([now - 30_000, now - 15_000], dtype=np.int64)
    fields = [
        encode_series(
            encode_labels([("__name__", "up"), ("instance", f"{cluster}:9100"), ("job", "node")]),
            ts,
            np.array([1.0, 0.0]),
        )
    ]
    token = secret_value("fleet-tokens", cluster)
    assert post_write_as(url, compress(fields), token) == 204


def _query(url: str, query: str) -> dict:
    status, body = http_get(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': query})}")
    assert status == 200, body
    return json.loads(body)


def test_full_example_serves_writes_queries_rules_and_blocks(fleet, s3: S3Store) -> None:
    for shard, cluster in SHARD_OWNERS.items():
        _push(fleet[f"shard-{shard}"], cluster)
    # a cluster's token is refused by the other shard: each shard owns its clusters
    with pytest.raises(urllib.error.HTTPError) as refused:
        _push(fleet["shard-1"], "edge-1")
    assert refused.value.code == 401
    refused.value.close()

    data = _query(fleet["query"], "up")
    got = sorted((r["metric"]["cluster"], r["metric"]["instance"]) for r in data["data"]["result"])
    assert got == [("edge-1", "edge-1:9100"), ("edge-2", "edge-2:9100")]
    # the pulled member that cannot be reached is named, not hidden
    assert any('cluster "eu-1"' in w for w in data["warnings"])

    # the rule group from values runs on the query tier, over both shards
    def recorded() -> list[dict] | None:
        return _query(fleet["query"], "cluster:up:sum")["data"]["result"] or None

    result = wait_for(recorded, timeout=30, what="cluster:up:sum on the query tier")
    assert sorted(r["metric"]["cluster"] for r in result) == ["edge-1", "edge-2"]
    status, body = http_get(f"{fleet['query']}/api/v1/rules")
    assert status == 200
    (group,) = json.loads(body)["data"]["groups"]
    assert group["name"] == "fleet"
    assert group["interval"] == 1

    # the shards write their blocks to the one bucket, each under its own prefix
    for shard in SHARD_OWNERS:
        request = urllib.request.Request(
            f"{fleet[f'shard-{shard}']}/api/v1/admin/flush", method="POST"
        )
        with urllib.request.urlopen(request, timeout=60) as resp:
            assert json.loads(resp.read())["data"]["blocks"] >= 1

    async def keys(prefix: str) -> list[str]:
        return [k async for k in s3.list(prefix, recursive=True)]

    for shard in SHARD_OWNERS:
        assert any(k.endswith("meta.json") for k in asyncio.run(keys(f"prod/shard-{shard}/")))
