"""Targets from the config: static ones, and Kubernetes pods that ask to be scraped.

Pods are found the way the usual Prometheus example config finds them:
`prometheus.io/scrape: "true"` selects a running pod with an IP; the port is
`prometheus.io/port` (else the pod's first declared container port), the
path `prometheus.io/path` (else the job's `metrics_path`) and the scheme
`prometheus.io/scheme` (else the job's). Series get `namespace` and `pod`.

The pod list comes from the Kubernetes API (`GET /api/v1/pods`, or per
namespace), re-listed every `refresh_interval` (no watch: an edge cluster's
pods change rarely and a list is one small request). In a pod, the in-cluster
address (`KUBERNETES_SERVICE_HOST`/`_PORT`) and the service account token
and CA are used when present; `api_server` overrides the address.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from aggregator.edge.config import KubernetesSD, ScrapeConfig
from aggregator.edge.http import Client
from aggregator.edge.scrape import ScrapeManager, Target

log = logging.getLogger(__name__)

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
SCRAPE = "prometheus.io/scrape"
PORT = "prometheus.io/port"
PATH = "prometheus.io/path"
SCHEME = "prometheus.io/scheme"


def static_targets(job: ScrapeConfig) -> list[Target]:
    out = []
    for group in job.static:
        for address in group.targets:
            labels = dict(group.labels)
            labels["job"] = job.job_name
            labels["instance"] = address
            out.append(
                Target(
                    job=job.job_name,
                    url=f"{job.scheme}://{address}{job.metrics_path}",
                    labels=tuple(sorted(labels.items())),
                    interval_ms=job.interval_ms,
                    timeout_ms=job.timeout_ms,
                )
            )
    return out


def pod_targets(job: ScrapeConfig, pods: list[dict[str, Any]]) -> list[Target]:
    """The targets of a pod list (the `items` of a PodList)."""
    out = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        status = pod.get("status") or {}
        if annotations.get(SCRAPE) != "true" or status.get("phase") != "Running":
            continue
        ip = status.get("podIP")
        if not ip:
            continue
        port = annotations.get(PORT)
        if not port:
            declared = [
                p.get("containerPort")
                for c in (pod.get("spec") or {}).get("containers") or []
                for p in c.get("ports") or []
            ]
            port = str(declared[0]) if declared and declared[0] else None
        if not port:
            continue
        path = annotations.get(PATH) or job.metrics_path
        scheme = annotations.get(SCHEME) or job.scheme
        host = f"[{ip}]" if ":" in ip else ip
        address = f"{host}:{port}"
        labels = {
            "job": job.job_name,
            "instance": address,
            "namespace": str(meta.get("namespace", "")),
            "pod": str(meta.get("name", "")),
        }
        out.append(
            Target(
                job=job.job_name,
                url=f"{scheme}://{address}{path if path.startswith('/') else '/' + path}",
                labels=tuple(sorted((k, v) for k, v in labels.items() if v)),
                interval_ms=job.interval_ms,
                timeout_ms=job.timeout_ms,
            )
        )
    return out


class PodDiscovery:
    """Lists pods every refresh interval and hands the job's targets to the scrape manager."""

    def __init__(self, job: ScrapeConfig, sd: KubernetesSD, index: int, manager: ScrapeManager):
        self.job = job
        self.sd = sd
        self.manager = manager
        self.source = f"{job.job_name}/kubernetes/{index}"
        self.last_error: str | None = None

    def _endpoint(self) -> tuple[str, dict[str, str], Any]:
        headers: dict[str, str] = {}
        token_file = SERVICE_ACCOUNT / "token"
        if token_file.is_file():
            headers["Authorization"] = f"Bearer {token_file.read_text().strip()}"
        ctx = None
        ca = SERVICE_ACCOUNT / "ca.crt"
        if ca.is_file():
            import ssl

            ctx = ssl.create_default_context(cafile=str(ca))
        base = self.sd.api_server
        if not base:
            host = os.environ.get("KUBERNETES_SERVICE_HOST")
            port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise RuntimeError(
                    "not in a Kubernetes pod (no KUBERNETES_SERVICE_HOST) and no api_server set"
                )
            host = f"[{host}]" if ":" in host else host
            base = f"https://{host}:{port}"
        return base, headers, ctx

    async def list_pods(self, session: Client) -> list[dict[str, Any]]:
        base, headers, ctx = self._endpoint()
        paths = (
            [f"/api/v1/namespaces/{ns}/pods" for ns in self.sd.namespaces]
            if self.sd.namespaces
            else ["/api/v1/pods"]
        )
        pods: list[dict[str, Any]] = []
        for path in paths:
            resp = await session.request(
                "GET", base + path, headers=headers, ssl_context=ctx, timeout_s=30
            )
            if resp.status != 200:
                raise RuntimeError(f"GET {path}: HTTP {resp.status}: {resp.text()[:200]}")
            body = resp.json()
            pods.extend(body.get("items") or [])
        return pods

    async def run(self, session: Client) -> None:
        while True:
            try:
                pods = await self.list_pods(session)
                await self.manager.set_targets(self.source, pod_targets(self.job, pods))
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the last targets; try again next round
                if self.last_error != str(exc):
                    log.warning(
                        "pod discovery failed", extra={"job": self.job.job_name, "err": str(exc)}
                    )
                self.last_error = str(exc)
            await asyncio.sleep(self.sd.refresh_interval_ms / 1000)
