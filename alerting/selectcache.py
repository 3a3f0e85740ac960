"""Selects shared by the rules of one group evaluation.

Rules of a group tend to read the same series over and over (a team's
dashboard rules rate, sum, count and threshold the same counters), and each
rule's query selects them anew. `SelectCache` wraps the group's Queryable for
one evaluation: a select whose matchers were already selected over a range
that contains this one is answered from the earlier answer, cut to this range,
instead of from storage.

The answer is keyed by matchers and range alone: the Querier contract makes
select hints only hints, which never change an answer (a Querier that pushed
work down through them would have to keep to that).

Two things keep it exact. The group's own writes (recording results, ALERTS)
drop every cached answer they could change before the next rule runs, so a
rule reading an earlier rule's output sees it, as rules of a group must. And
the cache lives for one evaluation only: the next one reads storage afresh.
(Samples that arrive while an evaluation runs are seen by all its rules or by
none, where uncached selects would let later rules see them and earlier ones
not.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import numpy as np

from storage.interfaces import LabelResult, Querier, Queryable, SelectHints, SeriesSet
from storage.labels import METRIC_NAME, Matcher, MatchType

MatcherKey = tuple[tuple[str, str, str], ...]


class SelectCache:
    """A Queryable for one group evaluation; see the module docstring."""

    def __init__(self, inner: Queryable) -> None:
        self.inner = inner
        self._sets: dict[MatcherKey, list[tuple[int, int, SeriesSet]]] = {}
        self.hits = 0
        self.misses = 0

    def querier(self, start_ms: int, end_ms: int) -> AbstractAsyncContextManager[Querier]:
        return self._querier(start_ms, end_ms)

    @asynccontextmanager
    async def _querier(self, start_ms: int, end_ms: int) -> AsyncIterator[Querier]:
        async with self.inner.querier(start_ms, end_ms) as querier:
            yield _CachingQuerier(querier, self)

    def lookup(self, key: MatcherKey, start_ms: int, end_ms: int) -> SeriesSet | None:
        for s, e, found in self._sets.get(key, ()):
            if s <= start_ms and end_ms <= e:
                self.hits += 1
                return found if (s, e) == (start_ms, end_ms) else cut(found, start_ms, end_ms)
        return None

    def store(self, key: MatcherKey, start_ms: int, end_ms: int, found: SeriesSet) -> None:
        self.misses += 1
        self._sets.setdefault(key, []).append((start_ms, end_ms, found))

    def invalidate(self, metric_names: Iterable[str]) -> None:
        """Forget answers that series named `metric_names` could belong to."""
        names = set(metric_names)
        if not names or not self._sets:
            return
        for key in [k for k in self._sets if _may_match(k, names)]:
            del self._sets[key]


def _may_match(key: MatcherKey, names: set[str]) -> bool:
    """Whether a selector could select a series with one of these metric names."""
    for kind, label, value in key:
        if label != METRIC_NAME:
            continue
        matcher = Matcher(MatchType(kind), label, value)
        if not any(matcher.matches(n) for n in names):
            return False
    return True


def matcher_key(matchers: Sequence[Matcher]) -> MatcherKey:
    return tuple(sorted((m.type.value, m.name, m.value) for m in matchers))


def cut(found: SeriesSet, start_ms: int, end_ms: int) -> SeriesSet:
    """The samples of `found` in [start_ms, end_ms]; series left with none are dropped."""
    ts = found.timestamps
    offsets = found.offsets
    n = len(found.labels)
    if n == 0:
        return found
    # Each series' timestamps are sorted: search them all at once on (series, time) keys.
    counts = np.diff(offsets)
    series_of = np.repeat(np.arange(n, dtype=np.int64), counts)
    base = int(ts.min()) if len(ts) else 0
    span = max(int(ts.max()) - base, end_ms - base, 0) + 2 if len(ts) else 2
    keys = series_of * span + (ts - base)
    # Bounds before the first sample clamp to -1: still inside their own series' keys.
    lo_keys = np.arange(n, dtype=np.int64) * span + max(start_ms - base, -1)
    hi_keys = np.arange(n, dtype=np.int64) * span + max(end_ms - base, -1)
    lo = np.searchsorted(keys, lo_keys, side="left")
    hi = np.searchsorted(keys, hi_keys, side="right")
    kept_counts = hi - lo
    keep = np.flatnonzero(kept_counts > 0)
    new_offsets = np.zeros(len(keep) + 1, dtype=np.int64)
    np.cumsum(kept_counts[keep], out=new_offsets[1:])
    index = np.repeat(lo[keep] - new_offsets[:-1], kept_counts[keep]) + np.arange(new_offsets[-1])
    labels = found.labels
    return SeriesSet(
        [labels[i] for i in keep.tolist()] if len(keep) != n else list(labels),
        new_offsets,
        ts[index],
        found.values[index],
        found.warnings,
    )


class _CachingQuerier:
    def __init__(self, inner: Querier, cache: SelectCache) -> None:
        self.inner = inner
        self.cache = cache

    async def select(
        self,
        matchers: Sequence[Matcher],
        start_ms: int,
        end_ms: int,
        *,
        hints: SelectHints | None = None,
    ) -> SeriesSet:
        key = matcher_key(matchers)
        found = self.cache.lookup(key, start_ms, end_ms)
        if found is None:
            found = await self.inner.select(matchers, start_ms, end_ms, hints=hints)
            self.cache.store(key, start_ms, end_ms, found)
        return found

    async def label_names(
        self, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        return await self.inner.label_names(matchers, limit=limit)

    async def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        return await self.inner.label_values(name, matchers, limit=limit)
