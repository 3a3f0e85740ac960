"""The query engine: parse, plan, fetch once, evaluate, shape the result.

`Engine.instant_query` and `Engine.range_query` run a PromQL query over any
`Queryable`. The engine opens one Querier over the query's whole time span,
issues one `select` per distinct selector (concurrently), then evaluates the
tree over all steps at once. Evaluations of more than `_OFFLOAD_SAMPLES`
samples run in a worker thread (the engine's `executor`, else the loop's
default) so the event loop keeps serving; cancelling the awaiting task cancels
the query.

Memory: with `QueryOpts.memory` set, selects reserve what they gather from it
before gathering, and the engine reserves an estimate of the evaluation's
arrays (`eval_bytes`) before evaluating, so a query past its budget fails
before it allocates.

Limits (Prometheus's): a timeout, a maximum number of samples loaded or held
in one array, and at most `MAX_POINTS_PER_SERIES` points per series in a
range query.
"""

from __future__ import annotations

import asyncio
import operator
import threading
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import cast

import numpy as np

from promql import ast
from promql.distribute import Distributable, PushedAggregate, RemoteEngine, plan_pushdown
from promql.errors import (
    ExecutionError,
    InvalidQuery,
    QueryCanceled,
    QueryTimeout,
    StorageUnavailable,
    TooManySamples,
)
from promql.eval.context import TOO_MANY_SAMPLES, EvalContext, SelectorKey
from promql.eval.evaluator import Evaluator
from promql.eval.vectors import apply_name_drop, merge_same_labels
from promql.parser import parse_expr
from promql.plan import QueryPlan, plan_query
from promql.value import (
    EvalValue,
    HistCells,
    Matrix,
    Scalar,
    StepRange,
    StepScalar,
    StepVector,
    String,
    Value,
    Vector,
)
from storage.annotations import Annotations
from storage.errors import (
    MemoryLimitExceeded,
    ReadLimitExceeded,
    SampleLimitExceeded,
    StorageError,
)
from storage.interfaces import MemoryBudget, Queryable, SeriesSet
from storage.labels import METRIC_NAME, Labels

MAX_POINTS_PER_SERIES = 11_001
"""Most timestamps one series of a range query may have. Prometheus refuses a range
query with more than 11,000 steps between start and end (`RESOLUTION_EXCEEDED`, whose
"points" are those steps), so 11,001 timestamps, both ends included, is the most."""

RESOLUTION_EXCEEDED = (
    f"exceeded maximum resolution of {MAX_POINTS_PER_SERIES - 1:,} points per timeseries. "
    "Try decreasing the query resolution (?step=XX)"
)

PUSHDOWN_LOOKBACK_MS = 300_000
"""Members evaluate with Prometheus's default lookback; pushdown only when ours is the same."""

# Evaluations that load more samples than this run in a worker thread (a thread hop
# costs ~0.1 ms; evaluating 50k samples takes a few ms on the loop).
_OFFLOAD_SAMPLES = 50_000

EVAL_BYTES_PER_POINT = 48
"""Estimated peak bytes per (series, step) point while evaluating: a few float64
matrices and presence masks are alive at once (measured on rate, sum by and
histogram_quantile; see `eval_bytes`)."""
EVAL_BYTES_PER_SAMPLE = 24
"""Estimated bytes per loaded sample for window work (cumulative sums, indices)."""


def eval_bytes(series: int, steps: int, samples: int) -> int:
    """Memory an evaluation over `series` selected series and `steps` steps may take."""
    return series * steps * EVAL_BYTES_PER_POINT + samples * EVAL_BYTES_PER_SAMPLE


@dataclass(frozen=True, slots=True)
class QueryOpts:
    """Per-query overrides of the engine's defaults (None: use the engine's)."""

    lookback_ms: int | None = None
    timeout_s: float | None = None
    max_samples: int | None = None
    partial_response: bool = True
    memory: MemoryBudget | None = None
    """Reserves what the query gathers and evaluates (None: no memory bound)."""


@dataclass(slots=True)
class QueryStats:
    """What a query cost."""

    series_loaded: int = 0
    samples_loaded: int = 0
    selects: int = 0
    fetch_s: float = 0.0
    eval_s: float = 0.0
    total_s: float = 0.0


@dataclass(slots=True)
class Result:
    """A query's value plus its warnings/infos and stats."""

    value: Value
    warnings: Annotations = field(default_factory=Annotations)
    stats: QueryStats = field(default_factory=QueryStats)


