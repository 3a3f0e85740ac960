"""Global alerts reach a real Alertmanager 0.25 and a notification-manager stand-in.

Two member clusters push `node_up` with their own tokens. A global rule sees
both ("two clusters are losing nodes"); a per-node rule fires once per
cluster. The service sends the alerts to Alertmanager (API v2), whose webhook
receiver posts to a sink, and to a webhook target at notification-manager's
path, which gets Alertmanager's webhook payload grouped per cluster. When the
nodes come back, everything resolves, in Alertmanager and at both receivers.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from remote_write.batch import WriteBatch
from remote_write.codec import encode_write_request
from tests.support.realparts import (
    Sink,
    http_get,
    post_write_as,
    start_aggregator,
    start_alertmanager,
    wait_for,
)

RULES = """
groups:
- name: fleet
  rules:
  - alert: ClustersLosingNodes
    expr: count(sum by (cluster) (node_up == 0)) >= 2
    for: 2s
    labels: {severity: critical, scope: fleet}
    annotations:
      summary: '{{ $value }} clusters are losing nodes'
  - alert: NodeDown
    expr: node_up == 0
    for: 2s
    labels: {severity: warning}
    annotations:
      summary: '{{ $labels.instance }} in {{ $labels.cluster }} is down'
"""

ALERTMANAGER = """
route:
  receiver: sink
  group_by: [alertname, cluster]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
- name: sink
  webhook_configs:
  - url: {sink}/am-hook
"""


class NodeWriter(threading.Thread):
    """Pushes `node_up` for three nodes of each cluster every 0.3 s; `down` says which."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.down: set[str] = set()
        self.stop = threading.Event()
        self.errors: list[BaseException] = []

    def run(self) -> None:
        while not self.stop.is_set():
            now = int(time.time() * 1000)
            try:
                for cluster in ("eu", "us"):
                    series = []
                    for n in (1, 2, 3):
                        instance = f"{cluster}-{n}"
                        value = 0.0 if instance in self.down else 1.0
                        labels = (("__name__", "node_up"), ("instance", instance))
                        series.append((labels, [now], [value]))
                    body = encode_write_request(WriteBatch.from_series(series))
                    post_write_as(self.url, body, f"token-{cluster}")
            except BaseException as exc:  # reported by the test
                self.errors.append(exc)
                return
            self.stop.wait(0.3)


def get_json(url: str) -> Any:
    status, body = http_get(url)
    assert status == 200, body
    return json.loads(body)


@pytest.fixture
def sink() -> Any:
    s = Sink()
    yield s
    s.close()


def test_global_rule_fires_and_resolves_through_alertmanager_and_webhook(
    tmp_path: Path, sink: Sink
) -> None:
    am, am_url = start_alertmanager(tmp_path / "am", ALERTMANAGER.format(sink=sink.url))
    try:
        (tmp_path / "agg").mkdir()
        (tmp_path / "agg" / "rules.yml").write_text(RULES)
        config = f"""
clusters:
  - {{name: eu, token: token-eu}}
  - {{name: us, token: token-us}}
rules:
  files: [rules.yml]
  evaluation_interval: 1s
alerting:
  external_url: http://agg.example:9095
  alertmanagers: [{{url: "{am_url}", timeout: 5s}}]
  webhooks: [{{url: "{sink.url}/api/v2/alerts", name: notification-manager}}]
"""
        agg, agg_url = start_aggregator(tmp_path / "agg", config=config)
        writer = NodeWriter(agg_url)
        writer.down = {"eu-1", "us-2"}
        writer.start()
        try:
            _fire_and_resolve(agg_url, am_url, sink, writer)
        finally:
            writer.stop.set()
            writer.join(timeout=5)
            agg.stop()
        assert writer.errors == []
    finally:
        am.stop()


