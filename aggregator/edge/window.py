"""The agent's short in-memory window: every scraped and recorded sample of the last minutes.

An edge agent keeps minutes, not hours, so a plain design is enough: a series
table (label set -> id) and a list of appended chunks, each three numpy
columns (series id, timestamp, value) as one scrape or one rule evaluation
produced them. A select concatenates the chunks once (cached until the next
append), keeps the rows of the matching series and the time range with one
mask, and orders them by (series, time) with `np.lexsort`. Chunks older than
the window are dropped whole, and series with no sample left leave the table.

All methods run on the event loop (the agent is single-threaded); a select
returns copies, so the engine may evaluate them in its worker threads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from storage.interfaces import LabelResult, Querier, SelectHints, SeriesSet
from storage.labels import Labels, Matcher, matches_all
from storage.merge import sort_series

_EMPTY_I32 = np.zeros(0, dtype=np.int32)
_EMPTY_I64 = np.zeros(0, dtype=np.int64)
_EMPTY_F64 = np.zeros(0, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Chunk:
    """Samples appended at once; `max_t` decides when the whole chunk leaves the window.

    A scrape or an evaluation stamps all its samples with one time: then
    `timestamps` is that int rather than a column (8 of the 20 bytes a sample
    costs), and a scrape that found the same series as the previous chunk shares
    its `sids` array.
    """

    sids: NDArray[np.int32]
    timestamps: NDArray[np.int64] | int
    values: NDArray[np.float64]
    max_t: int

    def timestamp_column(self) -> NDArray[np.int64]:
        if isinstance(self.timestamps, int):
            return np.full(len(self.values), self.timestamps, dtype=np.int64)
        return self.timestamps


class Window:
    """A Queryable over the last `window_ms` of samples (see the module docstring)."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self._ids: dict[Labels, int] = {}
        self._labels: list[Labels | None] = []
        self._free: list[int] = []
        self._chunks: list[Chunk] = []
        self._flat: tuple[NDArray[np.int32], NDArray[np.int64], NDArray[np.float64]] | None = None

    @property
    def num_series(self) -> int:
        return len(self._ids)

    @property
    def num_samples(self) -> int:
        return sum(len(c.values) for c in self._chunks)

    def series_id(self, labels: Labels) -> int:
        """The id of `labels`, adding the series when new."""
        sid = self._ids.get(labels)
        if sid is None:
            if self._free:
                sid = self._free.pop()
                self._labels[sid] = labels
            else:
                sid = len(self._labels)
                self._labels.append(labels)
            self._ids[labels] = sid
        return sid

    def append(
        self,
        labels: Sequence[Labels],
        timestamps: NDArray[np.int64] | int,
        values: NDArray[np.float64] | Sequence[float],
    ) -> None:
        """Add one sample per label set (all at `timestamps` when it is one int)."""
        if not labels:
            return
        sids = np.fromiter((self.series_id(lbl) for lbl in labels), np.int32, len(labels))
        for prev in reversed(self._chunks[-4:]):  # the same target's previous scrape
            if len(prev.sids) == len(sids) and np.array_equal(prev.sids, sids):
                sids = prev.sids
                break
        vals = np.asarray(values, dtype=np.float64)
        ts: NDArray[np.int64] | int
        if isinstance(timestamps, int):
            ts = max_t = timestamps
        else:
            column = np.asarray(timestamps, dtype=np.int64)
            max_t = int(column.max())
            ts = max_t if int(column.min()) == max_t else column
        self._chunks.append(Chunk(sids, ts, vals, max_t))
        self._flat = None

    def truncate(self, now_ms: int) -> None:
        """Drop chunks wholly older than the window, then the series left without samples."""
        cutoff = now_ms - self.window_ms
        kept = [c for c in self._chunks if c.max_t >= cutoff]
        if len(kept) == len(self._chunks):
            return
        self._chunks = kept
        self._flat = None
        alive = np.zeros(len(self._labels), dtype=bool)
        for c in kept:
            alive[c.sids] = True
        for sid in np.flatnonzero(~alive).tolist():
            lbl = self._labels[sid]
            if lbl is not None:
                del self._ids[lbl]
                self._labels[sid] = None
                self._free.append(sid)

    def _columns(self) -> tuple[NDArray[np.int32], NDArray[np.int64], NDArray[np.float64]]:
        if self._flat is None:
            if self._chunks:
                self._flat = (
                    np.concatenate([c.sids for c in self._chunks]),
                    np.concatenate([c.timestamp_column() for c in self._chunks]),
                    np.concatenate([c.values for c in self._chunks]),
                )
            else:
                self._flat = (_EMPTY_I32, _EMPTY_I64, _EMPTY_F64)
        return self._flat

    def release(self) -> None:
        """Drop the concatenated columns the selects of one evaluation shared.

        They are a second copy of every sample in the window (20 bytes each: 1.8 MB
        for 1.5k series over 15 minutes at 15 s), and the next scrape's append would
        invalidate them anyway; the rule groups release them once evaluated.
        """
        self._flat = None

    def label_of(self, sid: int) -> Labels:
        lbl = self._labels[sid]
        if lbl is None:
            raise KeyError(sid)
        return lbl

    def id_of(self, labels: Labels) -> int | None:
        return self._ids.get(labels)

    def matching(self, matchers: Sequence[Matcher]) -> list[int]:
        """Ids of the series every matcher admits (a scan: an edge holds a few thousand)."""
        return [sid for lbl, sid in self._ids.items() if matches_all(matchers, lbl)]

    def select_ids(self, sids: Sequence[int], start_ms: int, end_ms: int) -> SeriesSet:
        """The samples of series `sids` in [start_ms, end_ms], as a SeriesSet."""
        if not sids:
            return SeriesSet.empty()
        all_sids, all_ts, all_vals = self._columns()
        wanted = np.zeros(len(self._labels), dtype=bool)
        wanted[np.asarray(sids, dtype=np.int64)] = True
        mask = wanted[all_sids] & (all_ts >= start_ms) & (all_ts <= end_ms)
        s, t, v = all_sids[mask], all_ts[mask], all_vals[mask]
        order = np.lexsort((t, s))
        s, t, v = s[order], t[order], v[order]
        # One sample per (series, timestamp): the last appended wins.
        if len(t) > 1:
            keep = np.ones(len(t), dtype=bool)
            keep[:-1] = (s[1:] != s[:-1]) | (t[1:] != t[:-1])
            s, t, v = s[keep], t[keep], v[keep]
        present, counts = np.unique(s, return_counts=True)
        offsets = np.zeros(len(present) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        labels = [self._labels[i] for i in present.tolist()]
        return sort_series([lbl for lbl in labels if lbl is not None], offsets, t, v)

    def querier(self, start_ms: int, end_ms: int) -> AbstractAsyncContextManager[Querier]:
        return self._querier()

    @asynccontextmanager
    async def _querier(self) -> AsyncIterator[Querier]:
        yield _WindowQuerier(self)


class _WindowQuerier:
    def __init__(self, window: Window) -> None:
        self.window = window

    async def select(
        self,
        matchers: Sequence[Matcher],
        start_ms: int,
        end_ms: int,
        *,
        hints: SelectHints | None = None,
    ) -> SeriesSet:
        w = self.window
        return w.select_ids(w.matching(matchers), start_ms, end_ms)

    async def label_names(
        self, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        w = self.window
        names = sorted({n for sid in w.matching(matchers) for n, _ in w._labels[sid] or ()})
        return LabelResult(names[:limit] if limit else names)

    async def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        w = self.window
        values = sorted(
            {v for sid in w.matching(matchers) if (v := (w._labels[sid] or Labels()).get(name))}
        )
        return LabelResult(values[:limit] if limit else values)