class Engine:
    """Evaluates PromQL over any Queryable (Prometheus 3 semantics for floats)."""

    def __init__(
        self,
        lookback_ms: int = 300_000,
        timeout_s: float = 120.0,
        max_samples: int = 50_000_000,
        *,
        default_subquery_step_ms: int = 60_000,
        delayed_name_removal: bool = True,
        executor: Executor | None = None,
    ) -> None:
        self.executor = executor
        self.lookback_ms = lookback_ms
        self.timeout_s = timeout_s
        self.max_samples = max_samples
        self.default_subquery_step_ms = default_subquery_step_ms
        self.delayed_name_removal = delayed_name_removal

    @staticmethod
    def parse(query: str) -> ast.Expr:
        """Parse `query` (raises `ParseError`)."""
        return parse_expr(query)

    async def instant_query(
        self, queryable: Queryable, query: str, ts_ms: int, *, opts: QueryOpts | None = None
    ) -> Result:
        """Evaluate `query` at `ts_ms`: a Vector, Scalar, String or (range selector) Matrix."""
        return await self._run(queryable, query, ts_ms, ts_ms, 1, instant=True, opts=opts)

    async def range_query(
        self,
        queryable: Queryable,
        query: str,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        *,
        opts: QueryOpts | None = None,
    ) -> Result:
        """Evaluate `query` at every step in `[start_ms, end_ms]`: a Matrix sorted by labels."""
        if step_ms <= 0:
            raise InvalidQuery(
                "zero or negative query resolution step widths are not accepted. "
                "Try a positive integer"
            )
        if end_ms < start_ms:
            raise InvalidQuery("end timestamp must not be before start time")
        check_resolution(start_ms, end_ms, step_ms)
        return await self._run(
            queryable, query, start_ms, end_ms, step_ms, instant=False, opts=opts
        )

    async def _run(
        self,
        queryable: Queryable,
        query: str,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        *,
        instant: bool,
        opts: QueryOpts | None,
    ) -> Result:
        began = time.monotonic()
        opts = opts or QueryOpts()
        lookback = opts.lookback_ms if opts.lookback_ms is not None else self.lookback_ms
        timeout = opts.timeout_s if opts.timeout_s is not None else self.timeout_s
        max_samples = opts.max_samples if opts.max_samples is not None else self.max_samples
        expr = parse_expr(query)
        if not instant and expr.type not in ("scalar", "vector"):
            kind = "range vector" if expr.type == "matrix" else expr.type
            raise InvalidQuery(
                f'invalid expression type "{kind}" for range query, '
                "must be Scalar or instant Vector"
            )
        stats = QueryStats()
        pushed: list[PushedAggregate] = []
        if lookback == PUSHDOWN_LOOKBACK_MS and hasattr(queryable, "remote_engines"):
            dist = cast(Distributable, queryable)
            expr, pushed = plan_pushdown(
                expr, dist.remote_engines(), opaque_labels=dist.opaque_labels
            )
        plan = plan_query(
            expr,
            start_ms,
            end_ms,
            step_ms,
            lookback_ms=lookback,
            default_subquery_step_ms=self.default_subquery_step_ms,
        )
        deadline = began + timeout
        annotations = Annotations()
        try:
            # asyncio.timeout runs the fetch in this task (wait_for wraps it in a new one).
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.001)):
                fetches = [
                    self._fetch(queryable, plan, annotations, stats, max_samples, opts.memory)
                ]
                fetches += [
                    self._fetch_pushed(
                        cast(Distributable, queryable),
                        p,
                        (start_ms, end_ms, step_ms, instant, lookback),
                        annotations,
                        stats,
                        max_samples,
                        opts.memory,
                    )
                    for p in pushed
                ]
                data = (await asyncio.gather(*fetches))[0]
        except TimeoutError:
            raise QueryTimeout(f"query timed out in query execution after {timeout:g}s") from None
        stats.fetch_s = time.monotonic() - began
        steps = np.arange(start_ms, end_ms + 1, step_ms, dtype=np.int64)
        ctx = EvalContext(
            text=query,
            query_start_ms=start_ms,
            query_end_ms=end_ms,
            lookback_ms=lookback,
            data=data,
            query_step_ms=0 if instant else step_ms,
            annotations=annotations,
            default_subquery_step_ms=self.default_subquery_step_ms,
            delayed_name_removal=self.delayed_name_removal,
            max_samples=max_samples,
            deadline=deadline,
            cancel=threading.Event(),
            timeout_s=timeout,
        )

        def evaluate() -> Value:
            raw = Evaluator(ctx).eval(expr, steps)
            return _finalize(raw, steps, instant, from_storage=_is_selector(expr))

        if opts.memory is not None:
            opts.memory.reserve(eval_bytes(stats.series_loaded, len(steps), stats.samples_loaded))
        eval_began = time.monotonic()
        if stats.samples_loaded > _OFFLOAD_SAMPLES:
            try:
                loop = asyncio.get_running_loop()
                value = await loop.run_in_executor(self.executor, evaluate)
            except asyncio.CancelledError:
                assert ctx.cancel is not None
                ctx.cancel.set()
                raise
        else:
            value = evaluate()
        now = time.monotonic()
        stats.eval_s = now - eval_began
        stats.total_s = now - began
        return Result(value, annotations, stats)

    async def _fetch(
        self,
        queryable: Queryable,
        plan: QueryPlan,
        annotations: Annotations,
        stats: QueryStats,
        max_samples: int,
        memory: MemoryBudget | None = None,
    ) -> dict[SelectorKey, SeriesSet]:
        if not plan.selects:
            return {}
        # Each select may refuse up front, before gathering past the limit;
        # together they may still load too much, checked below.
        try:
            async with queryable.querier(plan.start_ms, plan.end_ms) as querier:
                selects = [
                    querier.select(
                        s.matchers,
                        s.start_ms,
                        s.end_ms,
                        hints=replace(s.hints, sample_limit=max_samples, memory=memory),
                    )
                    for s in plan.selects
                ]
                if len(selects) == 1:
                    sets = [await selects[0]]
                else:
                    sets = await asyncio.gather(*selects)
        except SampleLimitExceeded:
            raise TooManySamples(TOO_MANY_SAMPLES) from None
        except ReadLimitExceeded as exc:  # a per-query object-store budget: the user's limit
            raise ExecutionError(str(exc)) from None
        except MemoryLimitExceeded:
            raise  # names its limit; the API answers it as it is
        except StorageError as exc:
            raise StorageUnavailable(f"reading series: {exc}") from exc
        data: dict[SelectorKey, SeriesSet] = {}
        for s, ss in zip(plan.selects, sets, strict=True):
            data[s.key] = ss
            annotations.merge(ss.warnings)
            stats.series_loaded += len(ss)
            stats.samples_loaded += ss.num_samples
        stats.selects = len(plan.selects)
        if stats.samples_loaded > max_samples:
            raise TooManySamples(TOO_MANY_SAMPLES)
        return data

    async def _fetch_pushed(
        self,
        queryable: Distributable,
        node: PushedAggregate,
        when: tuple[int, int, int, bool, int],
        annotations: Annotations,
        stats: QueryStats,
        max_samples: int,
        memory: MemoryBudget | None = None,
    ) -> dict[SelectorKey, SeriesSet]:
        """A pushed aggregation's local series and its members' partial answers."""
        start_ms, end_ms, step_ms, instant, lookback = when
        local_plan = plan_query(
            node.agg,
            start_ms,
            end_ms,
            step_ms,
            lookback_ms=lookback,
            default_subquery_step_ms=self.default_subquery_step_ms,
        )
        local = queryable.without(node.pushed_names)

        async def ask(engine: RemoteEngine, query: str) -> Matrix | None:
            try:
                return await engine.query(query, start_ms, end_ms, step_ms, instant=instant)
            except StorageError as exc:
                if not queryable.partial_response:
                    raise StorageUnavailable(f"pushdown: {exc}") from exc
                annotations.warn(f"partial response: {engine.name} left out of the answer: {exc}")
                return None

        async def part(i: int) -> None:
            p = node.parts[i]
            node.results[i] = list(await asyncio.gather(*(ask(p.engine, q) for q in p.queries)))

        fetched = await asyncio.gather(
            self._fetch(local, local_plan, annotations, stats, max_samples, memory),
            *(part(i) for i in range(len(node.parts))),
        )
        data = cast(dict[SelectorKey, SeriesSet], fetched[0])
        node.local_data.update(data)
        return data


