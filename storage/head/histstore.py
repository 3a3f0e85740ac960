"""The head's columnar store of native histogram samples (layout: see
`storage.head.histograms` and README "Native histograms").

Two parts, so that keeping rows sorted never moves bucket data:

- *rows*: the per-sample scalar columns of `HistogramBatch` (series id,
  time, schema, count, sum, zero bucket, reset hint, float flag) plus the WAL
  sequence number and, per side, where the row's buckets start in a pool and
  how many it has. New rows go to a pending list and are folded into the
  sorted rows (one concatenate + lexsort + take over these scalars only) once
  the pending rows reach half the sorted ones;
- *pools*: bucket indexes and counts (and custom bounds), appended once as
  requests arrive, in fixed-size chunks that never move or grow (so no
  doubling copy, no transient second copy). A read gathers its rows' buckets
  from the chunks. Retention leaves dead space in the pools; they are
  rebuilt from the live rows when over half is dead.

A read takes the requested series' row ranges from the sorted rows by
`searchsorted` and the matching pending rows by a mask, then sorts and
de-duplicates only those (the earliest written sample wins a timestamp, as
for floats).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray

from remote_write.histograms import HistogramBatch

FOLD_MIN_ROWS = 4096
"""Pending rows are folded into the sorted rows once there are this many (or half the sorted)."""
CHUNK_SHIFT = 18
"""Pool chunks hold 2**18 buckets (2 MiB of counts, 1 MiB of indexes)."""
_CHUNK = 1 << CHUNK_SHIFT
_MASK = _CHUNK - 1


class _Pool:
    """Append-only columns of equal length, in chunks of `_CHUNK` elements that
    never move: element e is `chunks[e >> CHUNK_SHIFT][e & _MASK]`."""

    __slots__ = ("_dtypes", "chunks", "size")

    def __init__(self, *dtypes: type) -> None:
        self._dtypes = dtypes
        self.chunks: list[tuple[NDArray, ...]] = []
        self.size = 0

    def append(self, *columns: NDArray) -> int:
        """Store equal-length `columns`; returns the position of their first element."""
        start = self.size
        m = len(columns[0])
        done = 0
        while done < m:
            k, at = self.size >> CHUNK_SHIFT, self.size & _MASK
            if k == len(self.chunks):
                self.chunks.append(tuple(np.empty(_CHUNK, dtype=d) for d in self._dtypes))
            step = min(m - done, _CHUNK - at)
            for dst, src in zip(self.chunks[k], columns, strict=True):
                dst[at : at + step] = src[done : done + step]
            done += step
            self.size += step
        return start

    def gather(
        self, lo: NDArray[np.int64], count: NDArray[np.int32]
    ) -> tuple[NDArray[np.int64], list[NDArray]]:
        """Offsets (n+1) and the elements of ranges `[lo[i], lo[i] + count[i])`, in order."""
        off = np.zeros(len(lo) + 1, dtype=np.int64)
        np.cumsum(count, out=off[1:])
        total = int(off[-1])
        if not total:
            return off, [np.zeros(0, dtype=d) for d in self._dtypes]
        idx = np.repeat(lo - off[:-1], count) + np.arange(total, dtype=np.int64)
        if len(self.chunks) == 1:
            return off, [c[idx] for c in self.chunks[0]]
        cid = idx >> CHUNK_SHIFT
        within = idx & _MASK
        out: list[NDArray] = [np.empty(total, dtype=d) for d in self._dtypes]
        for k in np.unique(cid).tolist():
            sel = np.flatnonzero(cid == k)
            for dst, src in zip(out, self.chunks[k], strict=True):
                dst[sel] = src[within[sel]]
        return off, out

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for chunk in self.chunks for c in chunk)


@dataclass(frozen=True, slots=True)
class _Rows:
    """Scalar columns of stored histogram rows, with where their buckets are."""

    series_idx: NDArray[np.int32]
    timestamps: NDArray[np.int64]
    schema: NDArray[np.int32]
    count: NDArray[np.float64]
    sum: NDArray[np.float64]
    zero_threshold: NDArray[np.float64]
    zero_count: NDArray[np.float64]
    reset_hint: NDArray[np.uint8]
    float_counts: NDArray[np.bool_]
    seq: NDArray[np.int64]
    pos_lo: NDArray[np.int64]
    pos_n: NDArray[np.int32]
    neg_lo: NDArray[np.int64]
    neg_n: NDArray[np.int32]
    cv_lo: NDArray[np.int64]
    cv_n: NDArray[np.int32]

    def __len__(self) -> int:
        return len(self.timestamps)

    def take(self, rows: NDArray[np.int64]) -> _Rows:
        return _rows([getattr(self, f.name)[rows] for f in _ROW_FIELDS])

    @staticmethod
    def concat(parts: list[_Rows]) -> _Rows:
        if len(parts) == 1:
            return parts[0]
        return _rows([np.concatenate([getattr(p, f.name) for p in parts]) for f in _ROW_FIELDS])

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f.name).nbytes for f in _ROW_FIELDS)


_ROW_FIELDS = fields(_Rows)
_SCALARS = (
    "series_idx",
    "timestamps",
    "schema",
    "count",
    "sum",
    "zero_threshold",
    "zero_count",
    "reset_hint",
    "float_counts",
)


_ROW_DTYPES = (
    np.int32, np.int64, np.int32, np.float64, np.float64, np.float64, np.float64, np.uint8,
    np.bool_, np.int64, np.int64, np.int32, np.int64, np.int32, np.int64, np.int32,
)  # fmt: skip


def _rows(columns: list[NDArray]) -> _Rows:
    cols: dict[str, Any] = {f.name: c for f, c in zip(_ROW_FIELDS, columns, strict=True)}
    return _Rows(**cols)


def _empty_rows() -> _Rows:
    return _rows([np.zeros(0, dtype=d) for d in _ROW_DTYPES])


class HistogramStore:
    """The head's native histogram samples; see the module docstring."""

    def __init__(self) -> None:
        self._sorted = _empty_rows()
        self._pending: list[_Rows] = []
        self._pending_rows = 0
        self._pos = _Pool(np.int32, np.float64)
        self._neg = _Pool(np.int32, np.float64)
        self._cv = _Pool(np.float64)

    def __len__(self) -> int:
        return len(self._sorted) + self._pending_rows

    @property
    def nbytes(self) -> int:
        rows = self._sorted.nbytes + sum(p.nbytes for p in self._pending)
        return rows + self._pos.nbytes + self._neg.nbytes + self._cv.nbytes

    def add(self, batch: HistogramBatch, seq: int) -> None:
        """Store checked rows (`series_idx` = series ids) written by WAL record `seq`."""
        n = len(batch)
        if not n:
            return
        rows = _Rows(
            **{name: getattr(batch, name) for name in _SCALARS},
            seq=np.full(n, seq, dtype=np.int64),
            pos_lo=_located(self._pos, batch.pos_offsets, batch.pos_index, batch.pos_counts),
            pos_n=np.diff(batch.pos_offsets).astype(np.int32),
            neg_lo=_located(self._neg, batch.neg_offsets, batch.neg_index, batch.neg_counts),
            neg_n=np.diff(batch.neg_offsets).astype(np.int32),
            cv_lo=_located(self._cv, batch.cv_offsets, batch.custom_values),
            cv_n=np.diff(batch.cv_offsets).astype(np.int32),
        )
        self._pending.append(rows)
        self._pending_rows += n
        if self._pending_rows >= max(FOLD_MIN_ROWS, len(self._sorted) // 2):
            self.fold()

    def fold(self) -> None:
        """Merge pending rows into the sorted rows (earlier rows win a timestamp)."""
        if not self._pending:
            return
        parts = [self._sorted, *self._pending]
        self._pending, self._pending_rows = [], 0
        order = _sorted_unique(
            np.concatenate([p.series_idx for p in parts]),
            np.concatenate([p.timestamps for p in parts]),
        )
        # Column by column: the transient copy is one column, not all of them.
        columns = [np.concatenate([getattr(p, f.name) for p in parts])[order] for f in _ROW_FIELDS]
        self._sorted = _rows(columns)

    def select(self, sids: NDArray[np.int64], start_ms: int, end_ms: int) -> HistogramBatch:
        """Rows of series `sids` in [start_ms, end_ms], sorted by (series id, time)."""
        s = self._sorted
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
        picked = s.take(rows)
        if self._pending:
            parts = [picked]
            wanted = np.zeros(int(sids.max()) + 1 if len(sids) else 0, dtype=bool)
            wanted[sids] = True
            for b in self._pending:
                idx = b.series_idx
                ok = (idx < len(wanted)) & (b.timestamps >= start_ms) & (b.timestamps <= end_ms)
                ok[ok] = wanted[idx[ok]]
                if ok.any():
                    parts.append(b.take(np.flatnonzero(ok)))
            picked = _Rows.concat(parts)
            picked = picked.take(_sorted_unique(picked.series_idx, picked.timestamps))
        return self._batch(picked)

    def _batch(self, r: _Rows) -> HistogramBatch:
        """Rows as a `HistogramBatch`, their buckets gathered from the pools."""
        pos_off, (pos_index, pos_counts) = self._pos.gather(r.pos_lo, r.pos_n)
        neg_off, (neg_index, neg_counts) = self._neg.gather(r.neg_lo, r.neg_n)
        cv_off, (custom_values,) = self._cv.gather(r.cv_lo, r.cv_n)
        return HistogramBatch(
            **{name: getattr(r, name) for name in _SCALARS},
            pos_offsets=pos_off,
            pos_index=pos_index,
            pos_counts=pos_counts,
            neg_offsets=neg_off,
            neg_index=neg_index,
            neg_counts=neg_counts,
            cv_offsets=cv_off,
            custom_values=custom_values,
        )

    def min_time(self) -> int | None:
        times = [int(b.timestamps.min()) for b in self._pending]
        if len(self._sorted):
            times.append(int(self._sorted.timestamps.min()))
        return min(times) if times else None

    def oldest_seq(self) -> int | None:
        seqs = [int(b.seq[0]) for b in self._pending]
        if len(self._sorted):
            seqs.append(int(self._sorted.seq.min()))
        return min(seqs) if seqs else None

    def drop_before(self, horizon_ms: int) -> None:
        """Forget rows older than `horizon_ms` (retention); rebuild the pools
        when over half of them is dead."""
        self.fold()
        keep = np.flatnonzero(self._sorted.timestamps >= horizon_ms)
        if len(keep) == len(self._sorted):
            return
        self._sorted = self._sorted.take(keep)
        live = int(self._sorted.pos_n.sum()) + int(self._sorted.neg_n.sum())
        if 2 * live < self._pos.size + self._neg.size:
            self._compact()

    def _compact(self) -> None:
        """Pools holding only the sorted rows' buckets."""
        r = self._sorted
        batch = self._batch(r)
        self._pos = _Pool(np.int32, np.float64)
        self._neg = _Pool(np.int32, np.float64)
        self._cv = _Pool(np.float64)
        self._sorted = _Rows(
            **{name: getattr(r, name) for name in _SCALARS},
            seq=r.seq,
            pos_lo=_located(self._pos, batch.pos_offsets, batch.pos_index, batch.pos_counts),
            pos_n=r.pos_n,
            neg_lo=_located(self._neg, batch.neg_offsets, batch.neg_index, batch.neg_counts),
            neg_n=r.neg_n,
            cv_lo=_located(self._cv, batch.cv_offsets, batch.custom_values),
            cv_n=r.cv_n,
        )


def _located(pool: _Pool, offsets: NDArray[np.int64], *columns: NDArray) -> NDArray[np.int64]:
    """Append a batch's ragged columns to `pool`; per row, where its elements start."""
    base = pool.append(*columns) if len(columns[0]) else pool.size
    return offsets[:-1] + base


def _sorted_unique(series: NDArray[np.int32], times: NDArray[np.int64]) -> NDArray[np.int64]:
    """Row order by (series, time), keeping the first row of each (series, time)."""
    order = np.lexsort((np.arange(len(series)), times, series))
    s, t = series[order], times[order]
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = (s[1:] != s[:-1]) | (t[1:] != t[:-1])
    return order[keep]
