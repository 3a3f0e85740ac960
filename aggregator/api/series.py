"""`/api/v1/series`, `/api/v1/labels`, `/api/v1/label/{name}/values`.

As in Prometheus: `match[]` may repeat and the answer is the union over all
selectors; `start`/`end` default to the whole time range; `limit` cuts the
sorted answer and adds the warning "results truncated due to limit".
Selects carry the `series` hint: only label sets are needed, not samples.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from aggregator.api.context import CONFIG, GATE
from aggregator.api.federation import fleet_queryable
from aggregator.api.params import (
    MAX_TIME_MS,
    MIN_TIME_MS,
    check_label_name,
    check_time_range,
    limit_param,
    matcher_sets,
    read_params,
    time_param,
)
from aggregator.api.promjson import encode_series_list
from aggregator.api.responses import success, success_raw
from aggregator.errors import BadData
from storage.annotations import Annotations
from storage.interfaces import LabelResult, Querier, SelectHints
from storage.labels import Labels, Matcher

TRUNCATED = "results truncated due to limit"


async def handle_series(request: web.Request) -> web.Response:
    """Label sets of the series matching any `match[]` selector in [start, end]."""
    params = await read_params(request)
    selectors = params.getall("match[]", [])
    if not selectors:
        raise BadData("no match[] parameter provided")
    start = time_param(params, "start", MIN_TIME_MS)
    end = time_param(params, "end", MAX_TIME_MS)
    check_time_range(start, end)
    sets = matcher_sets(selectors, name_param=True)
    limit = limit_param(params)
    backend = fleet_queryable(request, params)

    warnings = Annotations()
    found: set[Labels] = set()
    async with (
        request.app[GATE].admit(_timeout_s(request)) as memory,
        backend.querier(start, end) as querier,
    ):
        hints = SelectHints(start_ms=start, end_ms=end, func="series", limit=limit, memory=memory)
        for matchers in sets:
            result = await querier.select(matchers, start, end, hints=hints)
            found.update(result.labels)
            if result.histograms is not None:  # series holding native histograms only
                found.update(result.histograms.labels)
            warnings.merge(result.warnings)
    ordered = sorted(found)
    if limit is not None and len(ordered) > limit:
        ordered = ordered[:limit]
        warnings.warn(TRUNCATED)
    return success_raw(encode_series_list(ordered), warnings)


async def handle_labels(request: web.Request) -> web.Response:
    """Label names of the series matching any `match[]` (all series without one)."""
    return await _label_answer(
        request, lambda querier, matchers, fetch: querier.label_names(matchers, limit=fetch)
    )


async def handle_label_values(request: web.Request) -> web.Response:
    """Values of label `name` over the series matching any `match[]` (all without one)."""
    name = check_label_name(request.match_info["name"])
    return await _label_answer(
        request,
        lambda querier, matchers, fetch: querier.label_values(name, matchers, limit=fetch),
    )


LabelLookup = Callable[[Querier, Sequence[Matcher], "int | None"], Awaitable[LabelResult]]


async def _label_answer(request: web.Request, lookup: LabelLookup) -> web.Response:
    """The union of `lookup` over every `match[]` set, sorted and limited, with warnings."""
    params = await read_params(request)
    start = time_param(params, "start", MIN_TIME_MS)
    end = time_param(params, "end", MAX_TIME_MS)
    check_time_range(start, end)
    sets = matcher_sets(params.getall("match[]", []), name_param=False)
    limit = limit_param(params)
    backend = fleet_queryable(request, params)

    warnings = Annotations()
    found: set[str] = set()
    fetch = limit + 1 if limit is not None else None
    async with (
        request.app[GATE].admit(_timeout_s(request)),
        backend.querier(start, end) as querier,
    ):
        for matchers in sets or [[]]:
            result = await lookup(querier, matchers, fetch)
            found.update(result.values)
            warnings.merge(result.warnings)
    return success(_limited(found, limit, warnings), warnings)


def _timeout_s(request: web.Request) -> float:
    return request.app[CONFIG].query.timeout_ms / 1000


def _limited(items: set[str], limit: int | None, warnings: Annotations) -> list[str]:
    ordered = sorted(items)
    if limit is not None and len(ordered) > limit:
        warnings.warn(TRUNCATED)
        return ordered[:limit]
    return ordered
