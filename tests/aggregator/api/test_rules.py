"""`/api/v1/rules`, `/api/v1/alerts`, `/-/reload` and the ruler config API, through HTTP.

The rules run for real (1 s groups, the system clock): the tests wait for an
evaluation or two, never long.
"""

from __future__ import annotations

import copy
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from aggregator.api.context import RULES as RULER
from aggregator.app import build_app
from aggregator.config import Config, StorageConfig
from aggregator.errors import ConfigError
from alerting.settings import AlertingSettings, RulesSettings
from storage.objstore.config import ObjectStoreConfig
from tests.aggregator.conftest import MakeService, Service
from tests.support.waiting import until_async

# The rules of a capture of Prometheus 2.42's answers (below).
RULES = """
groups:
- name: g
  interval: 1s
  limit: 5
  rules:
  - record: job:up:sum
    expr: sum by (job) (up)
    labels: {x: y}
  - alert: Always
    expr: vector(1) > 0
    for: 2s
    keep_firing_for: 3s
    labels: {severity: page}
    annotations: {summary: "v={{ $value }}"}
  - alert: Never
    expr: vector(1) < 0
  - alert: Broken
    expr: 'label_replace(vector(1), "a", "b", "c", "(")'
"""

# Prometheus 2.42.0's /api/v1/rules for RULES once "Always" fired, with the times
# and the file path (which differ from run to run) replaced by "<...>".
PROMETHEUS_RULES = {
    "groups": [
        {
            "name": "g",
            "file": "<file>",
            "rules": [
                {
                    "name": "job:up:sum",
                    "query": "sum by (job) (up)",
                    "labels": {"x": "y"},
                    "health": "ok",
                    "evaluationTime": "<seconds>",
                    "lastEvaluation": "<time>",
                    "type": "recording",
                },
                {
                    "state": "firing",
                    "name": "Always",
                    "query": "vector(1) > 0",
                    "duration": 2,
                    "keepFiringFor": 3,
                    "labels": {"severity": "page"},
                    "annotations": {"summary": "v={{ $value }}"},
                    "alerts": [
                        {
                            "labels": {"alertname": "Always", "severity": "page"},
                            "annotations": {"summary": "v=1"},
                            "state": "firing",
                            "activeAt": "<time>",
                            "value": "1e+00",
                        }
                    ],
                    "health": "ok",
                    "evaluationTime": "<seconds>",
                    "lastEvaluation": "<time>",
                    "type": "alerting",
                },
                {
                    "state": "inactive",
                    "name": "Never",
                    "query": "vector(1) < 0",
                    "duration": 0,
                    "keepFiringFor": 0,
                    "labels": {},
                    "annotations": {},
                    "alerts": [],
                    "health": "ok",
                    "evaluationTime": "<seconds>",
                    "lastEvaluation": "<time>",
                    "type": "alerting",
                },
                {
                    "state": "inactive",
                    "name": "Broken",
                    "query": 'label_replace(vector(1), "a", "b", "c", "(")',
                    "duration": 0,
                    "keepFiringFor": 0,
                    "labels": {},
                    "annotations": {},
                    "alerts": [],
                    "health": "err",
                    "lastError": "invalid regular expression in label_replace(): (",
                    "evaluationTime": "<seconds>",
                    "lastEvaluation": "<time>",
                    "type": "alerting",
                },
            ],
            "interval": 1,
            "limit": 5,
            "evaluationTime": "<seconds>",
            "lastEvaluation": "<time>",
        }
    ]
}

