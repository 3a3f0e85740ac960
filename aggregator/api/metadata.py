"""`/api/v1/metadata`: metric metadata as remote write delivered it.

Parameters as in Prometheus: `metric` (one family), `limit` (families; a
negative value means no limit, 0 returns none), `limit_per_metric` (entries
per family).

A reader limited to some clusters sees only the families of metric names
its clusters have (metadata itself is not kept per cluster).
"""

from __future__ import annotations

from aiohttp import web

from aggregator.api.access import reader_of
from aggregator.api.context import BACKEND
from aggregator.api.params import MAX_TIME_MS, MIN_TIME_MS, read_params
from aggregator.api.responses import success
from aggregator.errors import BadData
from aggregator.federation.scope import cluster_matcher
from storage.labels import METRIC_NAME


async def handle_metadata(request: web.Request) -> web.Response:
    """Metric family -> list of {type, help, unit}."""
    params = await read_params(request)
    limit = _number(params.get("limit", ""), "limit")
    per_metric = _number(params.get("limit_per_metric", ""), "limit_per_metric")
    metric = params.get("metric") or None
    backend = request.app[BACKEND].get()
    if limit == 0:
        return success({})
    clusters = reader_of(request).clusters
    if clusters is not None:
        found = backend.metadata(metric)
        async with backend.querier(MIN_TIME_MS, MAX_TIME_MS) as querier:
            names = await querier.label_values(METRIC_NAME, [cluster_matcher(clusters)])
        visible = set(names.values)
        found = {name: entries for name, entries in found.items() if name in visible}
        if limit is not None and limit > 0:
            found = dict(list(found.items())[:limit])
    else:
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
