"""The edge agent end to end: real node-exporter, real Alertmanager, the host as a process.

- a rule the host assigns fires on the agent and its alert reaches Alertmanager
  through the host, with the cluster label;
- a rule changed in the host's edge rule file takes effect on the agent
  without a restart of either;
- a metric no rule forwards is answered at the host through the tunnel;
- with the host stopped and restarted, every forwarded sample and alert
  arrives, in sequence, none twice.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.support.edgeparts import agent_metrics, start_agent, start_node_exporter
from tests.support.realparts import (
    Sink,
    free_port,
    http_get,
    start_aggregator,
    start_alertmanager,
    start_prometheus,
    wait_for,
)

TOKEN = "edge-secret-1"

AGENT = """
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: node
    static_configs: [{targets: ["%(node)s"]}]
edge: {queue_dir: "@QUEUE@", listen: "@LISTEN@", flush_interval: 1s}
"""

HOST = """
clusters:
  - name: edge-1
    token: %(token)s
edge:
  rule_files: [edge-rules.yml]
alerting:
  alertmanagers: [{url: "%(am)s"}]
"""

RULES_V1 = """
groups:
  - name: node
    cluster: edge-1
    interval: 1s
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: NodeExporterUp
        expr: up{job="node"} == 1
        labels: {severity: info}
        annotations: {summary: "node-exporter {{ $labels.instance }} is up"}
"""

RULES_V2 = (
    RULES_V1
    + """      - record: edge:node_load1
        expr: node_load1 * 1
"""
)

AM_CONFIG = """
route: {receiver: sink, group_wait: 1s, group_interval: 1s, repeat_interval: 1h}
receivers:
  - name: sink
    webhook_configs: [{url: "%s/hook"}]
"""


def query(url: str, expr: str) -> list[dict]:
    q = urllib.parse.urlencode({"query": expr})
    status, body = http_get(f"{url}/api/v1/query?{q}", timeout=10)
    assert status == 200, body
    return json.loads(body)["data"]["result"]


def clusters(url: str) -> dict[str, dict]:
    status, body = http_get(f"{url}/api/v1/clusters", timeout=10)
    assert status == 200, body
    return {c["name"]: c for c in json.loads(body)["data"]}


@pytest.fixture
def node_exporter(tmp_path):
    proc, address = start_node_exporter(tmp_path / "node")
    yield address
    proc.stop()


def test_host_rules_alert_change_and_reach_back(tmp_path: Path, node_exporter: str) -> None:
    sink = Sink()
    am, am_url = start_alertmanager(tmp_path / "am", AM_CONFIG % sink.url)
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    rules = host_dir / "edge-rules.yml"
    rules.write_text(RULES_V1)
    host, url = start_aggregator(host_dir, config=HOST % {"token": TOKEN, "am": am_url})
    agent, metrics_url = start_agent(
        tmp_path / "agent",
        host=url,
        cluster="edge-1",
        token=TOKEN,
        config=AGENT % {"node": node_exporter},
    )
    try:
        # The alert: agent -> host -> Alertmanager -> webhook, with the cluster label.
        def alert_seen():
            for body in sink.bodies("/hook"):
                for a in body["alerts"]:
                    if a["labels"].get("alertname") == "NodeExporterUp":
                        return a
            return None

        alert = wait_for(alert_seen, timeout=60, what="the edge alert at Alertmanager's webhook")
        assert alert["labels"]["cluster"] == "edge-1"
        assert alert["labels"]["severity"] == "info"
        assert alert["annotations"]["summary"] == f"node-exporter {node_exporter} is up"

        # The forwarded recording rule is stored at the host under the cluster.
        result = wait_for(
            lambda: query(url, 'job:up:sum{cluster="edge-1"}'), timeout=30, what="job:up:sum"
        )
        assert result[0]["metric"] == {"__name__": "job:up:sum", "cluster": "edge-1", "job": "node"}
        assert result[0]["value"][1] == "1"

        # Reach-back: node_cpu_seconds_total is forwarded by no rule; the host answers
        # it from the agent's window through the tunnel.
        cpu = wait_for(
            lambda: query(url, 'count(node_cpu_seconds_total{cluster="edge-1",mode="idle"})'),
            timeout=30,
            what="node_cpu_seconds_total through the tunnel",
        )
        assert int(cpu[0]["value"][1]) >= 1
        status = clusters(url)["edge-1"]["edge"]
        assert status["tunnel_connected"] is True
        assert status["rules_in_sync"] is True
        assert status["rule_load_errors"] == []
        assert agent_metrics(metrics_url)["aggregator_edge_tunnel_requests_total"] >= 1
        # Nothing forwarded it: the head holds no node_cpu series (ask without the tunnel
        # by reading a metric the head would have only if forwarded).
        assert not query(url, 'edge:node_load1{cluster="edge-1"}')

        # A rule changed on the host runs on the agent without a restart.
        rules.write_text(RULES_V2)
        load = wait_for(
            lambda: query(url, 'edge:node_load1{cluster="edge-1"}'),
            timeout=30,
            what="the rule added on the host to produce results",
        )
        assert load[0]["metric"]["instance"] == node_exporter
        assert agent.running()
        assert host.running()
        wait_for(
            lambda: clusters(url)["edge-1"]["edge"]["rules_in_sync"],
            timeout=40,
            what="the agent to report the new rules",
        )
    finally:
        agent.stop()
        host.stop()
        am.stop()
        sink.close()


OUTAGE_RULES = """
groups:
  - name: ticks
    cluster: edge-1
    interval: 1s
    rules:
      - record: edge:tick
        expr: time()
      - alert: EveryTenSeconds
        expr: vector(time() %% 20) < 10
