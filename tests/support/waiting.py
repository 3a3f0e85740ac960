"""Waiting for something other tasks or processes bring about, with a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll `condition` until it holds; TimeoutError after `timeout_s`.

    For state that changes behind our back (a delivery task, a WAL fsync in a
    thread, an HTTP server): there is no event to wait on, so poll briefly.
    """
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - no event exists for these conditions
            await asyncio.sleep(0.005)


async def until_async(condition: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    """`until` for a condition that must itself await (e.g. an HTTP request)."""
    async with asyncio.timeout(timeout_s):
        while not await condition():  # noqa: ASYNC110 - polling a remote state
            await asyncio.sleep(0.05)
