"""The WAL writer: framed records, group commit, fsync policies, segment files.

`log()` is synchronous and only queues the frame, so records are logged in
exactly the order the head applied them. One flusher task takes everything
queued since its last round and writes it in the writer's own thread
(never a shared pool: a write is acknowledged after its round, so it must not
queue behind query work there), so disk I/O never blocks the event loop:

- BATCH: one write and one fsync per round; records of all requests that
  arrived meanwhile share that fsync (group commit);
- ALWAYS: a write and an fsync per record;
- INTERVAL: acknowledged after `write()`; fsynced every
  `wal_fsync_interval_ms` by the same flusher;
- NEVER: acknowledged after `write()`; fsynced at segment rotation and close.

`wait(seq)` returns once record `seq` (and all before it) is written under
the policy. A round that fails is reported to its waiters as
`StorageUnavailable`; after a failed fsync the writer refuses all further
records, since what the page cache still holds can no longer be trusted.

Segments are files named by an 8-digit number in the WAL directory. A new one
starts when the current one reaches `wal_segment_bytes`. For each segment the
writer remembers the newest sample timestamp it holds, so that whole segments
behind the retention boundary can be deleted, and the sequence number of its
last record, so that segments holding only records whose samples are all in
uploaded blocks can be deleted (`remove_segments_upto`).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from storage.errors import StorageUnavailable
from storage.options import FsyncPolicy, StorageOptions
from storage.wal.frame import encode_frame
from storage.wal.reader import segment_path

log = logging.getLogger(__name__)

NO_SAMPLES = -(1 << 62)
T = TypeVar("T")


class WALWriter:
    """Appends records to the WAL directory; see the module docstring."""

    def __init__(
        self,
        directory: Path,
        options: StorageOptions,
        *,
        first_segment: int,
        segment_max_ts: dict[int, int] | None = None,
        first_seq: int = 0,
        segment_last_seq: dict[int, int] | None = None,
    ) -> None:
        self.directory = directory
        self.options = options
        self.policy = options.wal_fsync
        self._segment_max_ts: dict[int, int] = dict(segment_max_ts or {})
        self._segment_last_seq: dict[int, int] = dict(segment_last_seq or {})
        """Sequence number of each segment's last record (records before `first_seq`
        are the replayed ones, numbered in order by replay)."""
        self._segment = first_segment
        self._size = 0
        self._fd = -1
        self._pending: list[bytes] = []
        self._pending_max_ts = NO_SAMPLES
        self._seq = first_seq
        self._done = first_seq
        self._failed: list[tuple[int, int, str]] = []
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._waiter_no = 0
        self._wake = asyncio.Event()
        self._fsync_due = False
        self._unsynced = False
        self._closing = False
        self._broken: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._io = ThreadPoolExecutor(1, thread_name_prefix="wal")

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Open a fresh segment and start the flusher (and the fsync timer)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self._open_segment, self._segment)
        self._segment_max_ts.setdefault(self._segment, NO_SAMPLES)
        self._segment_last_seq.setdefault(self._segment, self._seq)
        self._task = asyncio.create_task(self._flusher(), name="wal-flusher")
        if self.policy is FsyncPolicy.INTERVAL:
            self._timer = asyncio.create_task(self._interval(), name="wal-fsync-timer")

    async def close(self) -> None:
        """Write what is queued, fsync, close the segment; later `log` calls raise."""
        if self._closing:
            return
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            durations = await self._run(_fsync_close, fd, self._broken is None)
            self._report(durations)
        self._io.shutdown(wait=False)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` in the writer's own thread."""
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    # -- logging ---------------------------------------------------------------

    @property
    def broken(self) -> str | None:
        """Why the writer refuses records, or None if it is healthy."""
        if self._broken:
            return self._broken
        return "the WAL is closed" if self._closing else None

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest record logged."""
        return self._seq

    def log(
        self,
        cluster: str | None,
        body: bytes,
        now_ms: int,
        max_ts: int,
        skip: Sequence[int] = (),
        body_format: int = 1,
    ) -> int:
        """Queue one record (`body` a remote-write `body_format` request); returns its
        sequence number for `wait`."""
        if reason := self.broken:
            raise StorageUnavailable(f"WAL {self.directory} refuses writes: {reason}")
        self._pending.append(encode_frame(cluster, now_ms, body, skip, body_format))
        if max_ts > self._pending_max_ts:
            self._pending_max_ts = max_ts
        self._seq += 1
        self._wake.set()
        return self._seq

    async def wait(self, seq: int) -> None:
        """Return once records up to `seq` are written per the fsync policy."""
        if seq <= self._done:
            for lo, hi, reason in self._failed:
                if lo < seq <= hi:
                    raise StorageUnavailable(f"WAL write failed: {reason}")
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiter_no += 1
        heapq.heappush(self._waiters, (seq, self._waiter_no, future))
        await future

    # -- segments --------------------------------------------------------------

    @property
    def current_segment(self) -> int:
        return self._segment

    def segment_max_ts(self) -> dict[int, int]:
        """Newest sample timestamp per segment (NO_SAMPLES for none)."""
        return dict(self._segment_max_ts)

    async def remove_segments_before(self, horizon_ms: int) -> list[int]:
        """Delete closed segments whose samples are all older than `horizon_ms`."""
        doomed = [
            n
            for n, max_ts in self._segment_max_ts.items()
            if n < self._segment and max_ts < horizon_ms
        ]
        if not doomed:
            return []
        for n in doomed:
            del self._segment_max_ts[n]
            self._segment_last_seq.pop(n, None)
        await asyncio.to_thread(self._unlink, doomed)
        log.info("wal segments deleted past retention", extra={"segments": doomed})
        return doomed

    async def remove_segments_upto(self, needed_seq: int) -> list[int]:
        """Delete closed segments whose records all come before record `needed_seq`.

        The caller passes the oldest record it still needs (the head's oldest
        record not yet in an uploaded block); everything before is safe elsewhere.
        """
        doomed = [
            n
            for n, last in self._segment_last_seq.items()
            if n < self._segment and last < needed_seq
        ]
        if not doomed:
            return []
        for n in doomed:
            del self._segment_last_seq[n]
            self._segment_max_ts.pop(n, None)
        await asyncio.to_thread(self._unlink, doomed)
        log.info(
            "wal segments deleted: their samples are in uploaded blocks", extra={"segments": doomed}
        )
        return doomed

    def segment_last_seq(self) -> dict[int, int]:
        """Sequence number of each segment's last record."""
        return dict(self._segment_last_seq)

    def _unlink(self, numbers: list[int]) -> None:
        for n in numbers:
            try:
                segment_path(self.directory, n).unlink()
            except FileNotFoundError:
                pass
        _fsync_dir(self.directory)

    # -- the flusher -----------------------------------------------------------

    async def _flusher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._pending:
                await self._flush_round()
            if self._fsync_due:
                await self._sync_round()
            if self._closing and not self._pending:
                return

    async def _flush_round(self) -> None:
        frames, self._pending = self._pending, []
        max_ts, self._pending_max_ts = self._pending_max_ts, NO_SAMPLES
        lo, hi = self._done, self._seq
        rotate_to = None
        if self._size >= self.options.wal_segment_bytes:
            rotate_to = self._segment + 1
            self._segment = rotate_to
            self._segment_max_ts[rotate_to] = NO_SAMPLES
            self._segment_last_seq[rotate_to] = lo
            self._size = 0
        written = sum(map(len, frames))
        try:
            durations = await self._run(self._write_round, frames, rotate_to)
        except OSError as exc:
            reason = f"{self._segment_path()}: {exc}"
            log.error("wal write failed", extra={"error": reason})
            self._failed.append((lo, hi, reason))
            self._settle(hi, StorageUnavailable(f"WAL write failed: {reason}"))
            return
        self._size += written
        seg = self._segment
        self._segment_max_ts[seg] = max(self._segment_max_ts.get(seg, NO_SAMPLES), max_ts)
        self._segment_last_seq[seg] = hi
        self._report(durations)
        self._settle(hi, None)

    async def _sync_round(self) -> None:
        self._fsync_due = False
        if not self._unsynced or self._fd < 0:
            return
        self._unsynced = False
        try:
            duration = await self._run(_timed_fsync, self._fd)
        except OSError as exc:
            self._break(f"fsync of {self._segment_path()}: {exc}")
            return
        self._report([duration])

    async def _interval(self) -> None:
        period = self.options.wal_fsync_interval_ms / 1000
        while True:
            await asyncio.sleep(period)
            self._fsync_due = True
            self._wake.set()

    def _write_round(self, frames: list[bytes], rotate_to: int | None) -> list[float]:
        """Runs in a worker thread: rotate if asked, write, fsync per policy."""
        durations: list[float] = []
        if rotate_to is not None:
            old, self._fd = self._fd, -1
            try:
                durations += _fsync_close(old, True)
            except OSError as exc:
                self._broken = f"fsync of segment {rotate_to - 1:08d} at rotation: {exc}"
                raise
        if self._fd < 0:
            # Opening a segment failed before (rotation, or a previous round):
            # try again each round, so the WAL recovers once the cause is gone.
            self._open_segment(self._segment)
        policy = self.policy
        if policy is FsyncPolicy.ALWAYS:
            for frame in frames:
                self._write_all(frame)
                durations.append(self._fsync_or_break())
            return durations
        self._write_all(b"".join(frames) if len(frames) > 1 else frames[0])
        if policy is FsyncPolicy.BATCH:
            durations.append(self._fsync_or_break())
        else:
            self._unsynced = True
        return durations

    def _write_all(self, data: bytes) -> None:
        fd = self._fd
        start = os.lseek(fd, 0, os.SEEK_END)
        view = memoryview(data)
        try:
            while view:
                n = os.write(fd, view)
                view = view[n:]
        except OSError:
            # Cut the partial frame off, so later frames do not follow garbage.
            try:
                os.ftruncate(fd, start)
            except OSError as exc:
                self._broken = f"cannot truncate a partial write: {exc}"
            raise

    def _fsync_or_break(self) -> float:
        try:
            return _timed_fsync(self._fd)
        except OSError as exc:
            self._broken = f"fsync of {self._segment_path()}: {exc}"
            raise

    def _open_segment(self, number: int) -> None:
        path = segment_path(self.directory, number)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        _fsync_dir(self.directory)

    def _segment_path(self) -> Path:
        return segment_path(self.directory, self._segment)

    def _break(self, reason: str) -> None:
        self._broken = reason
        log.error("wal broken", extra={"error": reason})

    def _settle(self, upto: int, error: BaseException | None) -> None:
        self._done = max(self._done, upto)
        waiters = self._waiters
        while waiters and waiters[0][0] <= upto:
            _, _, future = heapq.heappop(waiters)
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    def _report(self, durations: list[float]) -> None:
        callback = self.options.on_wal_fsync
        if callback is not None:
            for d in durations:
                callback(d)


def _timed_fsync(fd: int) -> float:
    started = time.perf_counter()
    os.fsync(fd)
    return time.perf_counter() - started


def _fsync_close(fd: int, sync: bool) -> list[float]:
    try:
        return [_timed_fsync(fd)] if sync else []
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
