"""`/api/v1/clusters` (the fleet registry), `POST /api/v1/read` (remote read), and the
per-request fleet switches (`partial_response`, `dedup`, `pushdown` parameters).

The remote-read server answers from the same fleet Queryable as queries, so
a Prometheus with `remote_read` pointed here sees what a query here sees
(HA replicas deduplicated unless `?dedup=false`). It answers SAMPLES, or
streams XOR chunks when the reader accepts STREAMED_XOR_CHUNKS first. A
scale-out's query tier that reads our blocks itself sends
`X-Aggregator-Blocks-Read-Through: <ms>`: our blocks then answer only what is
newer, our head everything.
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web
from multidict import MultiMapping

from aggregator.api.access import reader_of
from aggregator.api.context import BACKEND, CONFIG, GATE
from aggregator.api.params import within_body_timeout
from aggregator.api.responses import success
from aggregator.errors import BadData
from aggregator.federation.fleet import Fleet
from aggregator.federation.registry import ClusterRegistry
from aggregator.federation.remote_read import BLOCKS_READ_THROUGH
from aggregator.federation.scope import ScopedQueryable
from remote_write.errors import DecodeError, PayloadTooLarge
from remote_write.read import (
    SAMPLES_CONTENT_TYPE,
    STREAMED_CONTENT_TYPE,
    ReadRequest,
    decode_read_request,
    encode_chunked_frames,
    encode_query_result,
    encode_read_response,
)
from storage.interfaces import MemoryBudget, Queryable, SelectHints
from storage.labels import InvalidRegex, Matcher, MatchType
from storage.tiering.querier import ReadOptions

CLUSTERS = web.AppKey("clusters", ClusterRegistry)

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


class ClusterStatusSource(Protocol):
    def clusters(self, active_series: dict[str, int]) -> list[dict[str, object]]: ...


def bool_param(params: MultiMapping[str], name: str, default: bool) -> bool:
    """A true/false query parameter; anything else is a 400 naming it."""
    raw = params.get(name, "")
    if raw == "":
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise BadData(f'invalid parameter "{name}": expected true or false, got {raw!r}')


def fleet_queryable(
    request: web.Request, params: MultiMapping[str], read: ReadOptions | None = None
) -> Queryable:
    """The fleet as this request asks for it (storage must be open: NotReady otherwise).

    `read` scopes the local storage's block reads to one query (its object-store
    budget and `max_source_resolution`). A reader limited to some clusters gets
    the fleet behind `ScopedQueryable`.
    """
    storage = request.app[BACKEND].get()
    backend = storage.scoped(read) if read is not None else storage
    registry = request.app.get(CLUSTERS)
    queryable: Queryable = backend
    if registry is not None:
        query = request.app[CONFIG].query
        queryable = Fleet(backend, registry, query).with_options(
            partial_response=bool_param(params, "partial_response", query.partial_response),
            dedup=bool_param(params, "dedup", True),
            pushdown=bool_param(params, "pushdown", query.pushdown),
        )
    clusters = reader_of(request).clusters
    if clusters is not None:
        queryable = ScopedQueryable(queryable, clusters)
    return queryable


async def handle_clusters(request: web.Request) -> web.Response:
    """Every member cluster with mode, health, freshness, series and ingest rate
    (only the reader's own clusters for a reader limited to some)."""
    slot = request.app[BACKEND]
    found = request.app[CLUSTERS].clusters(slot.active_series())
    allowed = reader_of(request).clusters
    if allowed is not None:
        found = [c for c in found if c.get("name") in allowed]
    return success(found)


async def handle_read(request: web.Request) -> web.StreamResponse:
    """Prometheus remote read over the whole fleet."""
    limits = request.app[CONFIG].limits
    body = await within_body_timeout(request, request.read())
    try:
        read = decode_read_request(body, max_decoded_bytes=limits.max_decoded_bytes)
    except (DecodeError, PayloadTooLarge) as exc:
        raise BadData(f"remote read: {exc}") from None
    queryable = fleet_queryable(request, request.query, _blocks_read_through(request))
    config = request.app[CONFIG].query
    async with request.app[GATE].admit(config.timeout_ms / 1000) as memory:
        return await _answer_read(request, read, queryable, config.max_samples, memory)


def _blocks_read_through(request: web.Request) -> ReadOptions | None:
    """A query tier that reads our blocks itself up to a time asks only for what our
    blocks hold after it (our head answers in full)."""
    raw = request.headers.get(BLOCKS_READ_THROUGH)
    if raw is None:
        return None
    try:
        return ReadOptions(blocks_after_ms=int(raw))
    except ValueError:
        raise BadData(
            f"remote read: header {BLOCKS_READ_THROUGH} must be a time in milliseconds, "
            f"got {raw[:40]!r}"
        ) from None


async def _answer_read(
    request: web.Request,
    read: ReadRequest,
    queryable: Queryable,
    max_samples: int,
    memory: MemoryBudget,
) -> web.StreamResponse:
    sets = []
    for i, q in enumerate(read.queries):
        try:
            matchers = [Matcher(MatchType(op), name, value) for op, name, value in q.matchers]
        except InvalidRegex as exc:
            raise BadData(f"remote read: query {i}: {exc}") from None
        func = q.hints.func if q.hints is not None else None
        hints = SelectHints(
            start_ms=q.start_ms,
            end_ms=q.end_ms,
            func=func or None,
            sample_limit=max_samples,
            memory=memory,
        )
        async with queryable.querier(q.start_ms, q.end_ms) as querier:
            sets.append(await querier.select(matchers, q.start_ms, q.end_ms, hints=hints))
    if not read.streamed:
        results = [encode_query_result(s.labels, s.offsets, s.timestamps, s.values) for s in sets]
        return web.Response(
            body=encode_read_response(results),
            headers={"Content-Encoding": "snappy"},
            content_type=SAMPLES_CONTENT_TYPE,
        )
    response = web.StreamResponse(headers={"Content-Type": STREAMED_CONTENT_TYPE})
    await response.prepare(request)
    for i, s in enumerate(sets):
        for frame in encode_chunked_frames(i, s.labels, s.offsets, s.timestamps, s.values):
            await response.write(frame)
    await response.write_eof()
    return response


__all__ = ["CLUSTERS", "ClusterStatusSource", "Fleet", "bool_param", "fleet_queryable"]
