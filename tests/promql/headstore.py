"""The conformance scripts' store when they run through the real head.

A `storage.db.Storage` opened on a temporary directory; every `load` block
goes in as one `WriteBatch` through an appender and its WAL commit, exactly
as a remote-write request would; `clear` closes it and opens a fresh one.
Retention and the out-of-order window are wide open, because the scripts'
samples start at the epoch and loads may come in any time order.

The head refuses what the memory store silently merges (a second value at a
stored timestamp, a label name remote write does not allow): such a refusal
fails the evals after the load, naming the rejection.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from remote_write.batch import WriteBatch
from remote_write.histograms import HistogramBatch
from storage.db import Storage
from storage.interfaces import Queryable
from storage.labels import Labels
from storage.options import FsyncPolicy, StorageOptions

CENTURY_MS = 100 * 365 * 24 * 3_600_000

OPTIONS = StorageOptions(
    retention_ms=CENTURY_MS,
    out_of_order_window_ms=CENTURY_MS,
    max_series_per_cluster=0,
    wal_fsync=FsyncPolicy.NEVER,
)


class LoadRefused(AssertionError):
    """The head refused samples of a `load` that the reference store keeps."""


class HeadStore:
    """A `Store` (see `tests.promql.promqltest`) backed by a real `Storage`."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._opened = itertools.count()
        self._storage: Storage | None = None
        self.refused: list[str] = []
        """Rejections of loads since the last clear, as `reason: series`."""

    async def open(self) -> None:
        self._storage = await Storage.open(self._root / f"db-{next(self._opened)}", OPTIONS)

    async def close(self) -> None:
        if self._storage is not None:
            await self._storage.close()
            self._storage = None

    @property
    def queryable(self) -> Queryable:
        assert self._storage is not None, "open() first"
        if self.refused:
            raise LoadRefused(f"the head refused loaded samples: {'; '.join(self.refused[:3])}")
        return self._storage

    async def add(self, series: list[tuple[Labels, np.ndarray, np.ndarray]]) -> None:
        if not series:
            return
        assert self._storage is not None, "open() first"
        batch = WriteBatch.from_series([(tuple(lbl), ts, vals) for lbl, ts, vals in series])
        appender = self._storage.appender()
        result = appender.append(batch)
        await appender.commit()
        self.refused += [f"{r.reason}: {r.series}" for r in result.rejected]

    async def add_histograms(self, series: list[tuple[Labels, HistogramBatch]]) -> None:
        if not series:
            return
        assert self._storage is not None, "open() first"
        parts = [b.with_series_idx(np.full(len(b), i, np.int32)) for i, (_, b) in enumerate(series)]
        batch = WriteBatch(
            series=[tuple(lbl) for lbl, _ in series],
            series_idx=np.zeros(0, dtype=np.int32),
            timestamps=np.zeros(0, dtype=np.int64),
            values=np.zeros(0),
            histograms=HistogramBatch.concat(parts),
        )
        appender = self._storage.appender()
        result = appender.append(batch)
        await appender.commit()
        self.refused += [f"{r.reason}: {r.series}" for r in result.rejected]

    async def clear(self) -> None:
        await self.close()
        self.refused = []
        await self.open()
