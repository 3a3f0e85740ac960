"""Storage: the head, its WAL and the blocks below, behind the Appendable and Queryable interfaces.

The write path of one request: `appender(cluster=...).append(batch)` checks
the batch and applies its good samples to the head at once (visible to
queries), and in the same synchronous step queues the request body in the WAL
writer, so the WAL holds records in exactly the order they were applied.
`await commit()` returns once that record is durable under the fsync policy;
only then may the request be acknowledged.

Reads go to the head and to the Parquet blocks in the object store together
(`storage.tiering.querier.TieredQuerier`), so the two are one Querier.

Background work (all on the event loop, heavy parts in worker threads):
merging sealed parts; tiering (`storage.tiering.service`): cutting closed
time ranges into blocks, uploading them, dropping their samples from the head,
compacting, downsampling and retention in the object store; and deleting WAL
segments whose records' samples are all in uploaded blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np

from remote_write.batch import WriteBatch
from remote_write.codec import encode_write_request
from storage.blocks.cache import ChunkCache
from storage.blocks.querier import BlockQuerier
from storage.errors import StorageError, StorageUnavailable
from storage.head.appender import apply_batch
from storage.head.exemplars import SeriesExemplars
from storage.head.head import Head, HeadStats
from storage.head.parts import merge_parts
from storage.head.querier import HeadQuerier
from storage.interfaces import AppendResult, Querier, Queryable
from storage.labels import Labels, Matcher
from storage.objstore.base import ObjectStore
from storage.objstore.config import open_object_store, open_read_stores
from storage.objstore.instrumented import InstrumentedStore
from storage.options import HOUR_MS, StorageOptions
from storage.tiering.catalog import BlockCatalog
from storage.tiering.querier import ReadOptions, TieredQuerier
from storage.tiering.service import FlushResult, Tiering
from storage.tiering.shared import SharedBlocks
from storage.tiering.status import TieringMetrics
from storage.wal.replay import ReplayResult, replay
from storage.wal.writer import WALWriter

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_S = 5.0


def head_options(options: StorageOptions) -> StorageOptions:
    """The head's settings under tiering.

    Partitions line up with blocks (a block is whole partitions); samples are
    accepted back to the late window (bounded by the object-store retention),
    or, without one, back to `retention`.
    """
    t = options.tiering
    block = t.block_duration_ms
    late = min(options.late_window_ms, t.object_store_retention_ms) if options.late_window_ms else 0
    return replace(
        options,
        retention_ms=late or options.retention_ms,
        late_window_ms=late,
        partition_ms=block if block <= 2 * HOUR_MS else gcd(block, 2 * HOUR_MS),
    )


class Storage:
    """Head + WAL + blocks; Appendable and Queryable. Build with `await Storage.open(...)`."""

    def __init__(
        self,
        data_dir: Path,
        options: StorageOptions,
        object_store: ObjectStore | None = None,
        read_stores: Mapping[str, ObjectStore] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.options = options
        self._head = Head(head_options(options))
        tiering = options.tiering
        self.object_store = InstrumentedStore(
            object_store or open_object_store(tiering.object_store, self.data_dir)
        )
        # A quarter of the cache for compressed chunks, the rest for decoded row groups.
        self.cache = ChunkCache(tiering.block_cache_bytes // 4)
        self.decoded = ChunkCache(tiering.block_cache_bytes - self.cache.max_bytes)
        self.catalog = BlockCatalog(self.object_store, self.cache, self.decoded)
        self.tiering = Tiering(
            self._head,
            self.object_store,
            self.catalog,
            tiering,
            self.data_dir,
            ooo_window_ms=options.out_of_order_window_ms,
        )
        store_config = tiering.object_store
        if read_stores is None:
            read_stores = open_read_stores(store_config, self.data_dir)
        self.shared = SharedBlocks(
            {p: InstrumentedStore(s) for p, s in read_stores.items()},
            self.cache,
            self.decoded,
            store_config.read_relist_interval_ms,
        )
        """Other writers' blocks (`storage.object_store.read_prefixes`), read-only."""
        self._wal: WALWriter | None = None
        self._ready = False
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._merge_wake = asyncio.Event()
        self._seen_parts = 0
        self.replay_result: ReplayResult | None = None
        self._lock_fd = -1

    @classmethod
    async def open(
        cls,
        data_dir: Path,
        options: StorageOptions | None = None,
        *,
        object_store: ObjectStore | None = None,
        read_stores: Mapping[str, ObjectStore] | None = None,
    ) -> Storage:
        """Creates data_dir if needed, replays the WAL, starts background tasks.

        Blocks go to `object_store` if given, else to the one the options name;
        `read_stores` (prefix -> store) replace the `read_prefixes` the options name.
        """
        storage = cls(Path(data_dir), options or StorageOptions(), object_store, read_stores)
        await storage._start()
        return storage

    async def _start(self) -> None:
        wal_dir = self.data_dir / "wal"
        wal_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(self.data_dir)
        self._tasks.append(asyncio.create_task(self._merge_loop(), name="head-merge"))
        try:
            result = await replay(wal_dir, self._head, self.options.symbol_ids)
            self.replay_result = result
            if result.records:
                log.info(
                    "wal replayed",
                    extra={
                        "records": result.records,
                        "samples": result.samples,
                        "seconds": round(result.seconds, 3),
                    },
                )
            self._wal = WALWriter(
                wal_dir,
                self.options,
                first_segment=result.next_segment,
                segment_max_ts=result.segment_max_ts,
                first_seq=result.records,
                segment_last_seq=result.segment_last_seq,
            )
            await self._wal.start()
            await self.tiering.start()
            await self.shared.start()
        except BaseException:
            await self._stop_tasks()
            _unlock(self._lock_fd)
            raise
        self._tasks.append(asyncio.create_task(self._maintenance(), name="head-maintenance"))
        self._ready = True

    # -- Appendable ------------------------------------------------------------

    def appender(self, *, cluster: str | None = None) -> StorageAppender:
        """An appender writing as `cluster` (its label overrides the sent one), or as sent."""
        return StorageAppender(self, cluster)

    # -- Queryable -------------------------------------------------------------

    def querier(self, start_ms: int, end_ms: int) -> AbstractAsyncContextManager[Querier]:
        return self._querier(start_ms, end_ms, ReadOptions())

    def scoped(self, read: ReadOptions) -> Queryable:
        """This storage as a Queryable whose block reads follow `read` (one query's
        object-store budget and resolution)."""
        return _Scoped(self, read)

    @asynccontextmanager
    async def _querier(
        self, start_ms: int, end_ms: int, read: ReadOptions
    ) -> AsyncIterator[Querier]:
        snapshot = self.catalog.snapshot()
        shared = self.shared.open(start_ms, end_ms, read) if self.shared.catalogs else None
        try:
            after = read.blocks_after_ms
            blocks_start = start_ms if after is None else max(start_ms, after + 1)
            blocks = BlockQuerier(
                snapshot.readers if blocks_start <= end_ms else [],
                blocks_start,
                end_ms,
                cost=read.cost,
                resolution=read.resolution,
            )
            warning = None
            if not self.catalog.loaded:
                warning = (
                    f"the object store {self.object_store.name} could not be read yet: "
                    "samples already moved out of the head may be missing from this answer"
                )
            yield TieredQuerier(
                HeadQuerier(self._head, start_ms, end_ms),
                blocks,
                warning=warning,
                shared=shared,
                blocks_after_ms=after,
            )
        finally:
            snapshot.release()
            if shared is not None:
                shared.release()

    # -- tiering ---------------------------------------------------------------

    async def flush(self) -> FlushResult:
        """Cut everything in the head into blocks and upload them; then trim the WAL.

        After it returns, the object store alone holds every sample acknowledged
        before the call.
        """
        self._writer()  # refuses while replaying or closed
        result = await self.tiering.flush()
        await self._truncate_wal()
        return result

    async def _truncate_wal(self) -> None:
        if self._wal is not None:
            oldest = min(self._head.oldest_seq(), self._wal.last_seq + 1)
            await self._wal.remove_segments_upto(oldest)

    # -- status ----------------------------------------------------------------

    def metadata(
        self, metric: str | None = None, limit: int | None = None
    ) -> dict[str, list[dict[str, str]]]:
        """Metric metadata in the Prometheus /api/v1/metadata "data" shape."""
        table = self._head.metadata
        names = [metric] if metric is not None else sorted(table)
        out: dict[str, list[dict[str, str]]] = {}
        for name in names:
            if limit is not None and limit >= 0 and len(out) >= limit:
                break
            meta = table.get(name)
            if meta is not None:
                out[name] = [{"type": meta.type, "help": meta.help, "unit": meta.unit}]
        return out

    def exemplars(
        self, matcher_sets: Sequence[Sequence[Matcher]], start_ms: int, end_ms: int
    ) -> list[tuple[Labels, SeriesExemplars]]:
        """Exemplars in [start_ms, end_ms] of the series matching any of `matcher_sets`,
        sorted by series labels (`/api/v1/query_exemplars`)."""
        head = self._head
        chosen = [head.index.select(matchers) for matchers in matcher_sets]
        if not chosen:
            return []
        sids = np.unique(np.concatenate(chosen))
        found = []
        for series in head.exemplars.select(sids, start_ms, end_ms):
            labels = head.index.labels(series.sid)
            if labels is not None:
                found.append((labels, series))
        found.sort(key=lambda item: item[0])
        return found

    def active_series_by_cluster(self) -> dict[str, int]:
        """Live series per `cluster` label value ("" for series without one)."""
        return self._head.active_series_by_cluster()

    def start_time_ms(self) -> int | None:
        """Timestamp of the oldest sample held, None if empty."""
        return self._head.start_time()

    def stats(self) -> HeadStats:
        return self._head.stats()

    def blocks_status(self) -> dict[str, Any]:
        """The head, the blocks and the upload backlog (`/api/v1/status/blocks`)."""
        head = self._head.stats()
        out = self.tiering.status()
        out["head"] = {
            "series": head.series,
            "samples": head.samples,
            "minTime": self._head.start_time(),
            "maxTime": self._head.max_time if head.samples else None,
        }
        if self.shared.catalogs:
            out["readPrefixes"] = self.shared.status()
        return out

    def tiering_metrics(self) -> TieringMetrics:
        """Numbers for self-metrics, read at scrape time."""
        backlog = self.tiering.backlog()
        return TieringMetrics(
            pending_blocks=int(backlog["blocks"]),
            pending_bytes=int(backlog["bytes"]),
            pending_samples=int(backlog["samples"]),
            oldest_pending_s=float(backlog["oldestSeconds"]),
            blocks=len(self.catalog),
            block_bytes=sum(m.size for m in self.catalog.blocks),
            stats=self.tiering.stats,
            operations=self.object_store.stats,
            cache_bytes=self.cache.size + self.decoded.size,
            cache_hits=self.cache.hits + self.decoded.hits,
            cache_misses=self.cache.misses + self.decoded.misses,
        )

    @property
    def ready(self) -> bool:
        """False until the WAL is replayed, and again once closing."""
        return self._ready and not self._closed

    async def close(self) -> None:
        """Write and fsync what the WAL has queued, stop background tasks."""
        if self._closed:
            return
        self._closed = True
        await self._stop_tasks()
        await self.shared.stop()
        await self.tiering.stop()
        if self._wal is not None:
            await self._wal.close()
        _unlock(self._lock_fd)
        self._lock_fd = -1

    async def _stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    # -- write path ------------------------------------------------------------

    def _writer(self) -> WALWriter:
        wal = self._wal
        if wal is None or not self._ready:
            raise StorageUnavailable("storage is not ready: the WAL is still being replayed")
        if reason := wal.broken:
            raise StorageUnavailable(f"WAL {wal.directory} refuses writes: {reason}")
        return wal

    def _after_append(self) -> None:
        parts = self._head.partitions.num_parts
        if parts != self._seen_parts:
            self._seen_parts = parts
            self._merge_wake.set()

    # -- background ------------------------------------------------------------

    async def _merge_loop(self) -> None:
        """Merge runs of adjacent parts, one at a time, in a worker thread."""
        head = self._head
        while True:
            plans = head.merge_plans()
            if not plans:
                self._merge_wake.clear()
                await self._merge_wake.wait()
                continue
            key, run, ooo = plans[0]
            try:
                merged = await asyncio.to_thread(merge_parts, run, ooo=ooo)
            except Exception:  # e.g. out of memory: keep serving, try again later
                log.exception("head merge failed", extra={"parts": len(run)})
                await asyncio.sleep(MAINTENANCE_INTERVAL_S)
                continue
            head.install_merge(key, run, merged)

    async def _maintenance(self) -> None:
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL_S)
            try:
                await self.run_maintenance()
            except Exception:
                log.exception("head maintenance failed")

    async def run_maintenance(self) -> None:
        """Cut closed ranges into blocks and trim the WAL (runs periodically; callable in tests)."""
        head = self._head
        self.tiering.tick()
        if head.index.unranked:
            head.index.refresh_order()  # so selects find the label order ready
        await self._truncate_wal()
        self._merge_wake.set()


