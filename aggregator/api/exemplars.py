"""`/api/v1/query_exemplars`: the exemplars of the series a PromQL expression selects.

As in Prometheus: `query` is any expression, and its vector selectors (each
with its matchers) pick the series; `start` and `end` bound the exemplars'
timestamps (default: all time). The answer lists, per series sorted by
labels, `seriesLabels` and its `exemplars` oldest first, each with `labels`,
`value` (a string) and `timestamp` (seconds, as Prometheus writes sample
times), so Grafana's exemplar links work against this service as against
Prometheus. A reader limited to some clusters sees only their series (the
same extra `cluster` matcher as every other read).

Exemplars are those this service received (remote write 1.0 and 2.0);
pulled member clusters are not asked.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from aggregator.api.access import reader_of
from aggregator.api.context import BACKEND, CONFIG, GATE
from aggregator.api.params import MAX_TIME_MS, MIN_TIME_MS, read_params, time_param
from aggregator.api.promjson import format_values, go_escape, labels_json
from aggregator.api.responses import success_raw
from aggregator.errors import BadData
from aggregator.federation.scope import cluster_matcher
from promql import ast
from promql.errors import ParseError
from promql.parser import parse_expr
from storage.head.exemplars import SeriesExemplars
from storage.labels import Labels, Matcher


async def handle_query_exemplars(request: web.Request) -> web.Response:
    """Exemplars of the series selected by `query` in [start, end]; see the module docstring."""
    params = await read_params(request)
    start = time_param(params, "start", MIN_TIME_MS)
    end = time_param(params, "end", MAX_TIME_MS)
    if end < start:
        raise BadData("end timestamp must not be before start timestamp")
    try:
        expr = parse_expr(params.get("query", ""))
    except ParseError as exc:
        raise BadData(str(exc)) from None
    sets: list[list[Matcher]] = [
        list(node.matchers) for node in ast.walk(expr) if isinstance(node, ast.VectorSelector)
    ]
    clusters = reader_of(request).clusters
    if clusters is not None:
        limit = cluster_matcher(clusters)
        sets = [[*matchers, limit] for matchers in sets]
    storage = request.app[BACKEND].get()
    async with request.app[GATE].admit(request.app[CONFIG].query.timeout_ms / 1000):
        found = storage.exemplars(sets, start, end)
    return success_raw(encode_exemplars(found))


def encode_exemplars(found: list[tuple[Labels, SeriesExemplars]]) -> bytes:
    """The `data` of a query_exemplars answer, as Prometheus writes it."""
    series = []
    for labels, ex in found:
        values = format_values(ex.values)
        items = [
            b'{"labels":'
            + go_escape(orjson.dumps(dict(pairs)))
            + b',"value":"'
            + value
            + b'","timestamp":'
            + marshal_timestamp(ts)
            + b"}"
            for pairs, value, ts in zip(ex.labels, values, ex.timestamps.tolist(), strict=True)
        ]
        series.append(
            b'{"seriesLabels":' + labels_json(labels) + b',"exemplars":[' + b",".join(items) + b"]}"
        )
    return b"[" + b",".join(series) + b"]"


def marshal_timestamp(ms: int) -> bytes:
    """Milliseconds as Prometheus's `marshalTimestamp` writes them: seconds, and the
    milliseconds as three digits when not zero (`1600096945.479`, `12.050`, `7`)."""
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    seconds, frac = divmod(ms, 1000)
    return f"{sign}{seconds}.{frac:03d}".encode() if frac else f"{sign}{seconds}".encode()
