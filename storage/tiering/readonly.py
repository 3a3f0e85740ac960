"""Blocks another process writes, as this one's queries see them: listed again and again.

The query tier of a scale-out reads the blocks its shards upload under their
own prefixes (`storage.object_store.read_prefixes`). Each prefix gets a
`ReadOnlyCatalog`: the same live-block rules and snapshots as the writer's
`BlockCatalog` (a compacted block hides its sources, a downsampled block of a
replaced raw block is not live), but its content is the last listing, never
this process's own writes. The store is wrapped read-only: nothing here can
put, compact or delete.

`refresh` lists every `blocks/<id>/meta.json` (recursively: a block whose
`meta.json` the writer deleted first is gone even while its files remain),
reads the metas of blocks not seen before (metas never change), and swaps in
the new live set in one step on the event loop. Since the writer uploads a
compacted block before deleting its sources, and a query pins its snapshot,
a query sees either the sources or the compacted block, never both and
never neither. Objects the writer deletes under a running query surface as
`ObjectNotFound` in its reads; `SharedBlocks` then refreshes and retries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from storage.blocks.cache import ChunkCache
from storage.blocks.meta import BLOCKS_PREFIX, META_FILE, BlockMeta, is_block_id
from storage.blocks.reader import BlockReader
from storage.objstore.base import ObjectStore
from storage.objstore.readonly import ReadOnlyStore
from storage.tiering.catalog import BlockCatalog, _Entry, read_metas

log = logging.getLogger(__name__)


class ReadOnlyCatalog(BlockCatalog):
    """The live blocks under one prefix of another writer, as of the last `refresh`."""

    def __init__(
        self,
        prefix: str,
        store: ObjectStore,
        cache: ChunkCache,
        decoded: ChunkCache | None = None,
    ) -> None:
        super().__init__(
            store if isinstance(store, ReadOnlyStore) else ReadOnlyStore(store), cache, decoded
        )
        self.prefix = prefix
        self._metas: dict[str, BlockMeta] = {}
        """Every block with a readable meta.json at the last listing (live or superseded)."""
        self._running: asyncio.Future[None] | None = None
        self.last_refresh: float | None = None
        """Wall-clock time of the last successful listing."""
        self.last_error: str | None = None
        """Why the last listing failed (None after a good one)."""

    async def refresh(self) -> None:
        """List the prefix again and swap in the new live set. Concurrent callers share one
        listing (a query retrying after a missing object joins the periodic one).
        Raises what the store raised; the previous view then stays."""
        if self._running is None:
            self._running = asyncio.ensure_future(self._refresh())
            self._running.add_done_callback(self._finished)
        await asyncio.shield(self._running)

    def _finished(self, fut: asyncio.Future[None]) -> None:
        self._running = None
        if not fut.cancelled() and fut.exception() is not None:
            self.last_error = str(fut.exception())

    async def _refresh(self) -> None:
        listed: set[str] = set()
        async for key in self.store.list(BLOCKS_PREFIX, recursive=True):
            block_id, _, name = key[len(BLOCKS_PREFIX) :].partition("/")
            if name == META_FILE and is_block_id(block_id):
                listed.add(block_id)
        new = sorted(listed - self._metas.keys() - self.unreadable.keys())  # blocks are immutable
        fresh = await read_metas(self.store, new, self.unreadable)
        metas = {i: m for i, m in self._metas.items() if i in listed}
        metas.update((m.id, m) for m in fresh)
        self._install(metas)
        self.last_refresh = time.time()
        self.last_error = None
        if not self.loaded or fresh or len(metas) != len(listed):
            log.info(
                "shared blocks listed",
                extra={"prefix": self.prefix, "blocks": len(self._live), "new": len(fresh)},
            )
        self.loaded = True

    def _install(self, metas: dict[str, BlockMeta]) -> None:
        """Make `metas` the catalog's content (one synchronous step: queries see the old
        or the new live set, whole)."""
        known = {**self._leaving, **self._live}
        self._metas = metas
        self._live = {i: known.get(i) or _Entry(self._reader(m)) for i, m in metas.items()}
        self._leaving = {}
        self._settle()
        for block_id, entry in known.items():
            if block_id in metas:
                continue
            self._leaving[block_id] = entry
            if not entry.refs:  # else a running query holds it: forgotten on a later refresh
                self.forget(block_id)

    def horizon(self, readers: Sequence[BlockReader] | None = None) -> int | None:
        """The newest sample time the live blocks (or `readers`) hold; None without blocks."""
        metas = [r.meta for r in readers] if readers is not None else self.blocks
        return max((m.max_time for m in metas), default=None)

    def status(self) -> dict[str, object]:
        """This prefix for `/api/v1/status/blocks`."""
        return {
            "prefix": self.prefix,
            "store": self.store.name,
            "loaded": self.loaded,
            "blocks": len(self._live),
            "maxTime": self.horizon(),
            "lastRefresh": self.last_refresh,
            "lastError": self.last_error,
        }
