"""Counts every operation on a store: requests, bytes, failures, time (Thanos `WrapWithMetrics`).

Storage keeps no metrics library: the counters are plain numbers in
`OperationStats`, which the service's self-metrics read at scrape time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from storage.errors import ObjectNotFound
from storage.objstore.base import ObjectInfo, ObjectStore

OPERATIONS = ("put", "get", "get_range", "list", "delete", "stat")


@dataclass(slots=True)
class OperationStats:
    """Totals of one operation since start."""

    requests: int = 0
    failures: int = 0
    """Failed requests, not counting "not found" answers (they are answers)."""
    bytes: int = 0
    """Bytes sent (put) or received (get, get_range)."""
    seconds: float = 0.0


class InstrumentedStore:
    """Passes every call to `inner` and counts it in `stats[operation]`."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.stats = {op: OperationStats() for op in OPERATIONS}

    @property
    def name(self) -> str:
        return self.inner.name

    def _done(self, op: str, started: float, nbytes: int, failed: bool) -> None:
        s = self.stats[op]
        s.requests += 1
        s.bytes += nbytes
        s.seconds += time.perf_counter() - started
        if failed:
            s.failures += 1

    async def put(self, key: str, data: bytes | Path) -> None:
        started = time.perf_counter()
        size = (await asyncio.to_thread(data.stat)).st_size if isinstance(data, Path) else len(data)
        try:
            await self.inner.put(key, data)
        except Exception:
            self._done("put", started, 0, True)
            raise
        self._done("put", started, size, False)

    async def get(self, key: str) -> bytes:
        started = time.perf_counter()
        try:
            data = await self.inner.get(key)
        except Exception as exc:
            self._done("get", started, 0, not isinstance(exc, ObjectNotFound))
            raise
        self._done("get", started, len(data), False)
        return data

    async def get_range(self, key: str, offset: int, length: int) -> bytes:
        started = time.perf_counter()
        try:
            data = await self.inner.get_range(key, offset, length)
        except Exception as exc:
            self._done("get_range", started, 0, not isinstance(exc, ObjectNotFound))
            raise
        self._done("get_range", started, len(data), False)
        return data

    async def list(self, prefix: str, *, recursive: bool = False) -> AsyncIterator[str]:
        started = time.perf_counter()
        failed = False
        try:
            async for key in self.inner.list(prefix, recursive=recursive):
                yield key
        except Exception:
            failed = True
            raise
        finally:
            self._done("list", started, 0, failed)

    async def delete(self, key: str) -> None:
        started = time.perf_counter()
        try:
            await self.inner.delete(key)
        except Exception:
            self._done("delete", started, 0, True)
            raise
        self._done("delete", started, 0, False)

    async def stat(self, key: str) -> ObjectInfo:
        started = time.perf_counter()
        try:
            info = await self.inner.stat(key)
        except Exception as exc:
            self._done("stat", started, 0, not isinstance(exc, ObjectNotFound))
            raise
        self._done("stat", started, 0, False)
        return info
