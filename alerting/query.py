"""How rules query: the PromQL engine over a Queryable, optionally cluster-scoped.

`EngineQuery` is Prometheus's `EngineQueryFunc`: an instant query whose
vector is the rule's result (a scalar becomes one sample with no labels).
`ClusterScoped` wraps a Queryable so that every select also requires
`cluster="<name>"`: a cluster-scoped group's selectors see only that
cluster's series, whatever its PromQL says, without rewriting the text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import numpy as np

from promql.engine import QueryOpts, Result
from promql.errors import ExecutionError
from promql.value import Scalar, Vector
from storage.interfaces import LabelResult, Querier, Queryable, SelectHints, SeriesSet
from storage.labels import CLUSTER_LABEL, Labels, Matcher


class InstantEngine(Protocol):
    """The part of `promql.engine.Engine` rules use."""

    async def instant_query(
        self, queryable: Queryable, query: str, ts_ms: int, *, opts: QueryOpts | None = None
    ) -> Result: ...


class EngineQuery:
    """A `QueryFunc` over an engine and a Queryable."""

    def __init__(self, engine: InstantEngine, queryable: Queryable) -> None:
        self.engine = engine
        self.queryable = queryable

    async def __call__(self, expr: str, ts_ms: int) -> Vector:
        result = await self.engine.instant_query(self.queryable, expr, ts_ms)
        value = result.value
        if isinstance(value, Vector):
            return value
        if isinstance(value, Scalar):
            return Vector([Labels()], np.array([value.value]), value.timestamp_ms)
        raise ExecutionError("rule result is not a vector or scalar")


class ClusterScoped:
    """A Queryable whose selects see only series with `cluster="<name>"`."""

    def __init__(self, inner: Queryable, cluster: str) -> None:
        self.inner = inner
        self.cluster = cluster
        self._matcher = Matcher.eq(CLUSTER_LABEL, cluster)

    def querier(self, start_ms: int, end_ms: int) -> AbstractAsyncContextManager[Querier]:
        return self._querier(start_ms, end_ms)

    @asynccontextmanager
    async def _querier(self, start_ms: int, end_ms: int) -> AsyncIterator[Querier]:
        async with self.inner.querier(start_ms, end_ms) as querier:
            yield _ScopedQuerier(querier, self._matcher)


class _ScopedQuerier:
    def __init__(self, inner: Querier, matcher: Matcher) -> None:
        self.inner = inner
        self.matcher = matcher

    async def select(
        self,
        matchers: Sequence[Matcher],
        start_ms: int,
        end_ms: int,
        *,
        hints: SelectHints | None = None,
    ) -> SeriesSet:
        return await self.inner.select([*matchers, self.matcher], start_ms, end_ms, hints=hints)

    async def label_names(
        self, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        return await self.inner.label_names([*matchers, self.matcher], limit=limit)

    async def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        return await self.inner.label_values(name, [*matchers, self.matcher], limit=limit)