def check_resolution(start_ms: int, end_ms: int, step_ms: int) -> None:
    """Refuse a range query whose series would have more than `MAX_POINTS_PER_SERIES` points."""
    if (end_ms - start_ms) // step_ms + 1 > MAX_POINTS_PER_SERIES:
        raise InvalidQuery(RESOLUTION_EXCEEDED)


def _is_selector(expr: ast.Expr) -> bool:
    while isinstance(expr, ast.ParenExpr):
        expr = expr.expr
    return isinstance(expr, ast.VectorSelector)


def _finalize(
    raw: EvalValue, steps: np.ndarray, instant: bool, *, from_storage: bool = False
) -> Value:
    """Turn the root node's evaluation shape into the API's result shape.

    `from_storage`: the vector is a selector's series, in the order storage
    returned them, which is sorted by labels and distinct (the `SeriesSet`
    contract), so there is nothing to merge or reorder.
    """
    ts0 = int(steps[0])
    if isinstance(raw, StepScalar):
        if instant:
            return Scalar(float(raw.values[0]), ts0)
        n = len(steps)
        return Matrix([Labels()], np.array([0, n]), steps.copy(), raw.values.copy())
    if isinstance(raw, String):
        return String(raw.value, ts0)
    if isinstance(raw, StepRange):
        return _range_result(raw)
    if not isinstance(raw, StepVector):
        raise ExecutionError(f"unexpected result {type(raw).__name__}")
    vec = apply_name_drop(raw)
    in_order = from_storage and raw.drop_name is None
    if not in_order and not _strictly_sorted(vec.labels):  # sorted and distinct: no merge
        vec = merge_same_labels(vec)
    if instant:
        rows = np.flatnonzero(vec.present[:, 0])
        hist = None
        if vec.hist is not None and vec.hist.any():
            hist = HistCells(vec.hist.ref[rows, 0], vec.hist.table)
        if len(rows) == len(vec.labels):
            return Vector(list(vec.labels), vec.values[:, 0].copy(), ts0, hist)
        return Vector([vec.labels[i] for i in rows.tolist()], vec.values[rows, 0].copy(), ts0, hist)
    return _matrix(vec, steps, in_order)


