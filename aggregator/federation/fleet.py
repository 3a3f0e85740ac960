"""The fleet Queryable: the head and every pull cluster behind the one Querier seam.

Per query it stacks, bottom up: `MergeQuerier` (head as primary, pull clusters
as secondaries, asked only if the `cluster` matchers admit them, all at once),
freshness warnings for the clusters a select touches, HA dedup over
`query.replica_labels` (unless `dedup=false`), and the workspace label when
`query.workspace_label` is set. PromQL, the series and labels API, remote
read and (later) rules all read through it.

On a scale-out's query tier the local storage also reads the shards' blocks
from the object store (`storage.object_store.read_prefixes`); its querier
tells, per prefix, the newest sample time those blocks hold (`horizons`), and
a shard whose `object_store_prefix` is one of them answers from its own
blocks only what is newer, and from its head everything
(`remote_read.BLOCKS_READ_THROUGH`). The shard keeps a sample in its head
until the block holding it is uploaded, so together nothing is missing: the
blocks we read, the shard's newer blocks, its head (recent samples, and late
ones not cut into a block yet). The merge's dedup of equal (series,
timestamp) pairs covers the edges where both answer a sample (a block listed
here before the shard dropped its samples from the head).
Shards take no pushdown (`keep_cluster_label`), so their part is always raw.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

from aggregator.config import QueryConfig
from aggregator.federation.pushdown import MemberEngine
from aggregator.federation.registry import ClusterRegistry
from aggregator.federation.workspace import WorkspaceQuerier
from promql.distribute import RemoteEngine
from storage.dedup import DedupQuerier
from storage.interfaces import LabelResult, Querier, Queryable, SelectHints, SeriesSet
from storage.labels import CLUSTER_LABEL, Labels, Matcher
from storage.merge import MergeQuerier, admits


@runtime_checkable
class ReadsSharedBlocks(Protocol):
    """A local querier that also reads other writers' blocks (a scale-out's query tier)."""

    @property
    def horizons(self) -> Mapping[str, int]:
        """Per object-store prefix, the newest sample time this query reads there."""
        ...


@dataclass(frozen=True, slots=True)
class FleetOptions:
    """Per-request switches (query parameters over config defaults)."""

    partial_response: bool = True
    dedup: bool = True
    pushdown: bool = True


class Fleet:
    """A Queryable over the head (`local`) and the registry's pull clusters."""

    def __init__(
        self,
        local: Queryable,
        registry: ClusterRegistry,
        query: QueryConfig,
        options: FleetOptions | None = None,
        excluded: frozenset[str] = frozenset(),
    ) -> None:
        self.local = local
        self.registry = registry
        self.query = query
        self.options = options or FleetOptions(partial_response=query.partial_response)
        self.excluded = excluded

    def with_options(self, **changes: bool) -> Fleet:
        return Fleet(self.local, self.registry, self.query, replace(self.options, **changes))

    # -- pushdown (promql.distribute.Distributable) --------------------------------

    @property
    def partial_response(self) -> bool:
        return self.options.partial_response

    @property
    def opaque_labels(self) -> Collection[str]:
        """Labels members cannot see: replica labels under dedup, the workspace label."""
        names = set(self.query.replica_labels) if self.options.dedup else set()
        if self.query.workspace_label:
            names.add(self.query.workspace_label)
        return names

    def remote_engines(self) -> Sequence[RemoteEngine]:
        """Members that can take pushed work: healthy, version and external labels known,
        and (under dedup) not one of several replicas."""
        if not self.options.pushdown:
            return []
        pulls = self.registry.pulls
        replicas = set(self.query.replica_labels) if self.options.dedup else set()
        shared = {
            s.cluster.name
            for s in pulls
            if sum(o.cluster.name == s.cluster.name for o in pulls) > 1
        }
        out: list[RemoteEngine] = []
        for state in pulls:
            if state.cluster.name in self.excluded or not state.healthy:
                continue
            if state.cluster.keep_cluster_label:  # many clusters: no one partition label
                continue
            if state.cluster.object_store_prefix:  # part of its data is read from blocks
                continue
            if state.version is None or state.external_labels is None or state.session is None:
                continue
            if replicas and (
                state.cluster.name in shared or replicas & set(state.external_labels.names())
            ):
                continue
            out.append(MemberEngine(state, self.registry.metrics, self.registry.mark_failed))
        return out

    def without(self, names: Collection[str]) -> Queryable:
        """This fleet minus the named pull clusters (by RemoteEngine name)."""
        clusters = {n.removeprefix('cluster "').removesuffix('"') for n in names}
        return Fleet(self.local, self.registry, self.query, self.options, self.excluded | clusters)

    def querier(self, start_ms: int, end_ms: int) -> AbstractAsyncContextManager[Querier]:
        return self._querier(start_ms, end_ms)

    @asynccontextmanager
    async def _querier(self, start_ms: int, end_ms: int) -> AsyncIterator[Querier]:
        async with self.local.querier(start_ms, end_ms) as head:
            horizons = head.horizons if isinstance(head, ReadsSharedBlocks) else None
            q: Querier = MergeQuerier(
                [head],
                [
                    q
                    for q in [
                        *self.registry.pull_queriers(start_ms, end_ms, horizons),
                        *self.registry.edge_queriers(start_ms, end_ms),
                    ]
                    if q.cluster.name not in self.excluded
                ],
                partial_response=self.options.partial_response,
            )
            q = FreshnessQuerier(q, self.registry)
            if self.options.dedup and self.query.replica_labels:
                q = DedupQuerier(q, self.query.replica_labels)
            if self.query.workspace_label:
                as_of = min(end_ms, int(time.time() * 1000))  # label APIs default to all time
                q = WorkspaceQuerier(
                    q, self.query.workspace_label, as_of, self.query.lookback_delta_ms
                )
            yield q


class FreshnessQuerier:
    """Adds a warning for every stale cluster a call's matchers admit."""

    def __init__(self, inner: Querier, registry: ClusterRegistry) -> None:
        self.inner = inner
        self.registry = registry

    def _warnings(self, matchers: Sequence[Matcher]) -> list[str]:
        def admitted(name: str) -> bool:
            return admits(matchers, Labels.from_pairs([(CLUSTER_LABEL, name)]))

        return list(self.registry.freshness_warnings(admitted))

    async def select(
        self,
        matchers: Sequence[Matcher],
        start_ms: int,
        end_ms: int,
        *,
        hints: SelectHints | None = None,
    ) -> SeriesSet:
        ss = await self.inner.select(matchers, start_ms, end_ms, hints=hints)
        for w in self._warnings(matchers):
            ss.warnings.warn(w)
        return ss

    async def label_names(
        self, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        res = await self.inner.label_names(matchers, limit=limit)
        for w in self._warnings(matchers):
            res.warnings.warn(w)
        return res

    async def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        res = await self.inner.label_values(name, matchers, limit=limit)
        for w in self._warnings(matchers):
            res.warnings.warn(w)
        return res
