"""A reader limited to some clusters sees only their series, whatever it asks.

`ScopedQueryable` wraps the fleet Queryable for such a reader (a web-config
user or token with `clusters: [...]`). Every select, label-names and
label-values call of its Querier carries one more matcher, `cluster` in the
allowed set, so the head's index, the pull clusters (only admitted ones are
asked at all) and freshness warnings all see the restricted selector; the
series a select returns are checked once more by their `cluster` label.
Pushdown goes only to allowed members. Nothing rewrites PromQL text: the
restriction lives at the one seam every read passes through.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import cast

import numpy as np

from promql.distribute import Distributable, RemoteEngine
from storage.interfaces import LabelResult, Querier, Queryable, SelectHints, SeriesSet
from storage.labels import CLUSTER_LABEL, Matcher, MatchType


def cluster_matcher(clusters: Collection[str]) -> Matcher:
    """`cluster` is one of `clusters` (an equality for one, an anchored regex for several)."""
    names = sorted(clusters)
    if len(names) == 1:
        return Matcher(MatchType.EQ, CLUSTER_LABEL, names[0])
    return Matcher(MatchType.RE, CLUSTER_LABEL, "|".join(map(re.escape, names)))


class ScopedQuerier:
    """A Querier whose every call is limited to the allowed clusters."""

    def __init__(self, inner: Querier, clusters: frozenset[str]) -> None:
        self.inner = inner
        self.clusters = clusters
        self._matcher = cluster_matcher(clusters)

    def _scoped(self, matchers: Sequence[Matcher]) -> list[Matcher]:
        return [*matchers, self._matcher]

    async def select(
        self,
        matchers: Sequence[Matcher],
        start_ms: int,
        end_ms: int,
        *,
        hints: SelectHints | None = None,
    ) -> SeriesSet:
        ss = await self.inner.select(self._scoped(matchers), start_ms, end_ms, hints=hints)
        return only_clusters(ss, self.clusters)

    async def label_names(
        self, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        return await self.inner.label_names(self._scoped(matchers), limit=limit)

    async def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        return await self.inner.label_values(name, self._scoped(matchers), limit=limit)


def only_clusters(ss: SeriesSet, clusters: frozenset[str]) -> SeriesSet:
    """The set without series whose `cluster` is not allowed (a second line of defence)."""
    keep = [lbl.get(CLUSTER_LABEL) in clusters for lbl in ss.labels]
    if all(keep):
        return ss
    which = np.flatnonzero(keep)
    sizes = np.diff(ss.offsets)[which]
    offsets = np.zeros(len(which) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    rows = np.repeat(ss.offsets[:-1][which] - offsets[:-1], sizes) + np.arange(int(offsets[-1]))
    return SeriesSet(
        [ss.labels[i] for i in which.tolist()],
        offsets,
        ss.timestamps[rows],
        ss.values[rows],
        ss.warnings,
    )


class ScopedQueryable:
    """The fleet for a reader limited to `clusters` (also pushdown-capable, if the fleet is)."""

    def __init__(self, inner: Queryable, clusters: frozenset[str]) -> None:
        self.inner = inner
        self.clusters = clusters

    def querier(self, start_ms: int, end_ms: int) -> AbstractAsyncContextManager[Querier]:
        return self._querier(start_ms, end_ms)

    @asynccontextmanager
    async def _querier(self, start_ms: int, end_ms: int) -> AsyncIterator[Querier]:
        async with self.inner.querier(start_ms, end_ms) as q:
            yield ScopedQuerier(q, self.clusters)

    # -- pushdown (promql.distribute.Distributable), only to allowed members ------

    @property
    def partial_response(self) -> bool:
        return bool(getattr(self.inner, "partial_response", True))

    @property
    def opaque_labels(self) -> Collection[str]:
        return cast(Collection[str], getattr(self.inner, "opaque_labels", ()))

    def remote_engines(self) -> Sequence[RemoteEngine]:
        if not hasattr(self.inner, "remote_engines"):
            return []
        engines = cast(Distributable, self.inner).remote_engines()
        return [e for e in engines if e.partition_labels.get(CLUSTER_LABEL) in self.clusters]

    def without(self, names: Collection[str]) -> Queryable:
        return ScopedQueryable(cast(Distributable, self.inner).without(names), self.clusters)