_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def normalized(value: Any) -> Any:
    """Replace times and durations by placeholders, checking their form on the way."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in ("lastEvaluation", "activeAt"):
                assert isinstance(item, str), (key, item)
                assert _TIME.fullmatch(item), (key, item)
                assert item != "0001-01-01T00:00:00Z", f"{key}: never evaluated"
                out[key] = "<time>"
            elif key == "evaluationTime":
                assert isinstance(item, float), (key, item)
                assert item > 0, (key, item)
                out[key] = "<seconds>"
            elif key == "file":
                out[key] = "<file>"
            else:
                out[key] = normalized(item)
        return out
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def rules_config(tmp_path: Path) -> Config:
    return Config(
        rules=RulesSettings(files=("rules/*.yml",), base_dir=tmp_path, evaluation_interval_ms=1000),
        alerting=AlertingSettings(external_url="http://agg.example:9095"),
    )


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    path = tmp_path / "rules"
    path.mkdir()
    return path


async def rules_of(service: Service, query: str = "") -> dict[str, Any]:
    status, body = await service.get_json("/api/v1/rules" + query)
    assert status == 200, body
    return dict(body["data"])


async def firing(service: Service, name: str) -> bool:
    groups = (await rules_of(service))["groups"]
    return any(r["name"] == name and r.get("state") == "firing" for g in groups for r in g["rules"])


async def test_rules_answer_as_prometheus_does(
    make_service: MakeService, tmp_path: Path, rules_dir: Path
) -> None:
    (rules_dir / "a.yml").write_text(RULES)
    service = await make_service(rules_config(tmp_path))
    await service.app[RULER].wait_started()
    await until_async(lambda: firing(service, "Always"))
    data = await rules_of(service)
    assert data["groups"][0]["file"] == str(rules_dir / "a.yml")
    assert normalized(data) == PROMETHEUS_RULES

    status, alerts = await service.get_json("/api/v1/alerts")
    assert status == 200
    assert normalized(alerts["data"]) == {
        "alerts": PROMETHEUS_RULES["groups"][0]["rules"][1]["alerts"]
    }


async def test_rules_filters(make_service: MakeService, tmp_path: Path, rules_dir: Path) -> None:
    (rules_dir / "a.yml").write_text(RULES)
    (rules_dir / "b.yml").write_text(
        "groups:\n- name: other\n  rules:\n  - record: r\n    expr: vector(1)\n"
    )
    service = await make_service(rules_config(tmp_path))
    await service.app[RULER].wait_started()

    def names(data: dict[str, Any]) -> list[tuple[str, list[str]]]:
        return [(g["name"], [r["name"] for r in g["rules"]]) for g in data["groups"]]

    assert names(await rules_of(service)) == [
        ("g", ["job:up:sum", "Always", "Never", "Broken"]),
        ("other", ["r"]),
    ]
    assert names(await rules_of(service, "?type=record")) == [
        ("g", ["job:up:sum"]),
        ("other", ["r"]),
    ]
    assert names(await rules_of(service, "?type=alert")) == [("g", ["Always", "Never", "Broken"])]
    assert names(await rules_of(service, "?rule_name[]=Never&rule_name[]=r")) == [
        ("g", ["Never"]),
        ("other", ["r"]),
    ]
    assert names(await rules_of(service, "?rule_group[]=other")) == [("other", ["r"])]
    file_b = str(rules_dir / "b.yml")
    assert names(await rules_of(service, f"?file[]={file_b}")) == [("other", ["r"])]
    no_alerts = await rules_of(service, "?type=alert&exclude_alerts=true")
    assert all("alerts" not in r for r in no_alerts["groups"][0]["rules"])
    status, body = await service.get_json("/api/v1/rules?type=bad")
    assert status == 400
    assert body == {
        "status": "error",
        "errorType": "bad_data",
        "error": 'invalid parameter "type": not supported value "bad"',
    }


async def test_reload_refuses_a_broken_file_and_keeps_the_old_rules(
    make_service: MakeService, tmp_path: Path, rules_dir: Path
) -> None:
    (rules_dir / "a.yml").write_text(RULES)
    service = await make_service(rules_config(tmp_path))
    await service.app[RULER].wait_started()
    await until_async(lambda: firing(service, "Always"))
    before = await rules_of(service)
    active_at = before["groups"][0]["rules"][1]["alerts"][0]["activeAt"]

    (rules_dir / "a.yml").write_text(RULES.replace("expr: vector(1) < 0", "expr: vector(1) <"))
    resp = await service.client.post("/-/reload")
    text = await resp.text()
    assert resp.status == 500
    assert text.startswith("failed to reload config: ")
    assert f"{rules_dir / 'a.yml'}: " in text
    assert 'group "g", rule 3, "Never": could not parse expression' in text
    metrics = await (await service.client.get("/metrics")).text()
    assert "aggregator_config_last_reload_successful 0.0" in metrics

    # The old rules keep running: the group is evaluated again after the refusal.
    last = before["groups"][0]["lastEvaluation"]

    async def evaluated_again() -> bool:
        return bool((await rules_of(service))["groups"][0]["lastEvaluation"] > last)

    await until_async(evaluated_again)
    assert [r["name"] for r in (await rules_of(service))["groups"][0]["rules"]] == [
        "job:up:sum",
        "Always",
        "Never",
        "Broken",
    ]

    # A good file is taken; the unchanged alert keeps its activeAt.
    (rules_dir / "a.yml").write_text(
        RULES.replace("  - alert: Never\n    expr: vector(1) < 0\n", "")
    )
    resp = await service.client.post("/-/reload")
    assert resp.status == 200, await resp.text()
    after = await rules_of(service)
    assert [r["name"] for r in after["groups"][0]["rules"]] == ["job:up:sum", "Always", "Broken"]
    assert after["groups"][0]["rules"][1]["alerts"][0]["activeAt"] == active_at
    metrics = await (await service.client.get("/metrics")).text()
    assert "aggregator_config_last_reload_successful 1.0" in metrics
    assert (await service.client.get("/-/reload")).status == 405


async def test_a_broken_rule_file_stops_the_start(
    tmp_path: Path, rules_dir: Path, data_dir: Path
) -> None:
    (rules_dir / "a.yml").write_text("groups:\n- name: g\n  rules:\n  - alert: A\n")
    app = build_app(rules_config(tmp_path).with_overrides(data_dir=str(data_dir)))
    runner = web.AppRunner(app)
    try:
        with pytest.raises(
            ConfigError, match=r"rules\.files: .*a\.yml: .*field 'expr' must be set in rule"
        ):
            await runner.setup()
    finally:
        await runner.cleanup()


GROUP = """
name: nodes
interval: 1s
rules:
- alert: FleetDown
  expr: vector(1)
  for: 0s
  labels:
    severity: page
  annotations:
    summary: '{{ $value }} down'
