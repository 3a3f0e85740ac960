"""Every query of every shipped dashboard, run against the service (a real process)
holding the data those dashboards are for, and answering with data.

Two members push what kube-state-metrics, cAdvisor and node-exporter export (a few
series of each, 10 minutes at 15 s); a third, `host`, pushes the service's own
`/metrics`, scraped twice and relabelled the way the chart's ServiceMonitor does
(`cluster` -> `member`) — so the health dashboard's metric names are checked against
the service's real ones. A pull member that never answers, an Alertmanager that is
down, a rule group, a rejected sample and a refused write make the failure-side
metrics exist. Grafana's variables get the values a user would pick.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helm.dashboards import (
    files,
    label_values_query,
    load,
    substitute,
    targets,
    used_variables,
    variables,
)
from tests.support.fleetload import compress, encode_labels, encode_series
from tests.support.realparts import free_port, http_get, post_write_as, start_aggregator

STEP_MS = 15_000
POINTS = 40
PICKED = {"cluster": "eu-1", "workspace": "ws-a|ws-b"}
"""What a user picks in the dashboards' variables."""

RULES = """groups:
  - name: fleet
    interval: 1s
    rules:
      - record: cluster:up:sum
        expr: sum by (cluster) (up)
"""


def _member_series(cluster: str) -> list[tuple[list[tuple[str, str]], str]]:
    """(labels, kind) of a small member: kind is counter, gauge or a fixed value."""
    out: list[tuple[list[tuple[str, str]], str]] = []
    for node in ("n1", "n2"):
        inst = f"{node}:9100"
        out += [
            ([("__name__", "up"), ("instance", inst), ("job", "node-exporter")], "1"),
            ([("__name__", "kube_node_info"), ("node", node)], "1"),
            ([("__name__", "node_memory_MemTotal_bytes"), ("instance", inst)], "8e9"),
            ([("__name__", "node_memory_MemAvailable_bytes"), ("instance", inst)], "gauge"),
            (
                [
                    ("__name__", "node_filesystem_size_bytes"),
                    ("fstype", "ext4"),
                    ("instance", inst),
                    ("mountpoint", "/"),
                ],
                "1e11",
            ),
            (
                [
                    ("__name__", "node_filesystem_avail_bytes"),
                    ("fstype", "ext4"),
                    ("instance", inst),
                    ("mountpoint", "/"),
                ],
                "gauge",
            ),
        ]
        for mode in ("idle", "user"):
            labels = [("__name__", "node_cpu_seconds_total"), ("cpu", "0")]
            out.append(([*labels, ("instance", inst), ("mode", mode)], "counter"))
        for resource in ("cpu", "memory"):
            out.append(
                (
                    [
                        ("__name__", "kube_node_status_allocatable"),
                        ("node", node),
                        ("resource", resource),
                    ],
                    "4",
                )
            )
    out.append(([("__name__", "up"), ("instance", "ksm:8080"), ("job", "ksm")], "0"))
    for ns, ws in (("shop", "ws-a"), ("data", "ws-b")):
        out.append(
            (
                [
                    ("__name__", "kube_namespace_labels"),
                    ("label_kubesphere_io_workspace", ws),
                    ("namespace", ns),
                ],
                "1",
            )
        )
        pod = [("namespace", ns), ("pod", f"{ns}-0")]
        container = [("container", "app"), *pod]
        out += [
            ([("__name__", "container_cpu_usage_seconds_total"), *container], "counter"),
            ([("__name__", "container_memory_working_set_bytes"), *container], "gauge"),
            ([("__name__", "container_network_receive_bytes_total"), *pod], "counter"),
            ([("__name__", "container_network_transmit_bytes_total"), *pod], "counter"),
            ([("__name__", "kube_pod_info"), ("node", "n1"), *pod], "1"),
            ([("__name__", "kube_pod_status_phase"), ("phase", "Running"), *pod], "1"),
            ([("__name__", "kube_pod_status_phase"), ("phase", "Pending"), *pod], "0"),
            ([("__name__", "kube_pod_container_status_restarts_total"), *container], "counter"),
        ]
        for resource in ("cpu", "memory"):
            out.append(
                (
                    [
                        ("__name__", "kube_pod_container_resource_requests"),
                        *container,
                        ("resource", resource),
                    ],
                    "1",
                )
            )
    return out


