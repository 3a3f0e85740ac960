"""A plain in-memory Queryable: series held whole, matched by scanning.

For tests and tools that need a small, obviously-correct store (the PromQL
conformance runner, contract tests of the other Queriers). It is not the head:
it has no WAL and no index; of the limits it keeps only a select's sample limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import numpy as np
from numpy.typing import ArrayLike

from remote_write.histograms import HistogramBatch
from storage.errors import SampleLimitExceeded
from storage.histset import HistogramSet
from storage.interfaces import LabelResult, Querier, SelectHints, Series, SeriesSet
from storage.labels import Labels, Matcher, matches_all


class MemoryStorage:
    """Series by label set; adding samples to an existing series merges by timestamp."""

    def __init__(self) -> None:
        self._series: dict[Labels, tuple[np.ndarray, np.ndarray]] = {}
        self._hists: dict[Labels, HistogramBatch] = {}

    def add_histograms(self, labels: Labels, batch: HistogramBatch) -> None:
        """Add native histogram samples to a series; one at an existing timestamp replaces it."""
        old = self._hists.get(labels)
        both = batch if old is None else HistogramBatch.concat([batch, old])
        zero = both.with_series_idx(np.zeros(len(both), dtype=np.int32))
        self._hists[labels] = HistogramSet.build([labels], zero).samples

    def add(self, labels: Labels, timestamps: ArrayLike, values: ArrayLike) -> None:
        """Add samples to a series; a sample at an existing timestamp replaces it."""
        ts = np.asarray(timestamps, dtype=np.int64)
        vals = np.asarray(values, dtype=np.float64)
        old = self._series.get(labels)
        if old is not None:
            ts = np.concatenate([old[0], ts])
            vals = np.concatenate([old[1], vals])
        # Keep the last write for each timestamp, then sort by time.
        order = np.argsort(ts, kind="stable")
        ts, vals = ts[order], vals[order]
        last = np.ones(len(ts), dtype=bool)
        last[:-1] = ts[1:] != ts[:-1]
        self._series[labels] = (ts[last], vals[last])

    def clear(self) -> None:
        self._series.clear()
        self._hists.clear()

    @asynccontextmanager
    async def querier(self, start_ms: int, end_ms: int) -> AsyncIterator[Querier]:
        yield _MemoryQuerier(self._series, self._hists)


class _MemoryQuerier:
    def __init__(
        self,
        series: dict[Labels, tuple[np.ndarray, np.ndarray]],
        hists: dict[Labels, HistogramBatch] | None = None,
    ) -> None:
        self._series = series
        self._hists = hists or {}

    def _matching(self, matchers: Sequence[Matcher]) -> list[Labels]:
        names = list(self._series) + [lbl for lbl in self._hists if lbl not in self._series]
        return [lbl for lbl in names if matches_all(matchers, lbl)]

    def _histograms(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int
    ) -> HistogramSet | None:
        labels: list[Labels] = []
        parts = []
        for lbl, batch in self._hists.items():
            if not matches_all(matchers, lbl):
                continue
            t = batch.timestamps
            rows = np.flatnonzero((t >= start_ms) & (t <= end_ms))
            if len(rows):
                part = batch.take(rows)
                parts.append(part.with_series_idx(np.full(len(part), len(labels), np.int32)))
                labels.append(lbl)
        if not labels:
            return None
        return HistogramSet.build(labels, HistogramBatch.concat(parts))

    async def select(
        self,
        matchers: Sequence[Matcher],
        start_ms: int,
        end_ms: int,
        *,
        hints: SelectHints | None = None,
    ) -> SeriesSet:
        out = []
        limit = hints.sample_limit if hints is not None else None
        total = 0
        for labels in self._matching(matchers):
            if labels not in self._series:
                continue
            ts, vals = self._series[labels]
            lo, hi = np.searchsorted(ts, [start_ms, end_ms + 1])
            if hi > lo:
                total += int(hi - lo)
                if limit is not None and total > limit:
                    raise SampleLimitExceeded(total, limit)
                out.append(Series(labels, ts[lo:hi], vals[lo:hi]))
        result = SeriesSet.from_series(out)
        result.histograms = self._histograms(matchers, start_ms, end_ms)
        return result

    async def label_names(
        self, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        names = sorted({n for lbl in self._matching(matchers) for n, _ in lbl})
        return LabelResult(names[:limit] if limit else names)

    async def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        values = sorted({v for lbl in self._matching(matchers) if (v := lbl.get(name))})
        return LabelResult(values[:limit] if limit else values)
