"""Status endpoints: `/api/v1/status/buildinfo`, `/-/healthy`, `/-/ready`, `/metrics`."""

from __future__ import annotations

from aiohttp import web

from aggregator.api.context import BACKEND, BUILD, METRICS
from aggregator.api.responses import success

RULER_FEATURES = {
    "ruler_config_api": "true",
    "alertmanager_config_api": "false",
    "query_sharding": "false",
    "federated_rules": "false",
}
"""What Grafana's alerting UI looks for: `features.ruler_config_api` says the Mimir ruler
API (`/config/v1/rules`) edits rules here."""


async def handle_buildinfo(request: web.Request) -> web.Response:
    """Prometheus's buildinfo fields, plus Mimir's `application` and `features`.

    Grafana reads `version`; its alerting UI edits rules through a data source
    only if buildinfo names the application "Grafana Mimir" and reports
    `features.ruler_config_api: "true"` (Prometheus reports no features, and
    Grafana then treats its rules as read-only). This service implements that
    API, so it answers as Mimir does for these two fields.
    """
    info = request.app[BUILD]
    return success(
        {
            "application": "Grafana Mimir",
            "version": info.version,
            "revision": info.revision,
            "branch": info.branch,
            "buildUser": info.build_user,
            "buildDate": info.build_date,
            "goVersion": info.runtime_version,
            "features": RULER_FEATURES,
        }
    )


async def handle_healthy(request: web.Request) -> web.Response:
    """200 whenever the process serves HTTP (liveness)."""
    return web.Response(text="Aggregator is Healthy.\n")


async def handle_ready(request: web.Request) -> web.Response:
    """200 once storage has replayed its WAL, 503 before (readiness)."""
    if request.app[BACKEND].ready:
        return web.Response(text="Aggregator is Ready.\n")
    return web.Response(status=503, text="Service Unavailable\n")


async def handle_metrics(request: web.Request) -> web.Response:
    """Self-metrics in the text exposition format (OpenMetrics if asked for)."""
    body, content_type = request.app[METRICS].exposition(request.headers.get("Accept"))
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response