def _matrix(vec: StepVector, steps: np.ndarray, in_order: bool = False) -> Matrix:
    """A range query's step vector as a Matrix: series sorted by labels, present points only."""
    labels = vec.labels
    n, width = vec.present.shape
    ref = vec.hist.ref if vec.hist is not None and vec.hist.any() else None
    if in_order or _strictly_sorted(labels):
        values, present = vec.values, vec.present
    else:
        order = np.array(sorted(range(n), key=labels.__getitem__), dtype=np.intp)
        labels = [labels[i] for i in order.tolist()]
        values, present = vec.values[order], vec.present[order]
        ref = ref[order] if ref is not None else None
    counts = np.count_nonzero(present, axis=1)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    flat_ref = None
    if int(offsets[-1]) == n * width:  # every series at every step
        ts = np.tile(steps.astype(np.int64, copy=False), n)
        flat_values = values.reshape(-1)
        if ref is not None:
            flat_ref = ref.reshape(-1)
    else:
        flat = np.flatnonzero(present)
        ts = steps.astype(np.int64, copy=False)[flat % width]
        flat_values = values.reshape(-1)[flat]
        if ref is not None:
            flat_ref = ref.reshape(-1)[flat]
    if (counts == 0).any():
        kept = np.flatnonzero(counts)
        labels = [labels[i] for i in kept.tolist()]
        offsets = np.concatenate((offsets[kept], offsets[-1:]))
    hist = None
    if flat_ref is not None and vec.hist is not None:
        hist = HistCells(flat_ref, vec.hist.table)
    return Matrix(labels, offsets, ts, flat_values, hist)


def _strictly_sorted(labels: list[Labels]) -> bool:
    return all(map(operator.lt, labels, labels[1:]))


def _range_result(rng: StepRange) -> Matrix:
    """An instant query of a range vector: each series' samples in its window."""
    labels = []
    ts_parts = []
    val_parts = []
    ref_parts = []
    drop = rng.drop_name
    for i, lbl in enumerate(rng.labels):
        lo, hi = int(rng.lo[i, 0]), int(rng.hi[i, 0])
        if hi <= lo:
            continue
        labels.append(lbl.without(METRIC_NAME) if drop is not None and drop[i] else lbl)
        ts_parts.append(rng.timestamps[lo:hi])
        val_parts.append(rng.values[lo:hi])
        if rng.hist is not None:
            ref_parts.append(rng.hist.ref[lo:hi])
    counts = [len(t) for t in ts_parts]
    offsets = np.zeros(len(labels) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    ts = np.concatenate(ts_parts) if ts_parts else np.zeros(0, dtype=np.int64)
    vals = np.concatenate(val_parts) if val_parts else np.zeros(0)
    hist = None
    if rng.hist is not None and ref_parts:
        hist = HistCells(np.concatenate(ref_parts), rng.hist.table)
    return Matrix(labels, offsets, ts, vals, hist)


__all__ = [
    "MAX_POINTS_PER_SERIES",
    "RESOLUTION_EXCEEDED",
    "Engine",
    "QueryCanceled",
    "QueryOpts",
    "QueryStats",
    "Result",
    "check_resolution",
]
