"""`/api/v1/rules`, `/api/v1/alerts` and `/-/reload`, in Prometheus's shapes.

The JSON follows Prometheus 2.42's (field names, `value` as Go's `%e`,
times in RFC 3339, `lastError` only when there is one, a recording rule's
`labels` only when it has some), so Grafana lists the rules and alerts. The
rules endpoint takes Prometheus's filters: `type=alert|record`,
`rule_name[]`, `rule_group[]`, `file[]` and `exclude_alerts`.

A reader limited to some clusters sees the groups scoped to its clusters and
the fleet-wide ones, and of their alerts only those whose `cluster` label is
one of its clusters; an alerting rule's `state` is then that of the alerts it
may see, so a firing alert elsewhere in the fleet shows nowhere.
"""

from __future__ import annotations

import logging
import urllib.parse
from dataclasses import replace
from typing import Any

from aiohttp import web

from aggregator.api.access import reader_of
from aggregator.api.context import RELOAD, RULES
from aggregator.api.params import read_params
from aggregator.api.responses import success
from aggregator.errors import BadData
from alerting.notify.wire import rfc3339_go
from alerting.status import AlertStatus, GroupView, RuleView

log = logging.getLogger(__name__)

GO_ZERO_TIME = "0001-01-01T00:00:00Z"


async def handle_rules(request: web.Request) -> web.Response:
    """Prometheus's `GET /api/v1/rules`."""
    params = await read_params(request)
    kind = params.get("type", "").lower()
    if kind not in ("", "alert", "record"):
        raise BadData(f'invalid parameter "type": not supported value "{kind}"')
    exclude_alerts = params.get("exclude_alerts", "").lower()
    if exclude_alerts not in ("", "true", "false", "1", "0"):
        raise BadData(
            f'invalid parameter "exclude_alerts": strconv.ParseBool: parsing '
            f'"{exclude_alerts}": invalid syntax'
        )
    names = set(params.getall("rule_name[]", []))
    groups = set(params.getall("rule_group[]", []))
    files = set(params.getall("file[]", []))
    filtered = bool(kind or names or groups or files)
    allowed = reader_of(request).clusters
    out = []
    for group in request.app[RULES].groups():
        if (groups and group.name not in groups) or (files and group.file not in files):
            continue
        if allowed is not None and group.cluster is not None and group.cluster not in allowed:
            continue
        rules = [
            _rule_json(_visible(r, allowed), with_alerts=exclude_alerts not in ("true", "1"))
            for r in group.rules
            if (not names or r.name in names)
            and (not kind or (kind == "alert") == (r.kind == "alerting"))
        ]
        if filtered and not rules:
            continue
        out.append(_group_json(group, rules))
    return success({"groups": out})


async def handle_alerts(request: web.Request) -> web.Response:
    """Prometheus's `GET /api/v1/alerts`: every pending and firing alert."""
    allowed = reader_of(request).clusters
    alerts = request.app[RULES].alerts()
    return success({"alerts": [_alert_json(a) for a in alerts if _may_see(a, allowed)]})


def _may_see(alert: AlertStatus, allowed: frozenset[str] | None) -> bool:
    return allowed is None or alert.labels.get("cluster") in allowed


def _visible(rule: RuleView, allowed: frozenset[str] | None) -> RuleView:
    """`rule` as a reader of `allowed` clusters sees it (all of it when None)."""
    if allowed is None or rule.kind != "alerting":
        return rule
    alerts = tuple(a for a in rule.alerts if _may_see(a, allowed))
    states = {a.state for a in alerts}
    state = "firing" if "firing" in states else "pending" if "pending" in states else "inactive"
    return replace(rule, alerts=alerts, state=state)


async def handle_reload(request: web.Request) -> web.Response:
    """`POST /-/reload`: re-read the config's rules and alerting sections and the rule files.

    200 when the new rules run; 500 with every reason when they do not (the
    old rules keep running), as Prometheus answers.
    """
    try:
        await request.app[RELOAD]()
    except Exception as exc:
        return web.Response(status=500, text=f"failed to reload config: {exc}\n")
    return web.Response(text="")


async def handle_graph(request: web.Request) -> web.Response:
    """`/graph?g0.expr=...`, where alerts' `generatorURL` points: the expression's
    current value (the Prometheus query API), until a query page takes this path over."""
    expr = request.query.get("g0.expr", "")
    if not expr:
        raise web.HTTPFound("/api/v1/status/buildinfo")
    raise web.HTTPFound("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))


def _group_json(group: GroupView, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": group.name,
        "file": group.file,
        "rules": rules,
        "interval": _number(group.interval_s),
        "limit": group.limit,
        "evaluationTime": group.evaluation_s,
        "lastEvaluation": _time(group.last_evaluation_ms),
    }


def _rule_json(rule: RuleView, *, with_alerts: bool) -> dict[str, Any]:
    tail: dict[str, Any] = {"health": rule.health}
    if rule.last_error:
        tail["lastError"] = rule.last_error
    tail["evaluationTime"] = rule.evaluation_s
    tail["lastEvaluation"] = _time(rule.last_evaluation_ms)
    if rule.kind == "recording":
        head: dict[str, Any] = {"name": rule.name, "query": rule.query}
        if rule.labels:
            head["labels"] = dict(rule.labels)
        return {**head, **tail, "type": "recording"}
    out: dict[str, Any] = {
        "state": rule.state,
        "name": rule.name,
        "query": rule.query,
        "duration": _number(rule.duration_s),
        "keepFiringFor": _number(rule.keep_firing_for_s),
        "labels": dict(rule.labels),
        "annotations": dict(rule.annotations),
    }
    if with_alerts:
        out["alerts"] = [_alert_json(a) for a in rule.alerts]
    return {**out, **tail, "type": "alerting"}


def _alert_json(alert: AlertStatus) -> dict[str, Any]:
    out: dict[str, Any] = {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "state": alert.state,
        "activeAt": rfc3339_go(alert.active_at_ms),
    }
    if alert.keep_firing_since_ms is not None:
        out["keepFiringSince"] = rfc3339_go(alert.keep_firing_since_ms)
    out["value"] = format_e(alert.value)
    return out


def format_e(value: float) -> str:
    """Go's `strconv.FormatFloat(v, 'e', -1, 64)`: `1e+00`, `1.5e+03`, `NaN`, `+Inf`."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    for precision in range(17):  # the fewest digits that read back as the same float
        text = f"{value:.{precision}e}"
        if float(text) == value:
            return text
    return f"{value:.17e}"


def _number(value: float) -> float | int:
    """Whole seconds print as integers (Go prints float64 2 as `2`)."""
    return int(value) if float(value).is_integer() else value


def _time(ms: int | None) -> str:
    return GO_ZERO_TIME if ms is None else rfc3339_go(ms)
