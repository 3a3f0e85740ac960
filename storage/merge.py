"""One Querier over many: the head plus every pull cluster, merged in label order.

`MergeQuerier(primaries, secondaries, partial_response=...)` (Prometheus
`storage/fanout.go`, with Thanos's per-request partial-response strategy):
selects run on every source at once; a primary's failure fails the select,
a secondary's (a member cluster) becomes a warning that names it when
`partial_response` is on, and an error otherwise.

A source that declares `partition_labels` (every series it returns carries
them, e.g. `cluster="eu-1"`) is asked only if the matchers admit those
values: `{cluster=~"eu-.*"}` never reaches the other clusters.

Series with equal labels from several sources become one, their samples
merged by time with duplicate timestamps dropped (the first source wins).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from storage.annotations import Annotations
from storage.csr import offsets_of, ranges
from storage.errors import SampleLimitExceeded, StorageError, StorageUnavailable
from storage.histset import merge_histogram_sets
from storage.interfaces import LabelResult, Querier, SelectHints, SeriesSet
from storage.labels import Labels, Matcher

T = TypeVar("T")


@runtime_checkable
class Partitioned(Protocol):
    """A source whose series all carry `partition_labels`; `name` is how warnings call it."""

    @property
    def partition_labels(self) -> Labels: ...

    @property
    def name(self) -> str: ...


def admits(matchers: Sequence[Matcher], partition: Labels) -> bool:
    """Whether series carrying `partition` can match (each matcher on its labels accepts them)."""
    for m in matchers:
        if partition.has(m.name) and not m.matches(partition.get(m.name)):
            return False
    return True


class MergeQuerier:
    """A Querier over primary and secondary Queriers (see the module docstring)."""

    def __init__(
        self,
        primaries: Sequence[Querier],
        secondaries: Sequence[Querier],
        *,
        partial_response: bool = True,
    ) -> None:
        self.primaries = list(primaries)
        self.secondaries = list(secondaries)
        self.partial_response = partial_response

    def _sources(self, matchers: Sequence[Matcher]) -> tuple[list[Querier], list[Querier]]:
        wanted = [
            q
            for q in self.secondaries
            if not isinstance(q, Partitioned) or admits(matchers, q.partition_labels)
        ]
        return self.primaries, wanted

    async def _gather(
        self, matchers: Sequence[Matcher], call: Callable[[Querier], Awaitable[T]]
    ) -> tuple[list[T], Annotations]:
        primaries, secondaries = self._sources(matchers)
        results = await asyncio.gather(
            *(call(q) for q in primaries),
            *(call(q) for q in secondaries),
            return_exceptions=True,
        )
        warnings = Annotations()
        out: list[T] = []
        for i, res in enumerate(results):
            if not isinstance(res, BaseException):
                out.append(res)
                continue
            if i < len(primaries) or isinstance(res, SampleLimitExceeded):
                raise res
            if not isinstance(res, StorageError | OSError | asyncio.TimeoutError):
                raise res
            source = secondaries[i - len(primaries)]
            if not self.partial_response:
                raise StorageUnavailable(str(res)) from res
            name = source.name if isinstance(source, Partitioned) else "a source"
            warnings.warn(f"partial response: {name} left out of the answer: {res}")
        return out, warnings

    async def select(
        self,
        matchers: Sequence[Matcher],
        start_ms: int,
        end_ms: int,
        *,
        hints: SelectHints | None = None,
    ) -> SeriesSet:
        sets, warnings = await self._gather(
            matchers, lambda q: q.select(matchers, start_ms, end_ms, hints=hints)
        )
        merged = merge_series_sets(sets)
        limit = hints.sample_limit if hints is not None else None
        if limit is not None and merged.num_samples > limit:
            raise SampleLimitExceeded(merged.num_samples, limit)  # each source was within it
        merged.warnings = warnings.merge(merged.warnings)
        return merged

    async def label_names(
        self, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        results, warnings = await self._gather(
            matchers, lambda q: q.label_names(matchers, limit=limit)
        )
        return _union(results, warnings, limit)

    async def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        results, warnings = await self._gather(
            matchers, lambda q: q.label_values(name, matchers, limit=limit)
        )
        return _union(results, warnings, limit)


def _union(results: list[LabelResult], warnings: Annotations, limit: int | None) -> LabelResult:
    found: set[str] = set()
    for r in results:
        found.update(r.values)
        warnings.merge(r.warnings)
    values = sorted(found)
    return LabelResult(values[:limit] if limit else values, warnings)


def merge_series_sets(sets: Sequence[SeriesSet]) -> SeriesSet:
    """One set in label order from sets each in label order; equal label sets merge by time.

    Native histogram samples (`SeriesSet.histograms`) merge the same way.
    """
    out = _merge_series_sets_floats(sets)
    out.histograms = merge_histogram_sets([s.histograms for s in sets])
    return out


def _merge_series_sets_floats(sets: Sequence[SeriesSet]) -> SeriesSet:
    """One set in label order from sets each in label order; equal label sets merge by time.

    Where two sources hold the same series, their samples are interleaved by
    timestamp and a timestamp present in both keeps the earlier source's sample.
    """
    warnings = Annotations()
    for s in sets:
        warnings.merge(s.warnings)
    nonempty = [s for s in sets if len(s)]
    if len(nonempty) <= 1:
        if not nonempty:
            return SeriesSet.empty(warnings)
        only = nonempty[0]
        return SeriesSet(only.labels, only.offsets, only.timestamps, only.values, warnings)
    labels: list[Labels] = []
    sizes = []
    starts = []
    base = 0
    for s in nonempty:
        labels.extend(s.labels)
        sizes.append(np.diff(s.offsets))
        starts.append(s.offsets[:-1] + base)
        base += s.num_samples
    ts_all = np.concatenate([s.timestamps for s in nonempty])
    values_all = np.concatenate([s.values for s in nonempty])
    return _sort_and_merge(
        labels, np.concatenate(starts), np.concatenate(sizes), ts_all, values_all, warnings
    )


def sort_series(
    labels: list[Labels],
    offsets: NDArray[np.int64],
    timestamps: NDArray[np.int64],
    values: NDArray[np.float64],
) -> SeriesSet:
    """A set in label order from series in any order (each sorted by time); equal labels merge."""
    return _sort_and_merge(
        labels, offsets[:-1], np.diff(offsets), timestamps, values, Annotations()
    )


def _sort_and_merge(
    labels: list[Labels],
    start: NDArray[np.int64],
    size: NDArray[np.int64],
    ts_all: NDArray[np.int64],
    values_all: NDArray[np.float64],
    warnings: Annotations,
) -> SeriesSet:
    order = sorted(range(len(labels)), key=labels.__getitem__)  # stable: earlier source first
    ordered = [labels[i] for i in order]
    which = np.asarray(order, dtype=np.int64)
    rows = ranges(start[which], size[which])
    ts = ts_all[rows]
    values = values_all[rows]
    first_of_group = np.ones(len(ordered), dtype=bool)
    first_of_group[1:] = [a != b for a, b in zip(ordered[1:], ordered[:-1], strict=True)]
    row_sizes = size[which]
    if first_of_group.all():
        return SeriesSet(ordered, offsets_of(row_sizes), ts, values, warnings)
    group = np.cumsum(first_of_group) - 1
    sample_group = np.repeat(group, row_sizes)
    by_time = np.lexsort((ts, sample_group))  # stable: equal times keep source order
    ts, values, sample_group = ts[by_time], values[by_time], sample_group[by_time]
    keep = np.ones(len(ts), dtype=bool)
    keep[1:] = (ts[1:] != ts[:-1]) | (sample_group[1:] != sample_group[:-1])
    ts, values, sample_group = ts[keep], values[keep], sample_group[keep]
    merged_labels = [lbl for lbl, f in zip(ordered, first_of_group.tolist(), strict=True) if f]
    counts = np.bincount(sample_group, minlength=len(merged_labels)).astype(np.int64)
    return SeriesSet(merged_labels, offsets_of(counts), ts, values, warnings)