- record: fleet:one
  expr: vector(1)
"""


async def test_grafana_style_rule_editing(make_service: MakeService, tmp_path: Path) -> None:
    """What Grafana's alerting UI does with a Mimir data source: it checks buildinfo,
    creates a group in a namespace, reads it back, lists rules, edits and deletes."""
    service = await make_service(rules_config(tmp_path))
    await service.app[RULER].wait_started()
    _, info = await service.get_json("/api/v1/status/buildinfo")
    assert info["data"]["features"]["ruler_config_api"] == "true"

    resp = await service.client.get("/config/v1/rules")
    assert (resp.status, await resp.text()) == (404, "no rule groups found\n")

    resp = await service.client.post(
        "/config/v1/rules/team-a", data=GROUP, headers={"Content-Type": "application/yaml"}
    )
    assert resp.status == 202
    assert await resp.json() == {"status": "success", "data": None, "errorType": "", "error": ""}

    resp = await service.client.get("/config/v1/rules")
    assert resp.status == 200
    assert resp.content_type == "application/yaml"
    listed = yaml.safe_load(await resp.text())
    assert listed == {"team-a": [yaml.safe_load(GROUP) | {"rules": _rules_as_written()}]}
    resp = await service.client.get("/config/v1/rules/team-a/nodes")
    assert yaml.safe_load(await resp.text())["name"] == "nodes"

    # It runs: listed by the Prometheus API with the namespace as its file, evaluated.
    async def fired() -> bool:
        return await firing(service, "FleetDown")

    await until_async(fired)
    [group] = (await rules_of(service))["groups"]
    assert (group["file"], group["name"]) == ("team-a", "nodes")
    _, body = await service.get_json("/api/v1/query?query=fleet:one")
    assert body["data"]["result"][0]["value"][1] == "1"

    # Editing (an annotation here) keeps the alert's state; a bad edit is refused with
    # its reasons and changes nothing.
    edited = GROUP.replace("summary", "description")
    active_at = group["rules"][0]["alerts"][0]["activeAt"]
    resp = await service.client.post("/config/v1/rules/team-a", data=edited)
    assert resp.status == 202
    [group] = (await rules_of(service))["groups"]
    assert group["rules"][0]["annotations"] == {"description": "{{ $value }} down"}
    assert group["rules"][0]["alerts"][0]["activeAt"] == active_at
    resp = await service.client.post(
        "/config/v1/rules/team-a", data=GROUP.replace("expr: vector(1)\n  for", "expr: sum(\n  for")
    )
    assert resp.status == 400
    assert 'group "nodes", rule 1, "FleetDown": could not parse expression' in await resp.text()
    [group] = (await rules_of(service))["groups"]
    assert group["rules"][0]["annotations"] == {"description": "{{ $value }} down"}

    resp = await service.client.delete("/config/v1/rules/team-a/nodes")
    assert resp.status == 202
    assert (await rules_of(service))["groups"] == []
    resp = await service.client.delete("/config/v1/rules/team-a/nodes")
    assert (resp.status, await resp.text()) == (404, "group does not exist\n")
    resp = await service.client.delete("/config/v1/rules/team-a")
    assert (resp.status, await resp.text()) == (404, "group namespace does not exist\n")


def _rules_as_written() -> list[dict[str, Any]]:
    rules = copy.deepcopy(yaml.safe_load(GROUP)["rules"])
    del rules[0]["for"]  # `for: 0s` is the default, written back without it
    return rules


async def test_ruler_groups_survive_a_restart(
    make_service: MakeService, tmp_path: Path, data_dir: Path
) -> None:
    service = await make_service(rules_config(tmp_path))
    await service.app[RULER].wait_started()
    resp = await service.client.post("/config/v1/rules/a%2Fb", data=GROUP)
    assert resp.status == 202
    await service.client.close()
    assert sorted(p.name for p in (data_dir / "rules").iterdir()) == ["a%2Fb.yaml"]

    again = await make_service(rules_config(tmp_path))
    await again.app[RULER].wait_started()
    resp = await again.client.get("/config/v1/rules/a%2Fb")
    assert resp.status == 200
    assert list(yaml.safe_load(await resp.text())) == ["a/b"]

    async def running() -> bool:  # the groups start once storage is open
        groups = (await rules_of(again))["groups"]
        return [(g["file"], g["name"]) for g in groups] == [("a/b", "nodes")]

    await until_async(running)


async def test_generator_url_leads_to_the_expression(make_service: MakeService) -> None:
    service = await make_service()
    resp = await service.client.get("/graph?g0.expr=up+%3D%3D+0&g0.tab=1", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "/api/v1/query?query=up+%3D%3D+0"


async def test_ruler_groups_come_back_from_the_object_store_on_an_empty_data_dir(
    make_service: MakeService, tmp_path: Path, data_dir: Path
) -> None:
    """The object store, not the data dir, is the source of truth: a replaced node with an
    empty data dir and the same store comes back with the groups Grafana created."""
    store = tmp_path / "bucket"
    config = replace(
        rules_config(tmp_path),
        storage=StorageConfig(object_store=ObjectStoreConfig(type="local", path=store)),
    )
    service = await make_service(config)
    await service.app[RULER].wait_started()
    resp = await service.client.post("/config/v1/rules/a%2Fb", data=GROUP)
    assert resp.status == 202
    await service.client.close()
    assert (store / "ruler" / "a%2Fb.yaml").read_bytes() == (
        data_dir / "rules" / "a%2Fb.yaml"
    ).read_bytes()
    shutil.rmtree(data_dir)

    again = await make_service(config)
    await again.app[RULER].wait_started()

    async def restored() -> bool:
        groups = (await rules_of(again))["groups"]
        return [(g["file"], g["name"]) for g in groups] == [("a/b", "nodes")]

    await until_async(restored)
    resp = await again.client.delete("/config/v1/rules/a%2Fb")
    assert resp.status == 202
    assert not (store / "ruler" / "a%2Fb.yaml").exists()