def _push_member(url: str, cluster: str, now_ms: int) -> None:
    ts = now_ms - STEP_MS * np.arange(POINTS, 0, -1, dtype=np.int64)
    fields = []
    for i, (labels, kind) in enumerate(_member_series(cluster)):
        if kind == "counter":
            values = np.arange(POINTS, dtype=np.float64) * (i + 1)
        elif kind == "gauge":
            values = 1e9 + np.sin(np.arange(POINTS)) * 1e8
        else:
            values = np.full(POINTS, float(kind))
        fields.append(encode_series(encode_labels(sorted(labels)), ts, values))
    assert post_write_as(url, compress(fields), f"token-{cluster}") == 204


def _push_own_metrics(url: str, ts_ms: int) -> None:
    """The service's /metrics as a Prometheus would remote-write it after the chart's
    ServiceMonitor relabelling (`cluster` renamed `member`)."""
    status, text = http_get(f"{url}/metrics")
    assert status == 200
    fields = []
    ts = np.array([ts_ms], dtype=np.int64)
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if math.isnan(sample.value):
                continue
            labels = dict(sample.labels)
            if "cluster" in labels:
                labels["member"] = labels.pop("cluster")
            labels.update({"__name__": sample.name, "instance": "agg-0:9095", "job": "agg"})
            pairs = sorted((k, v) for k, v in labels.items() if v != "")
            fields.append(encode_series(encode_labels(pairs), ts, np.array([sample.value])))
    assert post_write_as(url, compress(fields), "token-host") == 204


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir: Path = tmp_path_factory.mktemp("dashboards")
    (workdir / "rules.yml").write_text(RULES)
    closed = f"http://127.0.0.1:{free_port()}"
    config = f"""
clusters:
  - {{name: eu-1, token: token-eu-1}}
  - {{name: us-1, token: token-us-1}}
  - {{name: host, token: token-host}}
  - {{name: far, url: '{closed}', health_check_interval: 1s}}
query:
  workspace_label: workspace
rules:
  files: [rules.yml]
alerting:
  alertmanagers: [{{url: '{closed}'}}]
"""
    proc, url = start_aggregator(workdir, config=config)
    try:
        now_ms = int(time.time() * 1000)
        for cluster in ("eu-1", "us-1"):
            _push_member(url, cluster, now_ms)
        # a rejected sample (an hour ahead) and a refused request (an unknown token)
        body = compress(
            [
                encode_series(
                    encode_labels([("__name__", "ahead")]),
                    np.array([now_ms + 3_600_000]),
                    np.array([1.0]),
                )
            ]
        )
        try:
            post_write_as(url, body, "token-us-1")
        except urllib.error.HTTPError as exc:
            exc.close()
        try:
            post_write_as(url, body, "no-such-token")
        except urllib.error.HTTPError as exc:
            exc.close()
        _get(url, "/api/v1/query", {"query": "up"})  # the query latency histograms
        _get(url, "/api/v1/query_range", {"query": "up", "start": "1", "end": "2", "step": "1"})
        time.sleep(2.5)  # the rule group runs, the pull member fails its checks
        _push_own_metrics(url, int(time.time() * 1000) - 30_000)
        time.sleep(1.0)
        _push_own_metrics(url, int(time.time() * 1000))
        yield url
    finally:
        proc.stop()


def _get(url: str, path: str, params: dict[str, str]) -> dict:
    status, body = http_get(f"{url}{path}?{urllib.parse.urlencode(params)}")
    assert status == 200, body
    data = json.loads(body)
    assert data["status"] == "success"
    return data


@pytest.mark.parametrize("target", targets(), ids=lambda t: t.id)
def test_every_dashboard_query_runs_and_finds_data(service: str, target) -> None:
    expr = substitute(
        target.expr, {k: PICKED[k] for k in used_variables(target.expr) & PICKED.keys()}
    )
    now = time.time()
    data = _get(
        service,
        "/api/v1/query_range",
        {"query": expr, "start": str(now - 600), "end": str(now), "step": "15"},
    )
    assert data["data"]["result"], f"{target.id}: no data for {expr}"


@pytest.mark.parametrize("path", files(), ids=lambda p: p.stem)
def test_every_variable_query_lists_values(service: str, path) -> None:
    for var in variables(load(path)):
        if var["type"] != "query":
            continue
        label, selector = label_values_query(var["query"]["query"])
        params = {"match[]": selector} if selector else {}
        values = _get(service, f"/api/v1/label/{label}/values", params)["data"]
        assert values, var["name"]
        if var["name"] in PICKED:
            assert set(PICKED[var["name"]].split("|")) <= set(values)
