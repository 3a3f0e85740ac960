"""The global-view page in a real headless Chromium (Debian's), against the real service.

Two push clusters write what node-exporter, cAdvisor and kube-state-metrics
would export: cluster `east` has node-exporter and cAdvisor, cluster `west`
only cAdvisor and kube-state-metrics capacity series, so the page must fall
back per cluster. Two KubeSphere workspaces: `ws-alpha` spans both clusters,
`ws-beta` lives in `west` only. Counters grow at fixed rates, so every figure
on the page is known. The screenshot is kept in `build/test-artifacts/`.
"""

from __future__ import annotations

import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from remote_write.batch import WriteBatch
from remote_write.codec import encode_write_request
from tests.support.realparts import REPO, start_aggregator

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is a dev dependency (scripts/setup dev)"
)

ARTIFACTS = REPO / "build" / "test-artifacts"
TOKENS = {"east": "east-token", "west": "west-token"}
GIB = 1 << 30
STEP_S = 15
POINTS = 41  # ten minutes at 15 s
NS_LABELS = "kube_namespace_labels"
WORKSPACE = "label_kubesphere_io_workspace"


def _counter(name: str, labels: dict[str, str], per_second: float, start_ms: int):
    ts = [start_ms + i * STEP_S * 1000 for i in range(POINTS)]
    pairs = tuple(sorted({"__name__": name, **labels}.items()))
    return pairs, ts, [per_second * STEP_S * i for i in range(POINTS)]


def _gauge(name: str, labels: dict[str, str], value: float, start_ms: int):
    ts = [start_ms + i * STEP_S * 1000 for i in range(POINTS)]
    return tuple(sorted({"__name__": name, **labels}.items())), ts, [value] * POINTS


def _east(start: int) -> list:
    series = []
    for cpu in range(4):
        base = {"instance": "node-1:9100", "job": "node", "cpu": str(cpu)}
        series.append(_counter("node_cpu_seconds_total", {"mode": "user", **base}, 0.25, start))
        series.append(_counter("node_cpu_seconds_total", {"mode": "idle", **base}, 0.75, start))
    node = {"instance": "node-1:9100", "job": "node"}
    series.append(_gauge("node_memory_MemTotal_bytes", node, 8 * GIB, start))
    series.append(_gauge("node_memory_MemAvailable_bytes", node, 6 * GIB, start))
    pod = {"container": "web", "pod": "web-0", "namespace": "alpha-web"}
    series.append(_counter("container_cpu_usage_seconds_total", pod, 0.2, start))
    series.append(_gauge("container_memory_working_set_bytes", pod, 0.25 * GIB, start))
    series.append(_gauge(NS_LABELS, {"namespace": "alpha-web", WORKSPACE: "ws-alpha"}, 1, start))
    return series


def _west(start: int) -> list:
    series = []
    for ns, cores, mem in (("alpha-app", 0.5, 1.0), ("beta-app", 0.25, 0.5)):
        pod = {"container": "app", "pod": f"{ns}-0", "namespace": ns}
        series.append(_counter("container_cpu_usage_seconds_total", pod, cores, start))
        series.append(_gauge("container_memory_working_set_bytes", pod, mem * GIB, start))
        workspace = "ws-alpha" if ns.startswith("alpha") else "ws-beta"
        series.append(_gauge(NS_LABELS, {"namespace": ns, WORKSPACE: workspace}, 1, start))
    node = {"node": "west-1"}
    capacity = "kube_node_status_capacity"
    series.append(_gauge(capacity, {"resource": "cpu", **node}, 2, start))
    series.append(_gauge(capacity, {"resource": "memory", **node}, 4 * GIB, start))
    return series


def _write(url: str, cluster: str, series: list) -> None:
    body = encode_write_request(WriteBatch.from_series(series))
    request = urllib.request.Request(
        f"{url}/api/v1/write",
        data=body,
        headers={
            "Content-Encoding": "snappy",
            "Content-Type": "application/x-protobuf",
            "Authorization": f"Bearer {TOKENS[cluster]}",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        assert resp.status == 204


@pytest.fixture
def chromium() -> str:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed: run scripts/system-deps (or scripts/test)")
    return binary


@pytest.fixture
def service(tmp_path: Path) -> Iterator[str]:
    config = "clusters:\n" + "".join(
        f"  - name: {name}\n    token: {token}\n" for name, token in TOKENS.items()
    )
    proc, url = start_aggregator(tmp_path / "agg", config=config)
    try:
        start = int(time.time() * 1000) - (POINTS - 1) * STEP_S * 1000 - 2000
        _write(url, "east", _east(start))
        _write(url, "west", _west(start))
        yield url
    finally:
        proc.stop()


def _text(page, selector: str) -> str:
    return " ".join(page.locator(selector).inner_text().split())


def test_global_view_shows_clusters_usage_and_workspaces(service: str, chromium: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=args)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(service + "/")
            page.wait_for_selector("body[data-loaded=true]", timeout=20_000)

            assert _text(page, "#summary") == "2 clusters, 2 healthy"
            east = _text(page, "tr[data-cluster=east]")
            west = _text(page, "tr[data-cluster=west]")
            assert "push" in east
            assert "healthy" in east
            assert "unhealthy" not in east
            # east: node-exporter, 4 CPUs a quarter busy; 2 of 8 GiB used.
            assert "1 cores / 4 cores" in _text(page, "tr[data-cluster=east] td.cpu")
            assert "2.0 GiB / 8.0 GiB" in _text(page, "tr[data-cluster=east] td.mem")
            # west: cAdvisor usage against kube-state-metrics capacity.
            assert "0.75 cores / 2 cores" in _text(page, "tr[data-cluster=west] td.cpu")
            assert "1.5 GiB / 4.0 GiB" in _text(page, "tr[data-cluster=west] td.mem")
            assert "push" in west

            alpha = _text(page, "tr[data-workspace=ws-alpha]")
            beta = _text(page, "tr[data-workspace=ws-beta]")
            assert "east, west" in alpha
            assert _text(page, "tr[data-workspace=ws-alpha] td.cpu") == "0.7"
            assert _text(page, "tr[data-workspace=ws-alpha] td.mem") == "1.3 GiB"
            assert "west" in beta
            assert "east" not in beta
            assert _text(page, "tr[data-workspace=ws-beta] td.cpu") == "0.25"

            page.fill("#query", "sum by (cluster) (rate(container_cpu_usage_seconds_total[5m]))")
            page.click("button[type=submit]")
            page.wait_for_selector("#plot svg path.series", timeout=20_000)
            drawn = page.locator("#plot path.series").evaluate_all(
                "paths => paths.map(p => p.dataset.series)"
            )
            assert sorted(drawn) == ['{cluster="east"}', '{cluster="west"}']
            assert _text(page, "#query-status").startswith("2 series")
            page.screenshot(path=str(ARTIFACTS / "global-view.png"), full_page=True)
            assert errors == [], errors
        finally:
            browser.close()
