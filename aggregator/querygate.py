"""Admission for reads: how many run at once, how many wait, and how much memory they take.

`QueryGate.admit()` is held around every read request (queries, series and
label lookups, remote read) for its whole life, answer encoding included:

- at most `query.max_concurrency` run at once (Prometheus's default is 20;
  ours is min(20, CPUs), since evaluation here competes with the event loop
  for one interpreter lock and a few cores); up to `query.max_queued` more wait, in
  order; past that a request is refused at once with 503 and `Retry-After`
  (`Overloaded`), and one that waits longer than its timeout fails as a
  timeout, naming the limit it waited for;
- each admitted read gets a `QueryMemory` account: selects reserve what they
  gather and the engine what it evaluates, before allocating. One read may
  take at most `query.max_query_memory` (past it: 422, naming the key); all
  reads together at most what `query.max_memory` leaves above the memory the
  process holds without them (past it: 503 with `Retry-After`, since room
  frees up as other reads end). The resident size is checked on every
  reservation too, so that the head growing under a steady stream of reads
  still counts.
- `close()` (shutdown) refuses new and queued reads and cancels running ones;
  they answer 503 "shutting down".

The gate is the event loop's: `admit` and `close` run there. Reservations
may come from worker threads (a select gathering off the loop), so the
shared counters are guarded by a lock.
"""

from __future__ import annotations

import asyncio
import collections
import resource
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aggregator.errors import NotReady, Overloaded
from aggregator.units import format_bytes
from promql.errors import QueryTimeout
from storage.errors import MemoryBusy, MemoryLimitExceeded

RETRY_AFTER_S = 5
"""What a refused read is told to wait before trying again."""


def resident_bytes() -> int:
    """The process's resident set size, from /proc (0 where there is none)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            fields = f.read().split()
    except OSError:
        return 0
    return int(fields[1]) * resource.getpagesize()


class MemoryPool:
    """Memory shared by every read: `max_memory` minus what the process holds without reads."""

    def __init__(
        self,
        max_memory: int,
        max_query_memory: int,
        *,
        resident: Callable[[], int] = resident_bytes,
    ) -> None:
        self.max_memory = max_memory
        self.max_query_memory = max_query_memory
        self._resident = resident
        self._lock = threading.Lock()
        self.reserved = 0
        self.accounts = 0
        self.baseline = resident()
        """Resident bytes when no read holds memory (re-measured whenever none does)."""

    def open(self) -> QueryMemory:
        with self._lock:
            if self.accounts == 0:
                self.baseline = self._resident()
            self.accounts += 1
        return QueryMemory(self)

    def _reserve(self, account: QueryMemory, nbytes: int) -> None:
        with self._lock:  # one query's selects may gather in several threads at once
            if account.used + nbytes > self.max_query_memory:
                raise MemoryLimitExceeded(
                    f"the query would take {format_bytes(account.used + nbytes)} of memory, "
                    f"more than query.max_query_memory ({format_bytes(self.max_query_memory)})"
                )
            room = self.max_memory - self.baseline - self.reserved
            resident = self._resident()
            if nbytes > room or resident + nbytes > self.max_memory:
                raise MemoryBusy(
                    f"queries in progress hold {format_bytes(self.reserved)} and the process "
                    f"{format_bytes(resident)} of query.max_memory "
                    f"({format_bytes(self.max_memory)}); this one needs "
                    f"{format_bytes(nbytes)} more: retry later",
                    retry_after_s=RETRY_AFTER_S,
                )
            self.reserved += nbytes
            account.used += nbytes

    def _release(self, account: QueryMemory) -> None:
        with self._lock:
            self.reserved -= account.used
            self.accounts -= 1
            account.used = 0


class QueryMemory:
    """One read's memory account (a `storage.interfaces.MemoryBudget`)."""

    def __init__(self, pool: MemoryPool) -> None:
        self._pool = pool
        self.used = 0

    def reserve(self, nbytes: int) -> None:
        """Count `nbytes` about to be allocated; raises MemoryLimitExceeded past a limit."""
        if nbytes > 0:
            self._pool._reserve(self, nbytes)

    def close(self) -> None:
        self._pool._release(self)


class QueryGate:
    """Bounded concurrency with a bounded queue, and a memory account per read."""

    def __init__(self, max_concurrency: int, max_queued: int, memory: MemoryPool) -> None:
        self.max_concurrency = max_concurrency
        self.max_queued = max_queued
        self.memory = memory
        self.running = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._tasks: set[asyncio.Task[object]] = set()
        self._closed = False

    @property
    def queued(self) -> int:
        return len(self._waiting)

    @asynccontextmanager
    async def admit(self, timeout_s: float) -> AsyncIterator[QueryMemory]:
        """Hold a slot for one read (waiting at most `timeout_s`); yields its memory account."""
        if self._closed:
            raise NotReady("the service is shutting down")
        if self.running < self.max_concurrency and not self._waiting:
            self.running += 1
        else:
            await self._wait(timeout_s)  # returns holding a slot handed over by `_wake_next`
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        account = self.memory.open()
        try:
            yield account
        except asyncio.CancelledError:
            if self._closed and task is not None and task.uncancel() == 0:
                raise NotReady("the service is shutting down: the query was canceled") from None
            raise
        finally:
            account.close()
            if task is not None:
                self._tasks.discard(task)
            self.running -= 1
            self._wake_next()

    async def _wait(self, timeout_s: float) -> None:
        if len(self._waiting) >= self.max_queued:
            raise Overloaded(
                f"too many queries: query.max_concurrency ({self.max_concurrency}) are running "
                f"and query.max_queued ({self.max_queued}) are waiting",
                retry_after_s=RETRY_AFTER_S,
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.running -= 1  # a slot was handed over, but it will not be used
                self._wake_next()
            elif waiter in self._waiting:
                self._waiting.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise QueryTimeout(
                    f"query timed out after {timeout_s:g}s waiting for one of "
                    f"query.max_concurrency ({self.max_concurrency}) slots"
                ) from None
            raise

    def _wake_next(self) -> None:
        """Hand free slots to the longest waiting reads."""
        while self._waiting and self.running < self.max_concurrency:
            waiter = self._waiting.popleft()
            if not waiter.done():
                self.running += 1
                waiter.set_result(None)

    def close(self) -> int:
        """Refuse new and queued reads, cancel running ones; returns how many were running."""
        self._closed = True
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(NotReady("the service is shutting down"))
        for task in list(self._tasks):
            task.cancel()
        return len(self._tasks)
