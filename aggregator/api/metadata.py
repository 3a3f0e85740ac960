"""`/api/v1/metadata`: metric metadata as remote write delivered it.

Parameters as in Prometheus: `metric` (one family), `limit` (families; a
negative value means no limit, 0 returns none), `limit_per_metric` (entries
per family).
"""

from __future__ import annotations

from aiohttp import web

from aggregator.api.context import BACKEND
from aggregator.api.params import read_params
from aggregator.api.responses import success
from aggregator.errors import BadData


async def handle_metadata(request: web.Request) -> web.Response:
    """Metric family -> list of {type, help, unit}."""
    params = await read_params(request)
    limit = _number(params.get("limit", ""), "limit")
    per_metric = _number(params.get("limit_per_metric", ""), "limit_per_metric")
    metric = params.get("metric") or None
    backend = request.app[BACKEND].get()
    if limit == 0:
        return success({})
    found = backend.metadata(metric, limit if limit is not None and limit > 0 else None)
    if per_metric is not None and per_metric > 0:
        found = {name: entries[:per_metric] for name, entries in found.items()}
    return success(found)


def _number(text: str, name: str) -> int | None:
    if text == "":
        return None
    try:
        return int(text, 10)
    except ValueError:
        raise BadData(f"{name} must be a number") from None
