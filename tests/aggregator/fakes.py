"""A small in-memory stand-in for `storage.db.Storage`, for handler tests.

It keeps the Backend contract the API relies on (validation reported as
`Rejection`s, the cluster override, a per-cluster series limit reported as a
retryable rejection, metadata, readiness) on top of `storage.memory.MemoryStorage`.
Tests that need the WAL, replay or the real head use the real Storage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np

from remote_write.batch import Rejection, WriteBatch
from remote_write.validate import SeriesLimits, check_series, render_pairs
from storage.annotations import Annotations
from storage.interfaces import AppendResult, LabelResult, Querier, SeriesSet
from storage.labels import CLUSTER_LABEL, Labels
from storage.memory import MemoryStorage
from storage.options import StorageOptions


class FakeStorage:
    """Backend over MemoryStorage; `fail_commit` makes commits raise, `ready` can be toggled."""

    def __init__(self, *, max_series_per_cluster: int = 0) -> None:
        self.memory = MemoryStorage()
        self.ready = True
        self.closed = False
        self.fail_commit: Exception | None = None
        self.max_series_per_cluster = max_series_per_cluster
        self.limits = SeriesLimits()
        self.commits = 0
        self.warnings: list[str] = []
        """Warnings every select / label call reports (like a member cluster that is down)."""
        self._metadata: dict[str, list[dict[str, str]]] = {}

    @classmethod
    async def open(cls, data_dir: Path, options: StorageOptions) -> FakeStorage:
        store = cls(max_series_per_cluster=options.max_series_per_cluster)
        store.limits = options.series_limits
        return store

    def appender(self, *, cluster: str | None = None) -> _FakeAppender:
        return _FakeAppender(self, cluster)

    @asynccontextmanager
    async def querier(self, start_ms: int, end_ms: int) -> AsyncIterator[Querier]:
        async with self.memory.querier(start_ms, end_ms) as q:
            yield _WarningQuerier(q, self.warnings) if self.warnings else q

    def metadata(
        self, metric: str | None = None, limit: int | None = None
    ) -> dict[str, list[dict[str, str]]]:
        names = [metric] if metric else sorted(self._metadata)
        out = {n: self._metadata[n] for n in names if n in self._metadata}
        return dict(list(out.items())[:limit]) if limit else out

    def active_series_by_cluster(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for labels in self.memory._series:
            c = labels.get(CLUSTER_LABEL)
            counts[c] = counts.get(c, 0) + 1
        return counts

    async def close(self) -> None:
        self.closed = True


class _FakeAppender:
    def __init__(self, store: FakeStorage, cluster: str | None) -> None:
        self.store = store
        self.cluster = cluster
        self.pending: list[tuple[Labels, np.ndarray, np.ndarray]] = []

    def append(self, batch: WriteBatch) -> AppendResult:
        result = AppendResult()
        order = np.argsort(batch.series_idx, kind="stable")
        bounds = np.searchsorted(batch.series_idx[order], np.arange(len(batch.series) + 1))
        active = self.store.active_series_by_cluster()
        for i, pairs in enumerate(batch.series):
            rows = order[bounds[i] : bounds[i + 1]]
            problem = check_series(pairs, self.store.limits)
            if problem is not None:
                result.rejected.append(
                    Rejection(render_pairs(pairs), problem.reason, problem.message, len(rows))
                )
                continue
            labels = Labels.from_pairs(pairs)
            if self.cluster is not None:
                labels = labels.with_(CLUSTER_LABEL, self.cluster)
            cluster = labels.get(CLUSTER_LABEL)
            limit = self.store.max_series_per_cluster
            if (
                limit
                and labels not in self.store.memory._series
                and active.get(cluster, 0) >= limit
            ):
                result.rejected.append(
                    Rejection(
                        str(labels),
                        "series_limit",
                        f"cluster {cluster!r} is at its limit of {limit} active series; "
                        f"new series {labels} refused",
                        len(rows),
                        retryable=True,
                    )
                )
                continue
            active[cluster] = active.get(cluster, 0) + 1
            self.pending.append((labels, batch.timestamps[rows], batch.values[rows]))
            result.accepted += len(rows)
        for meta in batch.metadata:
            entry = {"type": meta.type, "help": meta.help, "unit": meta.unit}
            entries = self.store._metadata.setdefault(meta.metric_family_name, [])
            if entry not in entries:
                entries.append(entry)
        return result

    async def commit(self) -> None:
        if self.store.fail_commit is not None:
            raise self.store.fail_commit
        for labels, ts, vals in self.pending:
            self.store.memory.add(labels, ts, vals)
        self.pending.clear()
        self.store.commits += 1


class _WarningQuerier:
    def __init__(self, inner: Querier, warnings: list[str]) -> None:
        self.inner = inner
        self.warnings = warnings

    async def select(self, *args: Any, **kwargs: Any) -> SeriesSet:
        result = await self.inner.select(*args, **kwargs)
        result.warnings.merge(Annotations.of_warnings(self.warnings))
        return result

    async def label_names(self, *args: Any, **kwargs: Any) -> LabelResult:
        result = await self.inner.label_names(*args, **kwargs)
        result.warnings.merge(Annotations.of_warnings(self.warnings))
        return result

    async def label_values(self, *args: Any, **kwargs: Any) -> LabelResult:
        result = await self.inner.label_values(*args, **kwargs)
        result.warnings.merge(Annotations.of_warnings(self.warnings))
        return result
