"""Endpoints for edge agents (`aggregator edge`), each authenticated by the cluster token.

- `GET /api/v1/edge/rules[?wait=30s]`: the groups of the token's cluster,
  with an `ETag`; with `If-None-Match` equal to the current ETag the answer
  waits up to `wait` (at most 5m) for a change, then is 304.
- `POST /api/v1/edge/status`: the agent's report (rule version it runs,
  problems loading, rule health), shown in `/api/v1/clusters`.
- `POST /api/v1/edge/alerts` (`X-Edge-Sequence`): alerts the agent's rules
  fired or resolved; they get the cluster label and go to the configured
  Alertmanagers and webhooks like the global rules' alerts.
- `GET /api/v1/edge/tunnel`: the agent's reach-back WebSocket (see
  `aggregator.federation.edge`).

With no push clusters configured (writes open) an agent names its cluster
with `?cluster=`; otherwise the token decides and the parameter is ignored.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from aggregator.api.context import AUTH
from aggregator.api.params import parse_duration_param
from aggregator.api.responses import success
from aggregator.auth import CHALLENGES
from aggregator.errors import BadData, Unauthorized
from aggregator.federation.edge import EdgeHub
from alerting.types import Alert
from storage.labels import CLUSTER_LABEL, Labels

log = logging.getLogger(__name__)

EDGE = web.AppKey("edge", EdgeHub)
SEQUENCE_HEADER = "X-Edge-Sequence"
MAX_WAIT_MS = 5 * 60_000
MAX_BODY = 16 << 20


def add_edge_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/edge/rules", handle_rules)
    r.add_post("/api/v1/edge/status", handle_status)
    r.add_post("/api/v1/edge/alerts", handle_alerts)
    r.add_get("/api/v1/edge/tunnel", handle_tunnel)


def _cluster(request: web.Request) -> str:
    auth = request.app[AUTH]
    try:
        identity = auth.authenticate(request.headers)
    except Unauthorized as exc:
        response = web.HTTPUnauthorized(text=f"{exc}\n")
        for challenge in CHALLENGES:
            response.headers.add("WWW-Authenticate", challenge)
        raise response from None
    if identity.cluster is not None:
        return identity.cluster
    name = request.query.get("cluster", "")
    if not name:
        raise BadData('writes are open (no push clusters): name the cluster with "?cluster="')
    return name


async def handle_rules(request: web.Request) -> web.StreamResponse:
    cluster = _cluster(request)
    hub = request.app[EDGE]
    wait_ms = 0
    if "wait" in request.query:
        try:
            wait_ms = min(parse_duration_param(request.query["wait"]), MAX_WAIT_MS)
        except ValueError as exc:
            raise BadData(f'invalid parameter "wait": {exc}') from None
    have = request.headers.get("If-None-Match")
    etag, groups = hub.rules_for(cluster)
    if have is not None and have == etag and wait_ms:
        await hub.wait_change(cluster, etag, wait_ms / 1000)
        etag, groups = hub.rules_for(cluster)
    if have is not None and have == etag:
        return web.Response(status=304, headers={"ETag": etag})
    response = success({"cluster": cluster, "groups": groups})
    response.headers["ETag"] = etag
    return response


async def _json_body(request: web.Request) -> Any:
    body = await request.content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=len(body))
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadData(f"body is not JSON: {exc}") from None


async def handle_status(request: web.Request) -> web.Response:
    cluster = _cluster(request)
    report = await _json_body(request)
    if not isinstance(report, dict):
        raise BadData("the status report must be a JSON object")
    request.app[EDGE].reported(cluster, report)
    if report.get("errors"):
        log.warning(
            "edge agent could not load rules",
            extra={"cluster": cluster, "err": "; ".join(map(str, report["errors"]))[:500]},
        )
    return web.Response(status=204)


def edge_sequence(request: web.Request, cluster: str | None) -> int | None:
    """The `X-Edge-Sequence` of an edge agent's write (None when absent or unusable)."""
    if SEQUENCE_HEADER not in request.headers or EDGE not in request.app or cluster is None:
        return None
    return _sequence(request)


def _sequence(request: web.Request) -> int | None:
    raw = request.headers.get(SEQUENCE_HEADER)
    if raw is None:
        return None
    if not raw.isdigit():
        raise BadData(f"{SEQUENCE_HEADER}: {raw!r} is not a sequence number")
    return int(raw)


def _alert(item: Any, cluster: str, index: int) -> Alert:
    try:
        labels = dict(item["labels"])
        labels[CLUSTER_LABEL] = cluster
        return Alert(
            labels=Labels.from_dict({str(k): str(v) for k, v in labels.items()}),
            annotations=tuple(sorted((str(k), str(v)) for k, v in item["annotations"].items())),
            starts_at_ms=int(item["starts_at_ms"]),
            ends_at_ms=int(item["ends_at_ms"]),
            generator_url=str(item.get("generator_url", "")),
            resolved=bool(item.get("resolved", False)),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadData(f"alert {index}: malformed ({type(exc).__name__}: {exc})") from None


async def handle_alerts(request: web.Request) -> web.Response:
    cluster = _cluster(request)
    hub = request.app[EDGE]
    seq = _sequence(request)
    payload = await _json_body(request)
    if not isinstance(payload, list):
        raise BadData("the body must be a JSON list of alerts")
    alerts = [_alert(item, cluster, i) for i, item in enumerate(payload)]
    if seq is not None and hub.is_duplicate(cluster, seq):
        return web.Response(status=200, text="already received\n")
    if hub.notify is not None:
        hub.notify(alerts)
    if seq is not None:
        hub.accepted(cluster, seq)
    log.info("edge alerts received", extra={"cluster": cluster, "seq": seq, "alerts": len(alerts)})
    hub.state(cluster).alerts += len(alerts)
    return web.Response(status=204)


async def handle_tunnel(request: web.Request) -> web.StreamResponse:
    cluster = _cluster(request)
    hub = request.app[EDGE]
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=256 << 20)
    await ws.prepare(request)
    tunnel = hub.attach(cluster, ws)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                tunnel.answer(msg.data)
    finally:
        hub.detach(tunnel)
    return ws