def _lock(data_dir: Path) -> int:
    """Take the data directory's lock file, so that two processes never share a WAL.

    An advisory `flock`: the kernel drops it when the process dies, so a crash
    never leaves a stale lock behind.
    """
    path = data_dir / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StorageError(
            f"data directory {data_dir} is in use by another process (lock file {path})"
        ) from None
    return fd


def _unlock(fd: int) -> None:
    if fd >= 0:
        os.close(fd)  # closing the descriptor releases the flock


class StorageAppender:
    """Appends batches as one writer identity; `commit` waits for the WAL."""

    __slots__ = ("_cluster", "_storage", "_wait_seq")

    def __init__(self, storage: Storage, cluster: str | None) -> None:
        self._storage = storage
        self._cluster = cluster
        self._wait_seq = 0

    def append(self, batch: WriteBatch) -> AppendResult:
        """Check and apply `batch` (visible at once) and queue its WAL record."""
        storage = self._storage
        wal = storage._writer()
        now_ms = int(time.time() * 1000)
        head = storage._head
        head.seq = wal.last_seq + 1  # the number the record of this batch will get
        applied = apply_batch(head, batch, self._cluster, now_ms=now_ms)
        # Log whenever anything was accepted, no-op duplicates included: a
        # duplicate may be a sender's retry of a request whose own record never
        # reached the disk, and only this record can make it durable. Replaying
        # a duplicate again is a no-op.
        if applied.result.accepted or batch.metadata or applied.exemplars:
            if batch.encoded is not None:
                body, body_format = batch.encoded, batch.encoded_format
            else:
                body, body_format = encode_write_request(batch), 1
            self._wait_seq = wal.log(
                self._cluster, body, now_ms, applied.max_ts, applied.limited, body_format
            )
        storage._after_append()
        return applied.result

    async def commit(self) -> None:
        """Return once every record this appender depends on is durable."""
        if self._wait_seq:
            wal = self._storage._wal
            assert wal is not None
            await wal.wait(self._wait_seq)


class _Scoped:
    """A Storage opening its Queriers with one query's read options."""

    __slots__ = ("_read", "_storage")

    def __init__(self, storage: Storage, read: ReadOptions) -> None:
        self._storage = storage
        self._read = read

    def querier(self, start_ms: int, end_ms: int) -> AbstractAsyncContextManager[Querier]:
        return self._storage._querier(start_ms, end_ms, self._read)
