"""Other writers' blocks (`storage.object_store.read_prefixes`) as one read-only tier.

`SharedBlocks` owns a `ReadOnlyCatalog` per prefix and lists them all again
every `read_relist_interval`. Per query, `open` pins a snapshot of each and
returns a `SharedQuerier`, which reads them through the same `BlockQuerier`
the writer's own blocks use, and tells (`horizons`) the newest sample time
each prefix's snapshot holds: a scale-out's query tier asks a shard only for
what is newer (`aggregator.federation.fleet`).

A read that finds an object gone (the writer compacted or retired the block
under the query) lists that prefix again and reads its new snapshot once; if
that fails too, or the store cannot be read, the prefix is left out of the
answer with a warning naming it, and the rest still answers. Query limits
(`ReadLimitExceeded`, `SampleLimitExceeded`) are raised as for any read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from storage.annotations import Annotations
from storage.blocks.cache import ChunkCache
from storage.blocks.querier import BlockQuerier
from storage.combine import combine
from storage.errors import ObjectNotFound, StorageUnavailable
from storage.interfaces import LabelResult, SelectHints, SeriesSet
from storage.labels import Matcher
from storage.objstore.base import ObjectStore, ObjectStoreError
from storage.tiering.catalog import CatalogSnapshot
from storage.tiering.querier import ReadOptions
from storage.tiering.readonly import ReadOnlyCatalog

log = logging.getLogger(__name__)

T = TypeVar("T")
_UNREADABLE = (ObjectNotFound, ObjectStoreError, StorageUnavailable, OSError)
"""What a read of another writer's blocks may meet that leaves the prefix out, not the query."""


class SharedBlocks:
    """The read-only prefixes; `start` lists them now and then every `relist_interval_ms`."""

    def __init__(
        self,
        stores: Mapping[str, ObjectStore],
        cache: ChunkCache,
        decoded: ChunkCache | None,
        relist_interval_ms: int,
    ) -> None:
        self.catalogs = {p: ReadOnlyCatalog(p, s, cache, decoded) for p, s in stores.items()}
        self.relist_interval_ms = relist_interval_ms
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start listing in the background (queries meanwhile ask the shards for everything)."""
        if self.catalogs and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="shared-blocks-relist")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def refresh(self) -> None:
        """List every prefix once (failures are kept per prefix, in its `last_error`)."""
        results = await asyncio.gather(
            *(c.refresh() for c in self.catalogs.values()), return_exceptions=True
        )
        for catalog, result in zip(self.catalogs.values(), results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                extra = {"prefix": catalog.prefix, "error": str(result)}
                log.warning("shared blocks not listed", extra=extra)

    async def _loop(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.relist_interval_ms / 1000)

    def open(self, start_ms: int, end_ms: int, read: ReadOptions) -> SharedQuerier:
        """A querier over every prefix's current blocks; `release` it when the query ends."""
        return SharedQuerier(self.catalogs, start_ms, end_ms, read)

    def status(self) -> list[dict[str, Any]]:
        return [c.status() for c in self.catalogs.values()]


class SharedQuerier:
    """One query's view of the read-only prefixes (see the module docstring)."""

    def __init__(
        self,
        catalogs: Mapping[str, ReadOnlyCatalog],
        start_ms: int,
        end_ms: int,
        read: ReadOptions,
    ) -> None:
        self._catalogs = catalogs
        self.start_ms = start_ms
        self.end_ms = end_ms
        self._read = read
        self._snapshots: dict[str, CatalogSnapshot] = {
            p: c.snapshot() for p, c in catalogs.items() if c.loaded
        }
        self.horizons: dict[str, int] = {}
        """Per prefix, the newest sample time its pinned blocks hold (prefixes with blocks)."""
        for prefix, snap in self._snapshots.items():
            newest = catalogs[prefix].horizon(snap.readers)
            if newest is not None:
                self.horizons[prefix] = newest

    def release(self) -> None:
        for snap in self._snapshots.values():
            snap.release()
        self._snapshots.clear()

    def _warnings(self) -> Annotations:
        out = Annotations()
        for catalog in self._catalogs.values():
            if not catalog.loaded and catalog.last_error:
                out.warn(
                    f"the blocks under {catalog.store.name} could not be listed yet "
                    f"({catalog.last_error}): their samples are answered only by the service "
                    "that wrote them"
                )
        return out

    async def _each(
        self, call: Callable[[BlockQuerier], Awaitable[T]]
    ) -> tuple[list[T], Annotations]:
        """`call` on every prefix's blocks at once; unreadable prefixes become warnings."""
        warnings = self._warnings()
        results = await asyncio.gather(*(self._one(p, call, warnings) for p in self._snapshots))
        return [r for r in results if r is not None], warnings

    async def _one(
        self, prefix: str, call: Callable[[BlockQuerier], Awaitable[T]], warnings: Annotations
    ) -> T | None:
        catalog = self._catalogs[prefix]
        try:
            return await call(self._blocks(prefix))
        except ObjectNotFound as exc:
            first = exc
        except _UNREADABLE as exc:
            warnings.warn(_left_out(catalog, exc))
            return None
        # The writer replaced or retired a block under this query: list again, read once more.
        log.info("shared block gone mid-read, listing again", extra={"prefix": prefix})
        try:
            await catalog.refresh()
        except _UNREADABLE as exc:
            warnings.warn(_left_out(catalog, f"{first}; listing again: {exc}"))
            return None
        old = self._snapshots.get(prefix)
        self._snapshots[prefix] = catalog.snapshot()
        if old is not None:
            old.release()
        try:
            return await call(self._blocks(prefix))
        except _UNREADABLE as exc:
            warnings.warn(_left_out(catalog, exc))
            return None

    def _blocks(self, prefix: str) -> BlockQuerier:
        snap = self._snapshots[prefix]
        return BlockQuerier(
            snap.readers,
            self.start_ms,
            self.end_ms,
            cost=self._read.cost,
            resolution=self._read.resolution,
        )

    async def select(
        self,
        matchers: Sequence[Matcher],
        start_ms: int,
        end_ms: int,
        *,
        hints: SelectHints | None = None,
    ) -> SeriesSet:
        sets, warnings = await self._each(
            lambda b: b.select(matchers, start_ms, end_ms, hints=hints)
        )
        out = combine(sets)
        out.warnings.merge(warnings)
        return out

    async def label_names(
        self, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        results, warnings = await self._each(lambda b: b.label_names(matchers))
        names = sorted(set().union(*(r.values for r in results)))
        return LabelResult(names[:limit] if limit else names, warnings)

    async def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        results, warnings = await self._each(lambda b: b.label_values(name, matchers))
        values = sorted(set().union(*(r.values for r in results)))
        return LabelResult(values[:limit] if limit else values, warnings)


def _left_out(catalog: ReadOnlyCatalog, why: object) -> str:
    return (
        f"the blocks under {catalog.store.name} could not be read ({why}): "
        "their samples are missing from this answer unless the service that wrote them answered"
    )
