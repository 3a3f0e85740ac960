"""Read access: every request but the open ones needs a read credential.

Open: `/-/healthy`, `/-/ready`, remote write and the edge agents' endpoints
(authenticated per cluster by its own token or client certificate,
`aggregator.auth`), and `/metrics` when
`server.metrics_auth` is off. Everything else (queries, series, labels,
metadata, remote read, the fleet registry and page, rules, admin and any
endpoint added later) needs a web-config user or token once the file names
any: deny by default. A missing or wrong credential gets a bare 401 that
says nothing about which users exist or why it failed; the reader is kept on
the request (`READER`) for the endpoints that limit what it sees.

A reader limited to some clusters gets 403 on what concerns the whole fleet
or the service itself (`WHOLE_FLEET`): admin, block status, reloads, the
ruler's configuration API and `/metrics` (per-cluster self-metrics). The
endpoints it may use filter their answers to its clusters.

The web config's `http_server_config.headers` go on every response.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from aggregator.api.context import CONFIG
from aggregator.errors import Unauthorized
from aggregator.readauth import CHALLENGES, OPEN_READER, Reader
from aggregator.security import WebSecurity

SECURITY = web.AppKey("security", WebSecurity)
READER = web.RequestKey("reader", Reader)
OPEN_PATHS = frozenset({"/-/healthy", "/-/ready", "/api/v1/write"})
EDGE_PREFIX = "/api/v1/edge/"
"""Edge agents' endpoints: authenticated by the cluster token (`aggregator.api.edge`)."""
WHOLE_FLEET = ("/api/v1/admin/", "/api/v1/status/blocks", "/-/reload", "/config/v1/", "/metrics")
"""Path prefixes only a reader of every cluster may use."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def reader_of(request: web.Request) -> Reader:
    """Who is reading (OPEN_READER on open endpoints and while reads are open)."""
    return request.get(READER, OPEN_READER)


def unauthorized() -> web.Response:
    """The one 401 answer: no detail, both schemes offered."""
    response = web.Response(status=401, text="Unauthorized\n")
    for challenge in CHALLENGES:
        response.headers.add("WWW-Authenticate", challenge)
    return response


@web.middleware
async def require_reader(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate reads (see the module docstring)."""
    path = request.path
    if (
        path in OPEN_PATHS
        or path.startswith(EDGE_PREFIX)
        or (path == "/metrics" and not request.app[CONFIG].server.metrics_auth)
    ):
        return await handler(request)
    try:
        reader = await request.app[SECURITY].read_auth.authenticate(request.headers)
    except Unauthorized:
        return unauthorized()
    request[READER] = reader
    if reader.clusters is not None and path.startswith(WHOLE_FLEET):
        return web.Response(
            status=403,
            text=f"forbidden: {reader.name} may read only clusters "
            f"{', '.join(sorted(reader.clusters))}; {path} concerns the whole fleet\n",
        )
    return await handler(request)


async def add_configured_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`http_server_config.headers` on every response (an `on_response_prepare` hook)."""
    security = request.app.get(SECURITY)
    if security is not None:
        for name, value in security.config.headers.items():
            response.headers[name] = value
