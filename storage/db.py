"""Storage: the head plus its WAL, behind the Appendable and Queryable interfaces.

The write path of one request: `appender(cluster=...).append(batch)` checks
the batch and applies its good samples to the head at once (visible to
queries), and in the same synchronous step queues the request body in the WAL
writer, so the WAL holds records in exactly the order they were applied.
`await commit()` returns once that record is durable under the fsync policy;
only then may the request be acknowledged.

Background work (all on the event loop, heavy parts in worker threads):
merging sealed parts, dropping partitions and series past retention, and
deleting WAL segments whose samples are all past retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from remote_write.batch import WriteBatch
from remote_write.codec import encode_write_request
from storage.errors import StorageError, StorageUnavailable
from storage.head.appender import apply_batch
from storage.head.head import Head, HeadStats
from storage.head.parts import merge_parts
from storage.head.querier import HeadQuerier
from storage.interfaces import AppendResult, Querier
from storage.options import StorageOptions
from storage.wal.replay import ReplayResult, replay
from storage.wal.writer import WALWriter

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_S = 5.0


class Storage:
    """Head + WAL; Appendable and Queryable. Build with `await Storage.open(...)`."""

    def __init__(self, data_dir: Path, options: StorageOptions) -> None:
        self.data_dir = Path(data_dir)
        self.options = options
        self._head = Head(options)
        self._wal: WALWriter | None = None
        self._ready = False
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._merge_wake = asyncio.Event()
        self._seen_parts = 0
        self.replay_result: ReplayResult | None = None
        self._lock_fd = -1

    @classmethod
    async def open(cls, data_dir: Path, options: StorageOptions | None = None) -> Storage:
        """Creates data_dir if needed, replays the WAL, starts background tasks."""
        storage = cls(Path(data_dir), options or StorageOptions())
        await storage._start()
        return storage

    async def _start(self) -> None:
        wal_dir = self.data_dir / "wal"
        wal_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(self.data_dir)
        self._tasks.append(asyncio.create_task(self._merge_loop(), name="head-merge"))
        try:
            result = await replay(wal_dir, self._head)
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
            self._head.apply_retention()
            self._wal = WALWriter(
                wal_dir,
                self.options,
                first_segment=result.next_segment,
                segment_max_ts=result.segment_max_ts,
            )
            await self._wal.start()
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
        return self._querier(start_ms, end_ms)

    @asynccontextmanager
    async def _querier(self, start_ms: int, end_ms: int) -> AsyncIterator[Querier]:
        yield HeadQuerier(self._head, start_ms, end_ms)

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

    def active_series_by_cluster(self) -> dict[str, int]:
        """Live series per `cluster` label value ("" for series without one)."""
        return self._head.active_series_by_cluster()

    def start_time_ms(self) -> int | None:
        """Timestamp of the oldest sample held, None if empty."""
        return self._head.start_time()

    def stats(self) -> HeadStats:
        return self._head.stats()

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
        """Apply retention to the head and the WAL (runs periodically; callable in tests)."""
        head = self._head
        head.apply_retention()
        if head.index.unranked:
            head.index.refresh_order()  # so selects find the label order ready
        if self._wal is not None:
            await self._wal.remove_segments_before(head.horizon)
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
        applied = apply_batch(storage._head, batch, self._cluster, now_ms=now_ms)
        # Log whenever anything was accepted, no-op duplicates included: a
        # duplicate may be a sender's retry of a request whose own record never
        # reached the disk, and only this record can make it durable. Replaying
        # a duplicate again is a no-op.
        if applied.result.accepted or batch.metadata:
            body = batch.encoded if batch.encoded is not None else encode_write_request(batch)
            self._wait_seq = wal.log(self._cluster, body, now_ms, applied.max_ts, applied.limited)
        storage._after_append()
        return applied.result

    async def commit(self) -> None:
        """Return once every record this appender depends on is durable."""
        if self._wait_seq:
            wal = self._storage._wal
            assert wal is not None
            await wal.wait(self._wait_seq)
