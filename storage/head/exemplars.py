"""Exemplars in the head: one bounded ring for all series, read per series.

Like Prometheus's exemplar storage (`storage.exemplars.max_exemplars`), the
head keeps the newest `capacity` exemplars of all series in one circular
buffer: numpy columns (series id, timestamp, value) plus one label tuple per
slot. A full ring overwrites its oldest exemplar, so memory is fixed however
many series send them. Reads pick a set of series (from the index) and a
time range with one vectorized scan of the ring.

Checks follow Prometheus's (`tsdb/exemplar.go`), and, as in its
remote-write receiver, a refused exemplar never fails the request: it is
counted by reason.
- labels longer than 128 characters together: `exemplar_labels_too_long`;
- the same timestamp, value and labels as the series' newest: a duplicate,
  skipped silently (a sender's retry);
- not newer than the series' newest exemplar: `exemplar_out_of_order`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from remote_write.exemplars import ExemplarBatch, LabelPairs, labels_too_long

NO_EXEMPLAR = -(1 << 62)


@dataclass(frozen=True, slots=True)
class SeriesExemplars:
    """One series' exemplars in a time range, oldest first."""

    sid: int
    timestamps: NDArray[np.int64]
    values: NDArray[np.float64]
    labels: list[LabelPairs]


class ExemplarRing:
    """The head's exemplars; see the module docstring. Event-loop only, like the head."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(0, capacity)
        self._sid = np.full(self.capacity, -1, dtype=np.int64)
        self._ts = np.zeros(self.capacity, dtype=np.int64)
        self._values = np.zeros(self.capacity, dtype=np.float64)
        self._labels: list[LabelPairs] = [()] * self.capacity
        self._next = 0
        self._newest_ts = np.full(1024, NO_EXEMPLAR, dtype=np.int64)
        self._newest: dict[int, tuple[float, LabelPairs]] = {}
        """Value and labels of each series' newest exemplar, for the duplicate check."""
        self.refused: Counter[str] = Counter()
        """Exemplars refused so far, by reason (self-metrics)."""

    def __len__(self) -> int:
        return int((self._sid >= 0).sum())

    def add(self, sids: NDArray[np.int64], batch: ExemplarBatch) -> tuple[int, dict[str, int]]:
        """Store the exemplars of `batch` whose series id `sids[i]` is >= 0 and that pass
        the checks; returns how many were stored and the refusals by reason."""
        refused: Counter[str] = Counter()
        if not self.capacity or not len(batch):
            return 0, {}
        sid = sids[batch.series_idx]
        ts, values = batch.timestamps, batch.values
        rows = np.flatnonzero(sid >= 0)
        long = labels_too_long(batch.labels)
        if long[rows].any():
            refused["exemplar_labels_too_long"] += int(long[rows].sum())
            rows = rows[~long[rows]]
        if not len(rows):
            return 0, dict(refused)
        self._grow(int(sid[rows].max()) + 1)
        rows = rows[np.lexsort((ts[rows], sid[rows]))]
        s, t = sid[rows], ts[rows]
        first = np.ones(len(rows), dtype=np.bool_)
        first[1:] = s[1:] != s[:-1]
        # Newest stored before this row: the series' newest, or the previous row's.
        newest = self._newest_ts[s]
        before = np.where(first, newest, np.maximum(newest, np.roll(t, 1)))
        keep = t > before
        duplicate = np.zeros(len(rows), dtype=np.bool_)
        for k in np.flatnonzero(~keep & (t == newest)).tolist():  # a retry of the newest?
            hit = self._newest.get(int(s[k]))
            row = int(rows[k])
            duplicate[k] = hit is not None and hit == (float(values[row]), batch.labels[row])
        if n := int((~keep & ~duplicate).sum()):
            refused["exemplar_out_of_order"] += n
        rows, s, t = rows[keep], s[keep], t[keep]
        stored = len(rows)
        if stored:
            self._write(rows, s, t, batch)
        out = {k: v for k, v in refused.items() if v}
        self.refused.update(out)
        return stored, out

    def _write(
        self,
        rows: NDArray[np.int64],
        s: NDArray[np.int64],
        t: NDArray[np.int64],
        batch: ExemplarBatch,
    ) -> None:
        if len(rows) > self.capacity:  # only the newest fit
            order = np.argsort(t, kind="stable")[-self.capacity :]
            rows, s, t = rows[order], s[order], t[order]
        slots = (self._next + np.arange(len(rows))) % self.capacity
        self._next = int((self._next + len(rows)) % self.capacity)
        self._sid[slots] = s
        self._ts[slots] = t
        self._values[slots] = batch.values[rows]
        labels = batch.labels
        for slot, row in zip(slots.tolist(), rows.tolist(), strict=True):
            self._labels[slot] = labels[row]
        last = np.ones(len(s), dtype=np.bool_)
        order = np.lexsort((t, s))
        ss, tt, rr = s[order], t[order], rows[order]
        last[:-1] = ss[1:] != ss[:-1]
        self._newest_ts[ss[last]] = tt[last]
        for sid, row in zip(ss[last].tolist(), rr[last].tolist(), strict=True):
            self._newest[sid] = (float(batch.values[row]), labels[row])

    def forget(self, sids: NDArray[np.int64]) -> None:
        """Series that left the head: their exemplars are unreachable (ids are never
        reused) and age out of the ring; their per-series state goes now."""
        for sid in sids.tolist():
            self._newest.pop(sid, None)
        sids = sids[sids < len(self._newest_ts)]
        self._newest_ts[sids] = NO_EXEMPLAR

    def _grow(self, size: int) -> None:
        if size > len(self._newest_ts):
            grown = np.full(max(size, 2 * len(self._newest_ts)), NO_EXEMPLAR, dtype=np.int64)
            grown[: len(self._newest_ts)] = self._newest_ts
            self._newest_ts = grown

    def select(self, sids: NDArray[np.int64], start_ms: int, end_ms: int) -> list[SeriesExemplars]:
        """Exemplars of the series `sids` in [start_ms, end_ms], by series id, oldest first."""
        if not self.capacity or not len(sids):
            return []
        hit = np.flatnonzero(
            (self._ts >= start_ms) & (self._ts <= end_ms) & np.isin(self._sid, sids)
        )
        if not len(hit):
            return []
        hit = hit[np.lexsort((self._ts[hit], self._sid[hit]))]
        s = self._sid[hit]
        bounds = np.flatnonzero(np.diff(s)) + 1
        out = []
        for group in np.split(hit, bounds):
            out.append(
                SeriesExemplars(
                    int(self._sid[group[0]]),
                    self._ts[group],
                    self._values[group],
                    [self._labels[i] for i in group.tolist()],
                )
            )
        return out
