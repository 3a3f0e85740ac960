"""`/api/v1/query`, `/api/v1/query_range`, `/api/v1/format_query`, `/api/v1/query_exemplars`.

Parameters, checks and messages follow Prometheus's `web/api/v1`: `time`
defaults to now; `start`, `end` and `step` are required for a range query,
`end` may not be before `start`, `step` must be positive and give at most
`MAX_POINTS_PER_SERIES` points per series (`promql.engine.check_resolution`);
`timeout` (a duration) shortens the configured query timeout. Results are
encoded by `promjson` (Prometheus's exact JSON) and carry the engine's
warnings and infos.
"""

from __future__ import annotations

import time

from aiohttp import web
from multidict import MultiMapping

from aggregator.api.context import CONFIG, LABELS_JSON, QUERY_ENGINE
from aggregator.api.federation import fleet_queryable
from aggregator.api.params import (
    MAX_TIME_MS,
    MIN_TIME_MS,
    duration_param,
    read_params,
    required_time_param,
    time_param,
)
from aggregator.api.promjson import encode_value
from aggregator.api.responses import send_success, success
from aggregator.errors import BadData
from promql.engine import QueryOpts, check_resolution
from promql.errors import ParseError
from promql.parser import parse_expr
from promql.printer import format_expr


async def handle_query(request: web.Request) -> web.StreamResponse:
    """An instant query at `time` (default: now)."""
    params = await read_params(request)
    ts = time_param(params, "time", int(time.time() * 1000))
    opts = query_options(params, request.app[CONFIG].query.timeout_ms)
    query = params.get("query", "")
    backend = fleet_queryable(request, params)
    try:
        result = await request.app[QUERY_ENGINE].instant_query(backend, query, ts, opts=opts)
    except ParseError as exc:
        raise BadData(f'invalid parameter "query": {exc}') from None
    members = request.app[LABELS_JSON].members
    return await send_success(request, encode_value(result.value, None, members), result.warnings)


async def handle_query_range(request: web.Request) -> web.StreamResponse:
    """A range query over [start, end] every `step`."""
    params = await read_params(request)
    start = required_time_param(params, "start")
    end = required_time_param(params, "end")
    if end < start:
        raise BadData('invalid parameter "end": end timestamp must not be before start time')
    step = duration_param(params, "step")
    if step <= 0:
        raise BadData(
            'invalid parameter "step": zero or negative query resolution step widths are not '
            "accepted. Try a positive integer"
        )
    check_resolution(start, end, step)
    opts = query_options(params, request.app[CONFIG].query.timeout_ms)
    query = params.get("query", "")
    backend = fleet_queryable(request, params)
    try:
        result = await request.app[QUERY_ENGINE].range_query(
            backend, query, start, end, step, opts=opts
        )
    except ParseError as exc:
        raise BadData(str(exc)) from None
    members = request.app[LABELS_JSON].members
    data = encode_value(result.value, (start, step), members)
    return await send_success(request, data, result.warnings)


async def handle_format_query(request: web.Request) -> web.Response:
    """The query pretty-printed as Prometheus prints it."""
    params = await read_params(request)
    try:
        expr = parse_expr(params.get("query", ""))
    except ParseError as exc:
        raise BadData(f'invalid parameter "query": {exc}') from None
    return success(format_expr(expr))


async def handle_query_exemplars(request: web.Request) -> web.Response:
    """Exemplars are not stored yet: a checked query gets an empty list."""
    params = await read_params(request)
    start = time_param(params, "start", MIN_TIME_MS)
    end = time_param(params, "end", MAX_TIME_MS)
    if end < start:
        raise BadData("end timestamp must not be before start timestamp")
    try:
        parse_expr(params.get("query", ""))
    except ParseError as exc:
        raise BadData(str(exc)) from None
    return success([])


def query_options(params: MultiMapping[str], configured_timeout_ms: int) -> QueryOpts | None:
    """A `timeout` parameter as per-query options; it can only shorten the configured one."""
    if not params.get("timeout", ""):
        return None
    timeout_ms = duration_param(params, "timeout")
    if timeout_ms <= 0:
        raise BadData('invalid parameter "timeout": timeout must be positive')
    return QueryOpts(timeout_s=min(timeout_ms, configured_timeout_ms) / 1000)
