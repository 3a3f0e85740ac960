"""One delivery queue per target: bounded, batched, retried with backoff.

Each target (an Alertmanager, a webhook) has its own queue and its own task,
so a target that is down or slow holds up no other. The queue has a
capacity; when it is full the oldest items are dropped (Prometheus does the
same: a newer copy of a firing alert follows within a minute). A failed
batch is retried with exponential backoff, unless the target said the
request itself is bad (4xx other than 429), which no retry can fix.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import aiohttp

from alerting.metrics import NotifierMetrics

log = logging.getLogger(__name__)

T = TypeVar("T")

INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0


class DeliveryError(Exception):
    """A delivery that failed; `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


Deliver = Callable[[list[T]], Awaitable[None]]


class Sender(Generic[T]):
    """A bounded queue with a task delivering batches of up to `max_batch` items."""

    def __init__(
        self,
        name: str,
        deliver: Deliver[T],
        metrics: NotifierMetrics,
        *,
        capacity: int = 10_000,
        max_batch: int = 64,
        count: Callable[[list[T]], int] = len,
        initial_backoff_s: float = INITIAL_BACKOFF_S,
    ) -> None:
        self.name = name
        self._deliver = deliver
        self._metrics = metrics
        self._capacity = capacity
        self._max_batch = max_batch
        self._count = count  # alerts in a batch (a webhook payload holds several)
        self._initial_backoff = initial_backoff_s
        self._queue: deque[T] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        metrics.queue_capacity.labels(name).set(capacity)
        metrics.queue_length.labels(name).set(0)
        for counter in (metrics.sent, metrics.errors, metrics.dropped):
            counter.labels(name)  # at 0 from the start, as Prometheus's are

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"notify {self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def enqueue(self, items: list[T]) -> None:
        """Add items; past the capacity, the oldest queued items are dropped."""
        self._queue.extend(items)
        overflow = len(self._queue) - self._capacity
        if overflow > 0:
            dropped = [self._queue.popleft() for _ in range(overflow)]
            self._metrics.dropped.labels(self.name).inc(self._count(dropped))
            log.warning(
                "notification queue full, dropping",
                extra={"target": self.name, "dropped": overflow},
            )
        self._metrics.queue_length.labels(self.name).set(len(self._queue))
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def _run(self) -> None:
        backoff = self._initial_backoff
        batch: list[T] = []
        while True:
            if not batch:
                while not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                batch = [
                    self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))
                ]
                self._metrics.queue_length.labels(self.name).set(len(self._queue))
            started = time.perf_counter()
            try:
                await self._deliver(batch)
            except DeliveryError as exc:
                self._metrics.errors.labels(self.name).inc(self._count(batch))
                if not exc.retryable:
                    log.error("notification refused", extra={"target": self.name, "err": str(exc)})
                    self._metrics.dropped.labels(self.name).inc(self._count(batch))
                    batch = []
                    continue
                log.warning(
                    "notification failed, retrying",
                    extra={"target": self.name, "err": str(exc), "backoff_s": backoff},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            self._metrics.latency.labels(self.name).observe(time.perf_counter() - started)
            self._metrics.sent.labels(self.name).inc(self._count(batch))
            batch = []
            backoff = self._initial_backoff


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    timeout_s: float,
    headers: dict[str, str],
) -> None:
    """POST a JSON body; raises DeliveryError saying whether a retry may help."""
    try:
        async with session.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", **headers},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            if resp.status < 300:
                return
            text = (await resp.text(errors="replace"))[:200]
            retryable = resp.status >= 500 or resp.status == 429
            raise DeliveryError(f"{url}: HTTP {resp.status}: {text.strip()}", retryable=retryable)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        reason = str(exc) or type(exc).__name__
        raise DeliveryError(f"{url}: {reason}", retryable=True) from None