"""


def _alert_records(log_text: str) -> list[tuple[int, int]]:
    """(sequence, alerts) of every alert record a host logged receiving."""
    out = []
    for line in log_text.splitlines():
        if 'msg="edge alerts received"' in line:
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            out.append((int(fields["seq"]), int(fields["alerts"])))
    return out


def test_outage_delivers_everything_in_order_once(tmp_path: Path, node_exporter: str) -> None:
    port = free_port()
    config = HOST % {"token": TOKEN, "am": "http://127.0.0.1:1"}
    dirs = [tmp_path / "host-1", tmp_path / "host-2"]  # one log per run, one data dir
    for d in dirs:
        d.mkdir()
        (d / "edge-rules.yml").write_text(OUTAGE_RULES.replace("%%", "%"))
    data = tmp_path / "data"
    host, url = start_aggregator(dirs[0], config=config, port=port, data_dir=data)
    agent, metrics_url = start_agent(
        tmp_path / "agent",
        host=url,
        cluster="edge-1",
        token=TOKEN,
        config=AGENT % {"node": node_exporter},
    )
    hosts = [host]
    try:
        wait_for(lambda: query(url, 'edge:tick{cluster="edge-1"}'), timeout=40, what="ticks")
        host.stop()
        down_at = time.time()
        # While the host is down the agent queues on disk.
        wait_for(
            lambda: agent_metrics(metrics_url)["aggregator_edge_queue_records"] >= 5,
            timeout=30,
            what="records to queue up while the host is down",
        )
        time.sleep(max(0.0, 25 - (time.time() - down_at)))
        queued = agent_metrics(metrics_url)["aggregator_edge_queue_records"]
        host, url = start_aggregator(dirs[1], config=config, port=port, data_dir=data)
        hosts.append(host)
        wait_for(
            lambda: agent_metrics(metrics_url)["aggregator_edge_queue_records"] == 0,
            timeout=60,
            what="the queue to drain after the host came back",
        )
        agent.stop()  # nothing more is produced from here (stop flushes into the queue)
        assert queued >= 5

        # Every tick from the first to the last arrived: one sample per second, values
        # equal to their timestamps (so nothing was reordered or mixed up).
        series = query(url, 'edge:tick{cluster="edge-1"}[10m]')
        assert len(series) == 1
        points = [(float(t), float(v)) for t, v in series[0]["values"]]
        stamps = [t for t, _ in points]
        assert stamps == sorted(set(stamps)), "timestamps repeat or go back"
        gaps = [b - a for a, b in itertools.pairwise(stamps) if b - a > 1.001]
        assert not gaps, f"ticks missing: gaps {gaps[:5]}"
        assert all(abs(v - t) < 1e-6 for t, v in points)
        assert stamps[-1] - stamps[0] > 30  # spans the outage

        status = clusters(url)["edge-1"]["edge"]
        assert status["duplicates"] == 0
        assert status["sequence_gaps"] == 0
        # Every alert record arrived once, in sequence order, across both host runs.
        records = _alert_records(hosts[0].log_text()) + _alert_records(host.log_text())
        seqs = [s for s, _ in records]
        assert seqs == sorted(set(seqs)), f"alert records repeated or out of order: {seqs}"
        assert len(records) >= 2
        assert any(s > 0 for s in seqs)
    finally:
        agent.stop()
        for h in hosts:
            h.stop()


LOCAL_PROMETHEUS = """
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: local
    static_configs: [{targets: ["127.0.0.1:%(port)d"]}]
"""


def test_reach_back_also_reads_the_members_own_prometheus(
    tmp_path: Path, node_exporter: str
) -> None:
    port = free_port()
    prom, prom_url = start_prometheus(
        tmp_path / "prom", LOCAL_PROMETHEUS % {"port": port}, port=port
    )
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    (host_dir / "edge-rules.yml").write_text(RULES_V1)
    host, url = start_aggregator(
        host_dir, config=HOST % {"token": TOKEN, "am": "http://127.0.0.1:1"}
    )
    config = AGENT % {"node": node_exporter}
    config = config.replace(
        "flush_interval: 1s}", f'flush_interval: 1s, remote_read: "{prom_url}"}}'
    )
    agent, metrics_url = start_agent(
        tmp_path / "agent", host=url, cluster="edge-1", token=TOKEN, config=config
    )
    try:
        # The agent does not scrape Prometheus: its series come from the member's own TSDB.
        found = wait_for(
            lambda: query(url, 'prometheus_build_info{cluster="edge-1",job="local"}'),
            timeout=40,
            what="the member Prometheus's series through the tunnel",
        )
        assert found[0]["metric"]["cluster"] == "edge-1"
        # ...and the window's own series still answer in the same query.
        both = query(url, 'count by (job) ({cluster="edge-1",__name__="up"})')
        assert {r["metric"]["job"] for r in both} == {"local", "node"}
        assert agent_metrics(metrics_url)["aggregator_edge_local_read_errors_total"] == 0
    finally:
        agent.stop()
        host.stop()
        prom.stop()
