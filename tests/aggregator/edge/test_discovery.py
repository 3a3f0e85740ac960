"""Pod discovery by `prometheus.io/*` annotations.

A real Kubernetes API server cannot run here, so a fake one (an aiohttp app
answering `GET /api/v1/pods` and the per-namespace list with a PodList, as
the API does) stands in for it; the pods it lists then point at a real local
metrics endpoint that the agent scrapes.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from aggregator.edge.config import KubernetesSD, ScrapeConfig
from aggregator.edge.discovery import PodDiscovery, pod_targets
from aggregator.edge.http import Client
from aggregator.edge.scrape import ScrapeManager
from aggregator.edge.window import Window
from storage.labels import Matcher


def pod(
    name: str,
    ns: str,
    ip: str,
    annotations: dict[str, str],
    phase: str = "Running",
    ports: list[int] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": {"containers": [{"ports": [{"containerPort": p} for p in ports or []]}]},
        "status": {"phase": phase, "podIP": ip},
    }


JOB = ScrapeConfig(job_name="pods", interval_ms=15_000, timeout_ms=10_000)


def test_annotations_decide_target_port_path_and_scheme() -> None:
    pods = [
        pod(
            "a",
            "ns1",
            "10.0.0.1",
            {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "8080",
                "prometheus.io/path": "/custom",
            },
        ),
        pod("b", "ns1", "10.0.0.2", {"prometheus.io/scrape": "true"}, ports=[9000]),
        pod("c", "ns2", "10.0.0.3", {"prometheus.io/scrape": "false", "prometheus.io/port": "1"}),
        pod(
            "d",
            "ns2",
            "10.0.0.4",
            {"prometheus.io/scrape": "true", "prometheus.io/port": "1"},
            phase="Pending",
        ),
        pod("e", "ns2", "10.0.0.5", {"prometheus.io/scrape": "true"}),  # no port at all
    ]
    targets = pod_targets(JOB, pods)
    assert [t.url for t in targets] == [
        "http://10.0.0.1:8080/custom",
        "http://10.0.0.2:9000/metrics",
    ]
    assert dict(targets[0].labels) == {
        "instance": "10.0.0.1:8080",
        "job": "pods",
        "namespace": "ns1",
        "pod": "a",
    }


async def test_discovered_pods_are_scraped(aiohttp_server: Any) -> None:
    metrics = web.Application()

    async def expose(_: web.Request) -> web.Response:
        return web.Response(text="# TYPE app_up gauge\napp_up 1\n", content_type="text/plain")

    metrics.router.add_get("/m", expose)
    target = await aiohttp_server(metrics)

    api = web.Application()
    seen: list[str] = []

    async def pods(request: web.Request) -> web.Response:
        seen.append(request.path)
        annotations = {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(target.port),
            "prometheus.io/path": "/m",
        }
        return web.json_response(
            {"kind": "PodList", "items": [pod("app-1", "shop", "127.0.0.1", annotations)]}
        )

    api.router.add_get("/api/v1/namespaces/{ns}/pods", pods)
    fake = await aiohttp_server(api)

    window = Window(60_000)
    async with Client() as session:
        manager = ScrapeManager(window, session)
        sd = KubernetesSD(api_server=str(fake.make_url("")).rstrip("/"), namespaces=("shop",))
        discovery = PodDiscovery(JOB, sd, 0, manager)
        found = await discovery.list_pods(session)
        await manager.set_targets(discovery.source, pod_targets(JOB, found))
        [loop] = manager.loops.values()
        assert await loop.scrape_once() == 1
        await manager.stop()
    assert seen == ["/api/v1/namespaces/shop/pods"]
    async with window.querier(0, 1 << 62) as q:
        ss = await q.select([Matcher.eq("__name__", "app_up")], 0, 1 << 62)
    assert dict(ss.labels[0]) == {
        "__name__": "app_up",
        "instance": f"127.0.0.1:{target.port}",
        "job": "pods",
        "namespace": "shop",
        "pod": "app-1",
    }