def _alerts(agg_url: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for alert in get_json(f"{agg_url}/api/v1/alerts")["data"]["alerts"]:
        out.setdefault(alert["labels"]["alertname"], []).append(alert)
    return out


def _fire_and_resolve(agg_url: str, am_url: str, sink: Sink, writer: NodeWriter) -> None:
    # Pending first (for: 2s), then firing, in the service.
    pending = wait_for(
        lambda: [
            a for a in _alerts(agg_url).get("ClustersLosingNodes", []) if a["state"] == "pending"
        ],
        timeout=20,
        what="the global alert to be pending",
    )
    assert pending[0]["labels"] == {
        "alertname": "ClustersLosingNodes",
        "scope": "fleet",
        "severity": "critical",
    }
    wait_for(
        lambda: [
            a for a in _alerts(agg_url).get("ClustersLosingNodes", []) if a["state"] == "firing"
        ],
        timeout=20,
        what="the global alert to fire",
    )

    # In Alertmanager, with its annotations and a link back to the expression.
    def in_alertmanager() -> list[dict[str, Any]]:
        alerts = get_json(f"{am_url}/api/v2/alerts")
        return [a for a in alerts if a["labels"].get("alertname") == "ClustersLosingNodes"]

    [am_alert] = wait_for(in_alertmanager, timeout=15, what="the alert in Alertmanager")
    assert am_alert["labels"] == {
        "alertname": "ClustersLosingNodes",
        "scope": "fleet",
        "severity": "critical",
    }
    assert am_alert["annotations"] == {"summary": "2 clusters are losing nodes"}
    assert am_alert["status"]["state"] == "active"
    assert am_alert["generatorURL"] == (
        "http://agg.example:9095/graph?g0.expr=count%28sum+by+%28cluster%29+"
        "%28node_up+%3D%3D+0%29%29+%3E%3D+2&g0.tab=1"
    )

    # Alertmanager's webhook receiver got it.
    def am_notified(status: str) -> list[dict[str, Any]]:
        return [
            b
            for b in sink.bodies("/am-hook")
            if isinstance(b, dict)
            and b["status"] == status
            and b["groupLabels"].get("alertname") == "ClustersLosingNodes"
        ]

    [firing_note, *_] = wait_for(
        lambda: am_notified("firing"), timeout=15, what="Alertmanager's firing notification"
    )
    assert firing_note["alerts"][0]["annotations"] == {"summary": "2 clusters are losing nodes"}

    # The notification-manager stand-in got webhook payloads, one per cluster.
    def webhook(alertname: str, status: str) -> dict[str, dict[str, Any]]:
        out = {}
        for body in sink.bodies("/api/v2/alerts"):
            assert isinstance(body, dict)
            if body["status"] != status:
                continue
            names = {a["labels"]["alertname"] for a in body["alerts"]}
            if alertname in names:
                out[body["groupKey"]] = body
        return out

    by_cluster = wait_for(
        lambda: (lambda w: w if len(w) == 2 else None)(webhook("NodeDown", "firing")),
        timeout=15,
        what="webhook payloads for both clusters",
    )
    assert sorted(by_cluster) == ['{}:{cluster="eu"}', '{}:{cluster="us"}']
    eu = by_cluster['{}:{cluster="eu"}']
    assert eu["receiver"] == "notification-manager"
    assert eu["version"] == "4"
    assert eu["groupLabels"] == {"cluster": "eu"}
    assert eu["commonLabels"] == {
        "alertname": "NodeDown",
        "cluster": "eu",
        "instance": "eu-1",
        "severity": "warning",
    }
    assert eu["externalURL"] == "http://agg.example:9095"
    [node] = eu["alerts"]
    assert node["status"] == "firing"
    assert node["annotations"] == {"summary": "eu-1 in eu is down"}
    assert node["endsAt"] == "0001-01-01T00:00:00Z"
    fleet = webhook("ClustersLosingNodes", "firing")
    assert list(fleet) == ["{}:{}"]  # a global alert: no cluster to group by

    # The nodes come back: resolved in the service, in Alertmanager, at both receivers.
    writer.down = set()
    wait_for(lambda: not _alerts(agg_url), timeout=15, what="the alerts to resolve")
    wait_for(lambda: not in_alertmanager(), timeout=15, what="Alertmanager to resolve it")
    [resolved_note, *_] = wait_for(
        lambda: am_notified("resolved"), timeout=15, what="Alertmanager's resolved notification"
    )
    assert resolved_note["alerts"][0]["status"] == "resolved"
    resolved = wait_for(
        lambda: (lambda w: w if len(w) == 2 else None)(webhook("NodeDown", "resolved")),
        timeout=15,
        what="resolved webhook payloads for both clusters",
    )
    assert all(b["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z" for b in resolved.values())

    metrics = urllib.request.urlopen(f"{agg_url}/metrics", timeout=5).read().decode()
    assert (
        f'aggregator_notifications_sent_total{{alertmanager="{am_url}/api/v2/alerts"}}' in metrics
    )
