"""The blocks in the object store, as queries see them.

Loaded at start by listing `blocks/` and reading every `meta.json`; kept up
to date by this process's own uploads, compactions and deletions (one
writer per bucket prefix). A block is live unless

- another live block names it in `sources` after compacting it (so a crash
  between uploading a compacted block and deleting its sources never shows
  a sample twice), or
- it is downsampled from a raw block that is no longer live (late samples
  were compacted into a new raw block; a fresh copy is made from that).

Queries take a `snapshot` (the live readers, each pinned by a reference
count); blocks leave the live set at once but their objects are deleted only
once no open query holds them (`deletable`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from storage.blocks.cache import ChunkCache, ReadCost
from storage.blocks.meta import BLOCKS_PREFIX, META_FILE, BlockFormatError, BlockMeta, is_block_id
from storage.blocks.reader import BlockReader, LoadedTables
from storage.errors import ObjectNotFound
from storage.objstore.base import ObjectStore

log = logging.getLogger(__name__)

LOAD_CONCURRENCY = 16
MAX_LOADED_TABLES = 64
"""Blocks whose series tables and footers stay in memory (about two months of days)."""


@dataclass(slots=True)
class _Entry:
    reader: BlockReader
    refs: int = 0


class CatalogSnapshot:
    """The live blocks when a query began; `release` unpins them (idempotent)."""

    def __init__(self, catalog: BlockCatalog, entries: list[_Entry]) -> None:
        self._catalog = catalog
        self._entries = entries
        self.readers = [e.reader for e in entries]
        for e in entries:
            e.refs += 1

    def release(self) -> None:
        entries, self._entries = self._entries, []
        for e in entries:
            e.refs -= 1


async def read_metas(
    store: ObjectStore, ids: Sequence[str], unreadable: dict[str, str]
) -> list[BlockMeta]:
    """The meta.json of each listed block, a few at a time. A block whose meta is gone
    (an upload or deletion that did not finish, or one deleted since the listing) is
    left out; one that cannot be read is left out and noted in `unreadable`."""
    gate = asyncio.Semaphore(LOAD_CONCURRENCY)

    async def read(block_id: str) -> BlockMeta | None:
        where = f"{BLOCKS_PREFIX}{block_id}/{META_FILE}"
        async with gate:
            try:
                raw = await store.get(where)
            except ObjectNotFound:
                return None
        try:
            return BlockMeta.from_json(raw, where=where)
        except BlockFormatError as exc:
            unreadable[block_id] = str(exc)
            log.warning("block unreadable", extra={"block": block_id, "error": str(exc)})
            return None

    return [m for m in await asyncio.gather(*(read(i) for i in ids)) if m is not None]


class BlockCatalog:
    """Live blocks (readers) plus blocks on their way out; all access on the event loop."""

    def __init__(
        self, store: ObjectStore, cache: ChunkCache, decoded: ChunkCache | None = None
    ) -> None:
        self.store = store
        self.cache = cache
        self.decoded = decoded if decoded is not None else ChunkCache(0)
        self.loaded_tables = LoadedTables(MAX_LOADED_TABLES)
        self._live: dict[str, _Entry] = {}
        self._leaving: dict[str, _Entry] = {}
        self.loaded = False
        self.unreadable: dict[str, str] = {}
        """Blocks whose meta.json could not be read at load, with the reason."""

    async def load(self) -> None:
        """Read every block's meta.json (raises StorageUnavailable if the store is down)."""
        ids = []
        async for key in self.store.list(BLOCKS_PREFIX):
            name = key[len(BLOCKS_PREFIX) :].rstrip("/")
            if key.endswith("/") and is_block_id(name):
                ids.append(name)
        metas = await read_metas(self.store, ids, self.unreadable)
        live = {m.id: _Entry(self._reader(m)) for m in metas}
        live.update(self._live)  # blocks this process added while the listing ran
        self._live = live
        self._settle()
        self.loaded = True
        log.info("block catalog loaded", extra={"blocks": len(self._live)})

    def _reader(self, meta: BlockMeta) -> BlockReader:
        reader = BlockReader(self.store, meta, self.cache, self.decoded)
        reader.loaded_tables = self.loaded_tables
        return reader

    def _settle(self) -> None:
        """Move superseded and stale blocks out of the live set."""
        superseded = {
            s
            for e in self._live.values()
            if e.reader.meta.kind == "compacted"
            for s in e.reader.meta.sources
        }
        for block_id in superseded & set(self._live):
            self._leaving[block_id] = self._live.pop(block_id)
        stale = [
            block_id
            for block_id, e in self._live.items()
            if e.reader.meta.resolution_ms and not set(e.reader.meta.sources) <= set(self._live)
        ]
        for block_id in stale:
            self._leaving[block_id] = self._live.pop(block_id)

    def add(self, meta: BlockMeta) -> None:
        """A block now safe in the store becomes visible (and retires what it supersedes)."""
        self._live[meta.id] = _Entry(self._reader(meta))
        self._settle()

    def retire(self, ids: Iterable[str]) -> None:
        """Take blocks out of the live set; their objects go once no query holds them."""
        for block_id in ids:
            entry = self._live.pop(block_id, None)
            if entry is not None:
                self._leaving[block_id] = entry
        self._settle()

    def deletable(self) -> list[BlockMeta]:
        """Blocks out of the live set that no open query holds."""
        return [e.reader.meta for e in self._leaving.values() if e.refs == 0]

    def forget(self, block_id: str) -> None:
        """The block's objects are gone: drop it and its cached bytes."""
        entry = self._leaving.pop(block_id, None)
        if entry is not None:
            self.loaded_tables.forget(entry.reader)
        self.cache.drop_prefix(block_id)
        self.decoded.drop_prefix(block_id)

    def snapshot(self) -> CatalogSnapshot:
        """The live blocks, in write order (`origin`, then id), pinned for one query."""
        entries = sorted(
            self._live.values(), key=lambda e: (e.reader.meta.origin, e.reader.meta.id)
        )
        return CatalogSnapshot(self, entries)

    @property
    def blocks(self) -> list[BlockMeta]:
        """Live blocks, by min time then id."""
        return sorted(
            (e.reader.meta for e in self._live.values()), key=lambda m: (m.min_time, m.id)
        )

    async def prefetch(self, since_ms: int) -> int:
        """Load the series tables and footers of live blocks reaching `since_ms` or later,
        newest first, so the first queries over recent data fetch only their samples.
        Returns how many blocks were loaded."""
        entries = sorted(
            (e for e in self._live.values() if e.reader.meta.max_time >= since_ms),
            key=lambda e: -e.reader.meta.max_time,
        )
        cost = ReadCost()
        loaded = 0
        for entry in entries:
            reader = entry.reader
            if reader.id not in self._live or reader.loaded:
                continue
            await reader.series_table(cost)
            await reader.footer(cost)
            loaded += 1
        return loaded

    def reader(self, block_id: str) -> BlockReader | None:
        entry = self._live.get(block_id)
        return entry.reader if entry is not None else None

    @property
    def max_time(self) -> int | None:
        return max((e.reader.meta.max_time for e in self._live.values()), default=None)

    def __len__(self) -> int:
        return len(self._live)
