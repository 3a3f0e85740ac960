"""Tiering: the head's closed ranges become blocks in the object store, and stay queryable.

The pipeline, all driven from the event loop (heavy work in worker threads):

1. Cut: when the head's newest sample passes the end of a block range plus
   the out-of-order window, the range is closed; its parts are handed out
   (`cut.take_ranges`) and written as a block in `<data_dir>/blocks-pending/`.
   Late samples for ranges cut before are cut again into late blocks,
   batched (at most every quarter of a block duration, or with the next
   normal cut).
2. Upload: pending blocks go up in order (`upload.upload_block`: files, read
   back and verified, then `meta.json`). A failing store is retried with a
   doubling backoff; meanwhile blocks wait on local disk, the head keeps
   their samples (so queries and ingest go on) and `status()` shows the backlog.
3. Commit: the block joins the catalog and, in the same step on the event
   loop, its parts leave the head, so a query sees each sample exactly once.
   WAL segments whose records all precede the head's oldest remaining record
   are then deleted (`Storage.run_maintenance`).

`flush()` cuts everything the head holds, open ranges included, and returns
once all of it is uploaded: afterwards the object store alone holds every
sample acknowledged before the call.

Compaction, downsampling and retention run in a second task (`compact.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.blocks.meta import RAW, BlockMeta
from storage.blocks.rowgroups import warm_decoders
from storage.head.head import NO_SAMPLE, Head
from storage.head.parts import Part
from storage.objstore.base import ObjectStore
from storage.options import DAY_MS, TieringOptions
from storage.tiering.catalog import BlockCatalog
from storage.tiering.compact import Compactor
from storage.tiering.cut import CutJob, KindOf, build_block, distinct_series, take_ranges
from storage.tiering.status import TieringStats, block_json
from storage.tiering.upload import upload_block

log = logging.getLogger(__name__)

PENDING_DIR = "blocks-pending"
WORK_DIR = "blocks-work"
FLUSH = 1 << 62
CATALOG_TIMEOUT_S = 60.0
PREFETCH_MS = 7 * DAY_MS
"""Blocks reaching this far back from the newest sample get their metadata loaded at start."""
"""How long start waits for the catalog before serving without it (and retrying)."""


@dataclass(slots=True)
class PendingBlock:
    """A block written locally, waiting for its upload."""

    meta: BlockMeta
    directory: Path
    taken: dict[int, list[Part]]
    since: float = field(default_factory=time.monotonic)
    attempts: int = 0
    last_error: str | None = None
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(slots=True)
class FlushResult:
    """What a flush cut: blocks, series and samples."""

    blocks: int = 0
    series: int = 0
    samples: int = 0


class Tiering:
    """Cuts, uploads, compacts; see the module docstring."""

    def __init__(
        self,
        head: Head,
        store: ObjectStore,
        catalog: BlockCatalog,
        options: TieringOptions,
        data_dir: Path,
        *,
        ooo_window_ms: int,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.head = head
        self.store = store
        self.catalog = catalog
        self.options = options
        self.pending_dir = Path(data_dir) / PENDING_DIR
        self.work_dir = Path(data_dir) / WORK_DIR
        self.ooo_window_ms = ooo_window_ms
        self.on_commit = on_commit
        self.stats = TieringStats()
        self.compactor = Compactor(store, catalog, options, self.work_dir, self.stats)
        self.pending: list[PendingBlock] = []
        self._jobs: list[tuple[CutJob, asyncio.Future[PendingBlock | None]]] = []
        self._cut_ranges: set[int] = set()
        """Starts of block ranges cut since start (late samples there make late blocks)."""
        self._last_boundary = NO_SAMPLE
        self._last_cut = 0.0
        self._wake = asyncio.Event()
        self._compact_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Clear leftovers of a previous run, read the catalog, start the background tasks.

        If the store cannot be read now, start anyway: the catalog is loaded in
        the background, and queries meanwhile say that blocks may be missing.
        """
        # Blocks that were pending when the process stopped are rebuilt from the
        # WAL, which still holds their samples; the files are not needed.
        for directory in (self.pending_dir, self.work_dir):
            await asyncio.to_thread(shutil.rmtree, directory, True)
            directory.mkdir(parents=True, exist_ok=True)
        self._tasks = [asyncio.create_task(self._pipeline(), name="tiering-pipeline")]
        await asyncio.to_thread(warm_decoders)
        try:
            async with asyncio.timeout(CATALOG_TIMEOUT_S):
                await self._read_catalog()
            loaded = True
        except Exception as exc:
            self.stats.last_error = f"loading the block catalog from {self.store.name}: {exc}"
            log.warning("block catalog not loaded, retrying", extra={"error": str(exc)})
            loaded = False
        if not loaded:
            self._tasks.append(asyncio.create_task(self._load_catalog(), name="tiering-catalog"))
        if self.options.compaction_interval_ms:
            self._tasks.append(asyncio.create_task(self._maintenance(), name="tiering-compaction"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for p in self.pending:
            if not p.done.done():
                p.done.cancel()
        for _, built in self._jobs:
            if not built.done():
                built.cancel()

    async def _load_catalog(self) -> None:
        delay = self.options.upload_retry_ms[0] / 1000
        while True:
            await asyncio.sleep(delay)
            try:
                await self._read_catalog()
            except Exception as exc:
                self.stats.last_error = f"loading the block catalog from {self.store.name}: {exc}"
                log.warning("block catalog not loaded", extra={"error": str(exc)})
                delay = min(delay * 2, self.options.upload_retry_ms[1] / 1000)
                continue
            return

    async def _read_catalog(self) -> None:
        await self.catalog.load()
        self._cut_ranges |= {m.range_start for m in self.catalog.blocks if m.resolution_ms == RAW}
        self._compact_wake.set()
        self._tasks.append(asyncio.create_task(self._prefetch(), name="tiering-prefetch"))

    async def _prefetch(self) -> None:
        """Load recent blocks' series tables and footers in the background."""
        newest = self.newest_time()
        if newest == NO_SAMPLE:
            return
        try:
            loaded = await self.catalog.prefetch(newest - PREFETCH_MS)
        except Exception as exc:  # queries load what they need themselves
            log.warning("block metadata prefetch failed", extra={"error": str(exc)})
            return
        log.info("block metadata loaded", extra={"blocks": loaded})

    # -- cutting ---------------------------------------------------------------

    def boundary(self) -> int:
        """Block ranges ending at or before this are closed."""
        head = self.head
        if head.max_time == NO_SAMPLE:
            return NO_SAMPLE
        b = self.options.block_duration_ms
        return (head.max_time - self.ooo_window_ms) // b * b

    def tick(self) -> None:
        """Cut closed ranges if due (called periodically on the event loop)."""
        boundary = self.boundary()
        late_every = self.options.late_cut_interval_ms
        if late_every is None:
            late_every = min(self.options.block_duration_ms // 4, 15 * 60_000)
        due = boundary > self._last_boundary or (
            (time.monotonic() - self._last_cut) * 1000 >= late_every
            and self._has_closed_parts(boundary)
        )
        if due and boundary != NO_SAMPLE:
            self._cut(boundary, KindOf(set(self._cut_ranges)))

    def _has_closed_parts(self, boundary: int) -> bool:
        p = self.head.partitions.partition_ms
        return bool(self.head.buffer.n and self.head.buffer.min_t < boundary) or any(
            (k + 1) * p <= boundary for k in self.head.partitions.keys()
        )

    def _cut(self, boundary: int, kind_of: KindOf) -> list[tuple[CutJob, asyncio.Future]]:
        jobs = take_ranges(self.head, boundary, self.options.block_duration_ms, kind_of)
        self._last_boundary = max(self._last_boundary, min(boundary, self.boundary()))
        self._last_cut = time.monotonic()
        loop = asyncio.get_running_loop()
        queued = [(job, loop.create_future()) for job in jobs]
        if queued:
            self._jobs.extend(queued)
            self._wake.set()
        return queued

    async def flush(self) -> FlushResult:
        """Cut everything in the head now; return once all of it (and every block cut
        before) is uploaded. Raises if a block cannot be written."""
        mine = self._cut(FLUSH, KindOf(set(self._cut_ranges), flush_from=self.boundary()))
        earlier = [f for _, f in self._jobs if all(f is not m for _, m in mine)]
        uploads = [p.done for p in self.pending]
        result = FlushResult()
        result.series = await asyncio.to_thread(distinct_series, [job for job, _ in mine])
        for built in [*earlier, *(f for _, f in mine)]:
            pending = await asyncio.shield(built)
            if pending is not None:
                uploads.append(pending.done)
                if any(built is f for _, f in mine):
                    result.blocks += 1
                    result.samples += pending.meta.samples
        if uploads:
            await asyncio.gather(*(asyncio.shield(f) for f in uploads))
        log.info("flushed", extra={"blocks": result.blocks, "samples": result.samples})
        return result

    async def wait_uploaded(self) -> None:
        """Return once every block cut so far is uploaded (or raise its build error)."""
        for _, built in list(self._jobs):
            await asyncio.shield(built)
        waiting = [p.done for p in self.pending]
        if waiting:
            await asyncio.gather(*(asyncio.shield(f) for f in waiting))

    # -- build and upload ------------------------------------------------------

    async def _pipeline(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._build_jobs()
            delay = await self._upload_pending()
            if delay is not None:
                await _wait(self._wake, delay)
                self._wake.set()

    async def _build_jobs(self) -> None:
        while self._jobs:
            job, built = self._jobs[0]
            try:
                meta = await build_block(self.head, job, self.pending_dir)
            except Exception as exc:
                # Nothing is lost: the parts stay in the head and are cut again later.
                self._jobs.pop(0)
                self.head.partitions.give_back(job.taken)
                self.stats.last_error = f"writing a block for {job.range_start}: {exc}"
                log.exception("block build failed", extra={"range_start": job.range_start})
                if not built.done():
                    built.set_exception(exc)
                    built.exception()  # retrieved: a flush may not be waiting for it
                continue
            self._jobs.pop(0)
            if meta is None:
                self.head.partitions.release(job.taken)
                if not built.done():
                    built.set_result(None)
                continue
            self._cut_ranges.add(job.range_start)
            self.stats.blocks_cut += 1
            pending = PendingBlock(meta, self.pending_dir / meta.id, job.taken)
            self.pending.append(pending)
            if not built.done():
                built.set_result(pending)
            log.info(
                "block cut",
                extra={
                    "block": meta.id,
                    "kind": meta.kind,
                    "samples": meta.samples,
                    "series": meta.series,
                },
            )

    async def _upload_pending(self) -> float | None:
        """Upload pending blocks in order; the wait before retrying, or None when done."""
        while self.pending:
            p = self.pending[0]
            p.attempts += 1
            try:
                await upload_block(self.store, p.directory, p.meta)
            except Exception as exc:
                p.last_error = str(exc)
                self.stats.upload_failures += 1
                self.stats.last_error = f"uploading block {p.meta.id}: {exc}"
                lo, hi = self.options.upload_retry_ms
                delay = min(lo * 2 ** min(p.attempts - 1, 30), hi) / 1000
                log.warning(
                    "block upload failed",
                    extra={
                        "block": p.meta.id,
                        "attempt": p.attempts,
                        "error": str(exc),
                        "retry_s": delay,
                    },
                )
                return delay
            self._commit(p)
        return None

    def _commit(self, p: PendingBlock) -> None:
        """Publish the block and drop its parts from the head, in one step."""
        self.pending.pop(0)
        self.catalog.add(p.meta)
        self.head.partitions.release(p.taken)
        self.head.drop_idle_series()
        self.stats.blocks_uploaded += 1
        self.stats.bytes_uploaded += p.meta.size
        shutil.rmtree(p.directory, ignore_errors=True)
        if not p.done.done():
            p.done.set_result(None)
        log.info("block uploaded", extra={"block": p.meta.id, "bytes": p.meta.size})
        if self.on_commit is not None:
            self.on_commit()
        self._compact_wake.set()

    # -- compaction, downsampling, retention -----------------------------------

    async def _maintenance(self) -> None:
        while True:
            await _wait(self._compact_wake, self.options.compaction_interval_ms / 1000)
            self._compact_wake.clear()
            if not self.catalog.loaded:
                continue
            try:
                await self.maintain()
            except Exception as exc:
                self.stats.maintenance_failures += 1
                self.stats.last_error = f"compaction: {exc}"
                log.warning("block maintenance failed", extra={"error": str(exc)})

    def newest_time(self) -> int:
        times = [t for t in (self.head.max_time, self.catalog.max_time) if t is not None]
        return max(times) if times else NO_SAMPLE

    async def maintain(self, *, closed_before: int | None = None) -> None:
        """One round: compact closed ranges, downsample old blocks, apply retention, delete.

        Ranges are closed once cut; `closed_before` overrides that (after a flush
        everything is cut, so a caller may compact the open day too).
        """
        boundary = min(self.boundary(), self._last_boundary)
        if closed_before is not None:
            boundary = closed_before
        await self.compactor.run(boundary, self.newest_time())

    def wake_maintenance(self) -> None:
        self._compact_wake.set()

    # -- status ----------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Blocks, the upload backlog and recent trouble, for `/api/v1/status/blocks`."""
        now = time.monotonic()
        pending = [
            {
                **block_json(p.meta),
                "attempts": p.attempts,
                "lastError": p.last_error,
                "waitingSeconds": round(now - p.since, 3),
            }
            for p in self.pending
        ]
        return {
            "objectStore": self.store.name,
            "catalogLoaded": self.catalog.loaded,
            "blocks": [
                block_json(m, r is not None and r.loaded)
                for m in self.catalog.blocks
                for r in (self.catalog.reader(m.id),)
            ],
            "pending": pending,
            "backlog": self.backlog(),
            "lastError": self.stats.last_error,
        }

    def backlog(self) -> dict[str, float]:
        """What waits on local disk for its upload."""
        now = time.monotonic()
        return {
            "blocks": len(self.pending),
            "bytes": sum(p.meta.size for p in self.pending),
            "samples": sum(p.meta.samples for p in self.pending),
            "oldestSeconds": round(max((now - p.since for p in self.pending), default=0.0), 3),
        }


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Wait for `event` at most `seconds` (cancellation-safe, unlike 3.11's wait_for)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
