"""The head's columnar store of native histogram samples (layout: see
`storage.head.histograms` and README "Native histograms")."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from remote_write.histograms import HistogramBatch

FOLD_MIN_ROWS = 4096
"""Pending rows are folded into the sorted batch once there are this many (or half the sorted)."""


class HistogramStore:
    """The head's native histogram samples; see the module docstring."""

    def __init__(self) -> None:
        self.sorted = HistogramBatch.empty()
        self.sorted_seq = np.zeros(0, dtype=np.int64)
        self._pending: list[tuple[HistogramBatch, int]] = []
        self._pending_rows = 0

    def __len__(self) -> int:
        return len(self.sorted) + self._pending_rows

    @property
    def nbytes(self) -> int:
        return self.sorted.nbytes + sum(b.nbytes for b, _ in self._pending)

    def add(self, rows: HistogramBatch, seq: int) -> None:
        """Store checked rows (`series_idx` = series ids) written by WAL record `seq`."""
        if not len(rows):
            return
        self._pending.append((rows, seq))
        self._pending_rows += len(rows)
        if self._pending_rows >= max(FOLD_MIN_ROWS, len(self.sorted) // 2):
            self.fold()

    def fold(self) -> None:
        """Merge pending rows into the sorted batch (earlier rows win a timestamp)."""
        if not self._pending:
            return
        parts = [self.sorted] + [b for b, _ in self._pending]
        seqs = [self.sorted_seq] + [np.full(len(b), s, dtype=np.int64) for b, s in self._pending]
        allb = HistogramBatch.concat(parts)
        seq = np.concatenate(seqs)
        self._pending, self._pending_rows = [], 0
        rows = _sorted_unique(allb)
        self.sorted = allb.take(rows)
        self.sorted_seq = seq[rows]

    def select(self, sids: NDArray[np.int64], start_ms: int, end_ms: int) -> HistogramBatch:
        """Rows of series `sids` in [start_ms, end_ms], sorted by (series id, time)."""
        s = self.sorted
        key = s.series_idx
        lo = np.searchsorted(key, sids, side="left")
        hi = np.searchsorted(key, sids, side="right")
        counts = hi - lo
        total = int(counts.sum())
        base = np.zeros(len(sids) + 1, dtype=np.int64)
        np.cumsum(counts, out=base[1:])
        rows = np.repeat(lo - base[:-1], counts) + np.arange(total, dtype=np.int64)
        t = s.timestamps[rows]
        rows = rows[(t >= start_ms) & (t <= end_ms)]
        parts = [s.take(rows)]
        if self._pending:
            wanted = np.zeros(int(sids.max()) + 1 if len(sids) else 0, dtype=bool)
            wanted[sids] = True
            for b, _ in self._pending:
                idx = b.series_idx
                ok = (idx < len(wanted)) & (b.timestamps >= start_ms) & (b.timestamps <= end_ms)
                ok[ok] = wanted[idx[ok]]
                if ok.any():
                    parts.append(b.take(np.flatnonzero(ok)))
            out = HistogramBatch.concat(parts)
            return out.take(_sorted_unique(out))
        return parts[0]

    def min_time(self) -> int | None:
        times = [int(b.timestamps.min()) for b, _ in self._pending]
        if len(self.sorted):
            times.append(int(self.sorted.timestamps.min()))
        return min(times) if times else None

    def oldest_seq(self) -> int | None:
        seqs = [s for _, s in self._pending]
        if len(self.sorted_seq):
            seqs.append(int(self.sorted_seq.min()))
        return min(seqs) if seqs else None

    def drop_before(self, horizon_ms: int) -> None:
        """Forget rows older than `horizon_ms` (retention)."""
        self.fold()
        keep = np.flatnonzero(self.sorted.timestamps >= horizon_ms)
        if len(keep) < len(self.sorted):
            self.sorted = self.sorted.take(keep)
            self.sorted_seq = self.sorted_seq[keep]


def _sorted_unique(b: HistogramBatch) -> NDArray[np.int64]:
    """Row order by (series, time), keeping the first row of each (series, time)."""
    order = np.lexsort((np.arange(len(b)), b.timestamps, b.series_idx))
    s, t = b.series_idx[order], b.timestamps[order]
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = (s[1:] != s[:-1]) | (t[1:] != t[:-1])
    return order[keep]
