"""The in-memory head: series index, per-series state arrays and the sample parts.

Per-series state lives in numpy arrays indexed by series id (newest timestamp
and its value bits, oldest timestamp, cluster code), so ingest checks run over
a whole batch at once. The head is single-threaded by design: every method
runs on the event loop; only `merge_parts` (pure, on immutable parts) runs in
worker threads, and `install_merge` puts the result back on the loop. The
index enforces the rule for itself (`storage.index`: its reads mutate it), and
so for every select; what the loop hands to threads are copies (a select's
`SeriesSet`) or immutable parts.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from remote_write.batch import SeriesMetadata
from storage.head.exemplars import ExemplarRing
from storage.head.histstore import HistogramStore
from storage.head.parts import NO_SEQ, ActiveBuffer, Part, Partitions
from storage.index import Index
from storage.labels import CLUSTER_LABEL, Labels
from storage.options import HOUR_MS, StorageOptions

log = logging.getLogger(__name__)

NO_SAMPLE = -(1 << 62)
"""Newest timestamp of a series without samples: below any real timestamp, and
far enough from int64's minimum that subtracting a window cannot wrap."""
NO_MIN = 1 << 62


def partition_ms_for(retention_ms: int) -> int:
    """Time partition width: 1/12 of retention, between 1 minute and 2 hours."""
    return int(min(2 * HOUR_MS, max(60_000, retention_ms // 12)))


def partition_ms_of(options: StorageOptions) -> int:
    """The configured partition width, else the one retention suggests."""
    return options.partition_ms or partition_ms_for(options.retention_ms)


@dataclass(frozen=True, slots=True)
class HeadStats:
    """Sizes for self-metrics and tests."""

    series: int
    samples: int
    buffered: int
    parts: int
    bytes: int


class Head:
    """Series, their state and their samples; see the module docstring."""

    def __init__(self, options: StorageOptions) -> None:
        self.options = options
        buffer_rows = options.head_buffer_rows
        self.index = Index()
        self.partitions = Partitions(partition_ms_of(options), buffer_rows)
        self.buffer = ActiveBuffer(buffer_rows)
        self._buffer_rows = buffer_rows
        cap = 1024
        self.max_ts = np.full(cap, NO_SAMPLE, dtype=np.int64)
        self.max_bits = np.zeros(cap, dtype=np.uint64)
        self.min_ts = np.full(cap, NO_MIN, dtype=np.int64)
        self.cluster_code = np.zeros(cap, dtype=np.int32)
        self.scratch = np.zeros(cap, dtype=np.int64)
        """Per-id working space for batch checks (contents meaningless between uses)."""
        self.max_time = NO_SAMPLE
        """Newest sample timestamp ever accepted; retention counts back from it."""
        self.horizon = NO_SAMPLE
        """Everything older than this has been dropped."""
        self.seq = 0
        """WAL sequence number of the record being applied (set by the caller), kept with
        the rows it adds so the WAL is truncated only behind what the head still needs."""
        self._cluster_codes: dict[str, int] = {}
        self._cluster_names: list[str] = []
        self._cluster_counts: list[int] = []
        self._key_caches: dict[str | None, dict[Hashable, int]] = {}
        self.metadata: dict[str, SeriesMetadata] = {}
        self.exemplars = ExemplarRing(options.max_exemplars)
        self.histograms = HistogramStore()
        """Native histogram samples (storage.head.histograms)."""

    # -- series ----------------------------------------------------------------

    def key_cache(self, identity: str | None) -> dict[Hashable, int]:
        """Series-key -> id map of one writer identity (a cluster override, or None)."""
        cache = self._key_caches.get(identity)
        if cache is None:
            cache = self._key_caches[identity] = {}
        return cache

    def cluster_series(self, cluster: str) -> int:
        """Live series whose `cluster` label is `cluster` ("" for none)."""
        code = self._cluster_codes.get(cluster)
        return 0 if code is None else self._cluster_counts[code]

    def create_series(self, labels: Labels) -> int:
        sid = self.index.add(labels)
        if sid >= len(self.max_ts):
            self._grow(max(2 * len(self.max_ts), sid + 1))
        cluster = labels.get(CLUSTER_LABEL)
        code = self._cluster_codes.get(cluster)
        if code is None:
            code = self._cluster_codes[cluster] = len(self._cluster_names)
            self._cluster_names.append(cluster)
            self._cluster_counts.append(0)
        self._cluster_counts[code] += 1
        self.cluster_code[sid] = code
        return sid

    def create_many(
        self,
        labels: Sequence[Labels],
        clusters: Sequence[str],
        pids: NDArray[np.int64] | None = None,
        offsets: NDArray[np.int64] | None = None,
    ) -> range:
        """`create_series` for many new, distinct label sets; `clusters[k]` is the
        `cluster` label of `labels[k]` ("" for none). With `pids` and `offsets`,
        the sets' pair ids as rows (see `Index.add_series`). Returns their ids."""
        if pids is None or offsets is None:
            sids = self.index.add_many(labels)
        else:
            sids = self.index.add_series(labels, pids, offsets)
        if sids.stop > len(self.max_ts):
            self._grow(max(2 * len(self.max_ts), sids.stop))
        codes = self._cluster_codes
        for cluster, count in Counter(clusters).items():
            code = codes.get(cluster)
            if code is None:
                code = codes[cluster] = len(self._cluster_names)
                self._cluster_names.append(cluster)
                self._cluster_counts.append(0)
            self._cluster_counts[code] += count
        self.cluster_code[sids.start : sids.stop] = np.fromiter(
            map(codes.__getitem__, clusters), dtype=np.int32, count=len(clusters)
        )
        return sids

    def _grow(self, size: int) -> None:
        def grown(old: NDArray, fill: int) -> NDArray:
            new = np.full(size, fill, dtype=old.dtype)
            new[: len(old)] = old
            return new

        self.max_ts = grown(self.max_ts, NO_SAMPLE)
        self.max_bits = grown(self.max_bits, 0)
        self.min_ts = grown(self.min_ts, NO_MIN)
        self.cluster_code = grown(self.cluster_code, 0)
        self.scratch = np.zeros(size, dtype=np.int64)

    def active_series_by_cluster(self) -> dict[str, int]:
        return {
            name: count
            for name, count in zip(self._cluster_names, self._cluster_counts, strict=True)
            if count
        }

    # -- samples ---------------------------------------------------------------

    def min_valid_time(self) -> int:
        """Samples older than this are refused as too old (retention boundary)."""
        if self.max_time == NO_SAMPLE:
            return NO_SAMPLE
        return max(self.max_time - self.options.retention_ms, self.horizon)

    def write(
        self,
        sids: NDArray[np.int64],
        ts: NDArray[np.int64],
        values: NDArray[np.float64],
        *,
        ooo: bool,
    ) -> None:
        """Store checked rows; per series, rows must be in ascending time order."""
        if not len(ts):
            return
        self.buffer.append(sids, ts, values, ooo=ooo, seq=self.seq)
        lower = ts < self.min_ts[sids]
        if lower.any():
            np.minimum.at(self.min_ts, sids[lower], ts[lower])
        self.max_time = max(self.max_time, int(ts.max()))
        if self.buffer.full:
            self.seal()

    def seal(self) -> None:
        """Turn the active buffer into sorted parts and start a new buffer."""
        buf = self.buffer
        if not buf.n:
            return
        sids, ts, values = buf.view()
        seq_of = buf.seq_of_rows
        if buf.min_t < self.horizon:
            kept = np.flatnonzero(ts >= self.horizon)
            sids, ts, values = sids[kept], ts[kept], values[kept]

            def seq_of(rows: NDArray[np.int64] | slice) -> int:
                return buf.seq_of_rows(kept[rows])

        self.partitions.add_rows(sids, ts, values, ooo=buf.ooo, seq_of=seq_of)
        self.buffer = ActiveBuffer(self._buffer_rows)

    def find(
        self, sids: NDArray[np.int64], ts: NDArray[np.int64]
    ) -> tuple[NDArray[np.bool_], NDArray[np.uint64]]:
        """Whether each sample (sid, ts) is stored anywhere in the head, and its bits."""
        found, bits = self.partitions.find(sids, ts)
        b_sid, b_ts, b_values = self.buffer.view()
        if not len(b_ts):
            return found, bits
        wanted = np.zeros(self.index.id_limit, dtype=bool)
        wanted[sids] = True
        rows = wanted[b_sid]  # only the buffer rows of the series asked about
        if not rows.any():
            return found, bits
        p = self.partitions.partition_ms
        for part in self.partitions.temporary_parts(
            b_sid[rows], b_ts[rows], b_values[rows], ooo=False
        ):
            inside = (ts >= part.base) & (ts < part.base + p) & ~found
            if not inside.any():
                continue
            idx = np.flatnonzero(inside)
            hit, pos = part.find(sids[idx], ts[idx])
            found[idx[hit]] = True
            bits[idx[hit]] = part.values[pos[hit]].view(np.uint64)
        return found, bits

    # -- retention -------------------------------------------------------------

    def apply_retention(self) -> int:
        """Drop partitions past retention and series left without samples.

        Returns the number of series removed.
        """
        if self.max_time == NO_SAMPLE:
            return 0
        boundary = self.max_time - self.options.retention_ms
        p = self.partitions.partition_ms
        horizon = (boundary // p) * p  # whole partitions below this go
        if horizon <= self.horizon:
            return 0
        self.horizon = horizon
        self.partitions.drop_before(horizon)
        self.histograms.drop_before(horizon)
        if self.buffer.n and self.buffer.min_t < horizon:
            sids, ts, values = self.buffer.view()
            keep = ts >= horizon
            fresh = ActiveBuffer(self._buffer_rows)
            fresh.append(
                sids[keep], ts[keep], values[keep], ooo=self.buffer.ooo, seq=self.buffer.seq_lo
            )
            self.buffer = fresh
        return self._collect_series(horizon)

    def oldest_seq(self) -> int:
        """Sequence number of the oldest WAL record the head holds rows of (NO_SEQ if none)."""
        buffered = self.buffer.seq_lo if self.buffer.n else NO_SEQ
        hist = self.histograms.oldest_seq()
        if hist is not None:
            buffered = min(buffered, hist)
        return min(buffered, self.partitions.oldest_seq())

    def drop_idle_series(self) -> int:
        """Forget series with no sample left in the head (their samples are in blocks).

        Returns the number of series removed.
        """
        first = self.start_time()
        return self._collect_series(self.max_time + 1 if first is None else first)

    def _collect_series(self, horizon: int) -> int:
        limit = self.index.id_limit
        dead = np.flatnonzero(self.index.alive & (self.max_ts[:limit] < horizon))
        if not len(dead):
            return 0
        self.drop_series(dead)
        log.info("head dropped series without samples", extra={"series": len(dead)})
        return len(dead)

    def drop_series(self, sids: NDArray[np.int64]) -> None:
        """Take series out of the head (those still in it): the index, the
        per-cluster counts, their state, the writers' key caches. Samples they
        still have in parts are unreachable (ids are never reused)."""
        dead = np.unique(sids[self.index.alive[sids]])
        self.index.remove(dead.tolist())
        counts = np.bincount(self.cluster_code[dead], minlength=len(self._cluster_counts))
        for code in np.flatnonzero(counts).tolist():
            self._cluster_counts[code] -= int(counts[code])
        self.max_ts[dead] = NO_SAMPLE
        self.min_ts[dead] = NO_MIN
        self.exemplars.forget(dead)
        alive = self.index.alive
        for identity, cache in list(self._key_caches.items()):
            self._key_caches[identity] = {k: v for k, v in cache.items() if alive[v]}

    # -- merges ----------------------------------------------------------------

    def merge_plans(self) -> list[tuple[int, list[Part], bool]]:
        """Runs of parts a background merge should combine (see `Partitions`)."""
        return self.partitions.merge_candidates()

    def install_merge(self, key: int, old: list[Part], new: Part) -> bool:
        return self.partitions.replace(key, old, new)

    # -- reads -----------------------------------------------------------------

    def start_time(self) -> int | None:
        times = [
            t for t in (self.partitions.min_time(), self.histograms.min_time()) if t is not None
        ]
        if self.buffer.n:
            times.append(self.buffer.min_t)
        return min(times) if times else None

    def stats(self) -> HeadStats:
        return HeadStats(
            series=len(self.index),
            samples=self.partitions.num_samples + self.buffer.n,
            buffered=self.buffer.n,
            parts=self.partitions.num_parts,
            bytes=self.partitions.nbytes + 24 * self.buffer.capacity,
        )
