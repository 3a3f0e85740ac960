"""`/api/v1/query`, `/api/v1/query_range`, `/api/v1/format_query`, `/api/v1/query_exemplars`.

Parameters, checks and messages follow Prometheus's `web/api/v1`: `time`
defaults to now; `start`, `end` and `step` are required for a range query,
`end` may not be before `start`, `step` must be positive and give at most
`MAX_POINTS_PER_SERIES` points per series (`promql.engine.check_resolution`);
`timeout` (a duration) shortens the configured query timeout. Results are
encoded by `promjson` (Prometheus's exact JSON) and carry the engine's
warnings and infos.

Two parameters concern the blocks in the object store:

- `max_source_resolution` (as in Thanos): `auto` (the default) lets
  downsampled blocks answer when the step is coarse enough (resolution up to
  a fifth of the step); `raw` (or `0s`) reads raw samples only; a duration
  (`5m`, `1h`) allows resolutions up to it.
- `stats` (Prometheus's): any value adds `stats` to the answer's `data`, with
  Prometheus's `timings` and `samples` plus ours, `objectStore`: the
  requests this query made to the object store, the bytes it read, the
  bytes the block cache served and the blocks it read.

Every query may read at most `query.max_object_store_bytes` bytes in at most
`query.max_object_store_requests` requests from the object store; a query
that would need more fails before reading, naming the limit (422).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace

from aiohttp import web
from multidict import MultiMapping

from aggregator.api.context import CONFIG, GATE, LABELS_JSON, METRICS, QUERY_ENGINE
from aggregator.api.federation import fleet_queryable
from aggregator.api.params import (
    duration_param,
    read_params,
    required_time_param,
    time_param,
)
from aggregator.api.promjson import LabelsJSONCache, encode_value, go_json
from aggregator.api.responses import send_success, success
from aggregator.config import QueryConfig
from aggregator.errors import BadData
from aggregator.querygate import QueryMemory
from promql.engine import QueryOpts, QueryStats, check_resolution
from promql.errors import ParseError
from promql.parser import parse_expr
from promql.printer import format_expr
from promql.value import Matrix, Value, Vector
from storage.blocks.cache import ReadCost
from storage.blocks.resolution import Resolution
from storage.labels import Labels
from storage.tiering.querier import ReadOptions

JSON_BYTES_PER_POINT = 64
"""Peak memory per point while encoding: its text (~30 bytes) and the pieces laid out."""
ENCODE_OFFLOAD_POINTS = 20_000
"""Answers with more points than this are encoded in a worker thread (about 2 ms of
work per 10k points would otherwise hold the event loop)."""


async def handle_query(request: web.Request) -> web.StreamResponse:
    """An instant query at `time` (default: now)."""
    params = await read_params(request)
    ts = time_param(params, "time", int(time.time() * 1000))
    config = request.app[CONFIG].query
    opts = query_options(params, config.timeout_ms)
    read = read_options(params, config)
    query = params.get("query", "")
    queryable = fleet_queryable(request, params, read)
    async with request.app[GATE].admit(opts.timeout_s or 0.0) as memory:
        opts = replace(opts, memory=memory)
        try:
            result = await request.app[QUERY_ENGINE].instant_query(queryable, query, ts, opts=opts)
        except ParseError as exc:
            raise BadData(f'invalid parameter "query": {exc}') from None
        finally:
            request.app[METRICS].observe_query_cost(read.cost)
        data = await encode_off_loop(request.app[LABELS_JSON], result.value, None, memory)
    data = with_stats(data, params, result.stats, read.cost)
    # Sent after the slot is given back: a slow reader must not hold one.
    return await send_success(request, data, result.warnings)


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
    config = request.app[CONFIG].query
    opts = query_options(params, config.timeout_ms)
    read = read_options(params, config)
    query = params.get("query", "")
    queryable = fleet_queryable(request, params, read)
    async with request.app[GATE].admit(opts.timeout_s or 0.0) as memory:
        opts = replace(opts, memory=memory)
        try:
            result = await request.app[QUERY_ENGINE].range_query(
                queryable, query, start, end, step, opts=opts
            )
        except ParseError as exc:
            raise BadData(str(exc)) from None
        finally:
            request.app[METRICS].observe_query_cost(read.cost)
        data = await encode_off_loop(request.app[LABELS_JSON], result.value, (start, step), memory)
    data = with_stats(data, params, result.stats, read.cost)
    return await send_success(request, data, result.warnings)


async def handle_format_query(request: web.Request) -> web.Response:
    """The query pretty-printed as Prometheus prints it."""
    params = await read_params(request)
    try:
        expr = parse_expr(params.get("query", ""))
    except ParseError as exc:
        raise BadData(f'invalid parameter "query": {exc}') from None
    return success(format_expr(expr))


async def encode_off_loop(
    cache: LabelsJSONCache,
    value: Value,
    grid: tuple[int, int] | None,
    memory: QueryMemory | None = None,
) -> bytes | memoryview:
    """`encode_value`, in a worker thread when the answer is big.

    The label cache is the event loop's: label sets are looked up (and added)
    here first, and the thread gets them as a plain mapping. The answer's
    bytes are reserved from `memory` first (about `JSON_BYTES_PER_POINT` each).
    """
    points = len(value.values) if isinstance(value, Matrix | Vector) else 0
    if memory is not None:
        memory.reserve(points * JSON_BYTES_PER_POINT)
    if points <= ENCODE_OFFLOAD_POINTS or not isinstance(value, Matrix | Vector):
        return encode_value(value, grid, cache.members)
    found = dict(zip(value.labels, cache.members(value.labels), strict=True))

    def members(labels: Sequence[Labels]) -> list[bytes]:
        return list(map(found.__getitem__, labels))

    return await asyncio.to_thread(encode_value, value, grid, members)


def query_options(params: MultiMapping[str], configured_timeout_ms: int) -> QueryOpts:
    """Per-query options: a `timeout` parameter can only shorten the configured timeout."""
    if not params.get("timeout", ""):
        return QueryOpts(timeout_s=configured_timeout_ms / 1000)
    timeout_ms = duration_param(params, "timeout")
    if timeout_ms <= 0:
        raise BadData('invalid parameter "timeout": timeout must be positive')
    return QueryOpts(timeout_s=min(timeout_ms, configured_timeout_ms) / 1000)


def read_options(params: MultiMapping[str], config: QueryConfig) -> ReadOptions:
    """The query's object-store budget (from the config) and `max_source_resolution`."""
    cost = ReadCost(
        max_bytes=config.max_object_store_bytes, max_requests=config.max_object_store_requests
    )
    text = params.get("max_source_resolution", "")
    if text in ("", "auto"):
        return ReadOptions(cost, Resolution())
    if text == "raw":
        return ReadOptions(cost, Resolution(0))
    try:
        resolution_ms = duration_param(params, "max_source_resolution")
    except BadData:
        raise BadData(
            'invalid parameter "max_source_resolution": expected auto, raw or a duration '
            f"(e.g. 5m, 1h), got {text!r}"
        ) from None
    if resolution_ms < 0:
        raise BadData('invalid parameter "max_source_resolution": must not be negative')
    return ReadOptions(cost, Resolution(resolution_ms))


def with_stats(
    data: bytes | memoryview, params: MultiMapping[str], stats: QueryStats, cost: ReadCost
) -> bytes | memoryview:
    """`data` with Prometheus's `stats` object added when the `stats` parameter is set."""
    if not params.get("stats", ""):
        return data
    body = {
        "timings": {
            "evalTotalTime": stats.total_s,
            "resultSortTime": 0,
            "queryPreparationTime": stats.fetch_s,
            "innerEvalTime": stats.eval_s,
            "execQueueTime": 0,
            "execTotalTime": stats.total_s,
        },
        "samples": {
            "totalQueryableSamples": stats.samples_loaded,
            "peakSamples": stats.samples_loaded,
        },
        "objectStore": {
            "requests": cost.requests,
            "bytes": cost.bytes,
            "cachedBytes": cost.cached_bytes,
            "blocks": cost.blocks,
        },
    }
    raw = bytes(data)
    return raw[:-1] + b',"stats":' + go_json(body) + b"}"
