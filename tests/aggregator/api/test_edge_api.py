"""The host's endpoints for edge agents, through the real app and its HTTP client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from aggregator.config import Config, EdgeConfig
from aggregator.errors import ConfigError
from aggregator.federation.edge import EdgeHub
from tests.aggregator.conftest import MakeService, Service, clusters, encode

T0 = 1_700_000_000_000
AUTH = {"Authorization": "Bearer token-edge-1"}

RULES = """
groups:
  - name: node
    cluster: edge-1
    interval: 15s
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
  - name: other
    cluster: dc-2
    rules:
      - alert: Down
        expr: up == 0
"""


@pytest.fixture
async def host(make_service: MakeService, tmp_path: Path) -> Service:
    (tmp_path / "edge.yml").write_text(RULES)
    config = Config(
        clusters=clusters("edge-1", "dc-2"),
        edge=EdgeConfig(rule_files=("edge.yml",), base_dir=tmp_path),
    )
    return await make_service(config)


async def test_rules_are_the_token_clusters_own_with_an_etag(host: Service) -> None:
    resp = await host.client.get("/api/v1/edge/rules", headers=AUTH)
    assert resp.status == 200
    body = await resp.json()
    assert body["data"]["cluster"] == "edge-1"
    assert [g["name"] for g in body["data"]["groups"]] == ["node"]
    assert "cluster" not in body["data"]["groups"][0]
    etag = resp.headers["ETag"]
    again = await host.client.get("/api/v1/edge/rules", headers={**AUTH, "If-None-Match": etag})
    assert again.status == 304


async def test_rules_need_the_cluster_token(host: Service) -> None:
    resp = await host.client.get("/api/v1/edge/rules", headers={"Authorization": "Bearer nope"})
    assert resp.status == 401
    assert "invalid token" in await resp.text()


async def test_long_poll_wakes_when_the_file_changes(host: Service, tmp_path: Path) -> None:
    first = await host.client.get("/api/v1/edge/rules", headers=AUTH)
    etag = first.headers["ETag"]
    poll = asyncio.create_task(
        host.client.get(
            "/api/v1/edge/rules", params={"wait": "20s"}, headers={**AUTH, "If-None-Match": etag}
        )
    )
    await asyncio.sleep(0.3)
    assert not poll.done()
    (tmp_path / "edge.yml").write_text(RULES.replace("sum by (job) (up)", "count(up)"))
    resp = await asyncio.wait_for(poll, 10)  # the watcher re-reads within a second
    assert resp.status == 200
    assert resp.headers["ETag"] != etag
    body = await resp.json()
    assert body["data"]["groups"][0]["rules"][0]["expr"] == "count(up)"


async def test_a_bad_file_keeps_the_running_rules(host: Service, tmp_path: Path) -> None:
    first = await host.client.get("/api/v1/edge/rules", headers=AUTH)
    (tmp_path / "edge.yml").write_text(RULES.replace("sum by (job) (up)", "sum by (job) (up"))
    await asyncio.sleep(1.5)
    resp = await host.client.get(
        "/api/v1/edge/rules", headers={**AUTH, "If-None-Match": first.headers["ETag"]}
    )
    assert resp.status == 304


async def test_agent_report_is_shown_in_clusters(host: Service) -> None:
    report = {
        "rules_etag": '"old"',
        "errors": ["host rules: group \"node\": unknown key 'future'"],
        "groups": 1,
        "rules": [{"group": "node", "rule": "x", "health": "err", "error": "boom"}],
    }
    resp = await host.client.post("/api/v1/edge/status", json=report, headers=AUTH)
    assert resp.status == 204
    status, body = await host.get_json("/api/v1/clusters")
    assert status == 200
    edge = {c["name"]: c for c in body["data"]}["edge-1"]["edge"]
    assert edge["rule_load_errors"] == report["errors"]
    assert edge["rules_in_sync"] is False
    assert edge["rule_health"][0]["error"] == "boom"
    assert edge["tunnel_connected"] is False


async def test_alerts_get_the_cluster_label_and_a_repeat_is_ignored(host: Service) -> None:
    sent: list = []
    from aggregator.api.edge import EDGE

    host.app[EDGE].notify = sent.extend
    alert = {
        "labels": {"alertname": "Down", "cluster": "spoofed"},
        "annotations": {"summary": "x"},
        "starts_at_ms": T0,
        "ends_at_ms": T0 + 60_000,
        "generator_url": "",
        "resolved": False,
    }
    headers = {**AUTH, "X-Edge-Sequence": "7"}
    assert (
        await host.client.post("/api/v1/edge/alerts", json=[alert], headers=headers)
    ).status == 204
    assert (
        await host.client.post("/api/v1/edge/alerts", json=[alert], headers=headers)
    ).status == 200
    assert len(sent) == 1
    assert sent[0].labels.get("cluster") == "edge-1"
    _, body = await host.get_json("/api/v1/clusters")
    edge = {c["name"]: c for c in body["data"]}["edge-1"]["edge"]
    assert edge["duplicates"] == 1
    assert edge["last_sequence"] == 7


async def test_malformed_alerts_are_a_400_naming_the_alert(host: Service) -> None:
    resp = await host.client.post("/api/v1/edge/alerts", json=[{"labels": {}}], headers=AUTH)
    assert resp.status == 400
    assert "alert 0" in await resp.text()


async def test_a_repeated_write_sequence_is_not_stored_twice(host: Service) -> None:
    body = encode([((("__name__", "edge:x"),), [T0], [1.0])])
    headers = {**AUTH, "X-Edge-Sequence": "3"}
    assert (await host.write(body, headers=headers))[0] == 204
    assert (await host.write(body, headers=headers))[0] == 204
    _, data = await host.get_json("/api/v1/clusters")
    edge = {c["name"]: c for c in data["data"]}["edge-1"]["edge"]
    assert edge["duplicates"] == 1
    assert edge["records"] == 1


def test_a_bad_edge_rule_file_fails_the_start(tmp_path: Path) -> None:
    """What the app's edge component runs at start (checked here directly: a failed
    start of the test app leaves its client session to the garbage collector)."""
    (tmp_path / "edge.yml").write_text(RULES.replace("    cluster: dc-2\n", ""))
    hub = EdgeHub(EdgeConfig(rule_files=("edge.yml",), base_dir=tmp_path))
    with pytest.raises(ConfigError, match=r"edge.yml: group \"other\": cluster: must name"):
        hub.load()


async def test_with_open_writes_the_agent_names_its_cluster(
    make_service: MakeService, tmp_path: Path
) -> None:
    (tmp_path / "edge.yml").write_text(RULES)
    service = await make_service(
        Config(edge=EdgeConfig(rule_files=("edge.yml",), base_dir=tmp_path))
    )
    resp = await service.client.get("/api/v1/edge/rules", params={"cluster": "dc-2"})
    assert resp.status == 200
    assert [g["name"] for g in (await resp.json())["data"]["groups"]] == ["other"]
    missing = await service.client.get("/api/v1/edge/rules")
    assert missing.status == 400
    assert "?cluster=" in await missing.text()


async def test_a_bad_wait_is_a_400(host: Service) -> None:
    resp = await host.client.get("/api/v1/edge/rules", params={"wait": "soon"}, headers=AUTH)
    assert resp.status == 400
    assert (await resp.json())["error"].startswith('invalid parameter "wait"')
