"""Time as the rule scheduler sees it: injectable, so tests never sleep.

`SystemClock` is wall time for timestamps and `asyncio.sleep` for waiting.
Tests use `ManualClock`, whose sleepers wake only when the test moves time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the epoch."""
        ...

    async def sleep_until(self, ms: int) -> None:
        """Return once `now_ms() >= ms` (at once if it already is)."""
        ...


class SystemClock:
    """The real clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep_until(self, ms: int) -> None:
        delay = (ms - self.now_ms()) / 1000
        if delay > 0:
            await asyncio.sleep(delay)


class ManualClock:
    """A clock that moves only when told to; `advance` wakes whoever is due."""

    def __init__(self, start_ms: int) -> None:
        self._now = start_ms
        self._changed = asyncio.Condition()

    def now_ms(self) -> int:
        return self._now

    async def sleep_until(self, ms: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._now >= ms)

    async def set(self, ms: int) -> None:
        """Move to `ms` and let every task due by then run until it waits again."""
        async with self._changed:
            self._now = ms
            self._changed.notify_all()
        for _ in range(20):  # let woken tasks reach their next wait
            await asyncio.sleep(0)

    async def advance(self, ms: int) -> None:
        await self.set(self._now + ms)
