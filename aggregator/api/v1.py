"""The HTTP surface: routes, plus the middleware every request passes through.

`observe` counts and times each request by route pattern (the `handler`
label) and translates exceptions escaping a handler into the Prometheus
error envelope via the one table in `responses`. aiohttp's own HTTP errors
(404 unknown path, 405 wrong method, 413 form too large) pass through as is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from aggregator.api import (
    edge,
    exemplars,
    federation,
    metadata,
    query,
    ruler,
    rules,
    series,
    status,
    tiering,
    ui,
    write,
)
from aggregator.api.context import METRICS
from aggregator.api.responses import error_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_routes(app: web.Application) -> None:
    """Register every endpoint this service answers."""
    r = app.router
    r.add_post("/api/v1/write", write.handle_write)
    for method in ("GET", "POST"):
        r.add_route(method, "/api/v1/series", series.handle_series)
        r.add_route(method, "/api/v1/labels", series.handle_labels)
        # Prometheus serves label values on GET only; POST too lets long match[] lists in.
        r.add_route(method, "/api/v1/label/{name}/values", series.handle_label_values)
        r.add_route(method, "/api/v1/query", query.handle_query)
        r.add_route(method, "/api/v1/query_range", query.handle_query_range)
        r.add_route(method, "/api/v1/format_query", query.handle_format_query)
        r.add_route(method, "/api/v1/query_exemplars", exemplars.handle_query_exemplars)
    r.add_get("/api/v1/metadata", metadata.handle_metadata)
    r.add_get("/api/v1/clusters", federation.handle_clusters)
    r.add_post("/api/v1/read", federation.handle_read)
    for method in ("GET", "POST"):
        r.add_route(method, "/api/v1/rules", rules.handle_rules)
        r.add_route(method, "/api/v1/alerts", rules.handle_alerts)
    for method in ("POST", "PUT"):
        r.add_route(method, "/-/reload", rules.handle_reload)
    r.add_get("/graph", rules.handle_graph)
    r.add_get("/config/v1/rules", ruler.handle_list)
    r.add_get("/config/v1/rules/{namespace}", ruler.handle_namespace)
    r.add_post("/config/v1/rules/{namespace}", ruler.handle_set_group)
    r.add_delete("/config/v1/rules/{namespace}", ruler.handle_delete_namespace)
    r.add_get("/config/v1/rules/{namespace}/{group}", ruler.handle_group)
    r.add_delete("/config/v1/rules/{namespace}/{group}", ruler.handle_delete_group)
    r.add_get("/api/v1/status/buildinfo", status.handle_buildinfo)
    r.add_get("/api/v1/status/blocks", tiering.handle_blocks_status)
    r.add_post("/api/v1/admin/flush", tiering.handle_flush)
    r.add_get("/-/healthy", status.handle_healthy)
    r.add_get("/-/ready", status.handle_ready)
    r.add_get("/metrics", status.handle_metrics)
    ui.add_ui_routes(app)
    edge.add_edge_routes(app)


def route_name(request: web.Request) -> str:
    """The route pattern that matched (bounded label values), or "other"."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "other"


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Time and count the request; turn escaping exceptions into error envelopes."""
    metrics = request.app[METRICS]
    name = route_name(request)
    started = time.perf_counter()
    code = 500
    try:
        response = await handler(request)
        code = response.status
        return response
    except web.HTTPException as exc:
        code = exc.status
        raise
    except asyncio.CancelledError:
        code = 499  # the client went away (nginx's code, as Prometheus counts it)
        raise
    except Exception as exc:
        response = error_response(exc, handler=name)
        code = response.status
        return response
    finally:
        metrics.requests.labels(name, str(code)).inc()
        metrics.request_duration.labels(name).observe(time.perf_counter() - started)
