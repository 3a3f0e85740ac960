"""The catalog as a restarted service finds the bucket: what is live, what is not."""

from __future__ import annotations

import dataclasses

import numpy as np

from storage.blocks.cache import ChunkCache
from storage.blocks.meta import META_FILE, new_block_id
from storage.labels import Labels
from storage.objstore import MemoryStore
from storage.tiering.catalog import BlockCatalog
from tests.storage.blocks.helpers import batch_of, upload, write_block

T0 = 1_700_000_000_000


async def put_block(store, tmp_path, start, **meta):
    ts = start + np.arange(10, dtype=np.int64) * 1000
    written = write_block(
        tmp_path, [batch_of([(Labels.from_dict({"__name__": "m"}), ts, np.ones(10))])], **meta
    )
    await upload(store, tmp_path, written)
    return written


async def rewrite_meta(store, meta, **changes):
    meta = dataclasses.replace(meta, **changes)
    await store.put(meta.key(META_FILE), meta.to_json())
    return meta


async def test_sources_of_a_compacted_block_are_not_live(tmp_path):
    store = MemoryStore()
    a = await put_block(store, tmp_path, T0)
    b = await put_block(store, tmp_path, T0 + 60_000)
    c = await put_block(store, tmp_path, T0)
    c = await rewrite_meta(store, c, kind="compacted", sources=(a.id, b.id))
    catalog = BlockCatalog(store, ChunkCache(1 << 20))
    await catalog.load()
    assert [m.id for m in catalog.blocks] == [c.id]
    # The superseded ones are on their way out: deleted once no query holds them.
    assert {m.id for m in catalog.deletable()} == {a.id, b.id}


async def test_downsampled_copy_of_a_superseded_block_is_stale(tmp_path):
    store = MemoryStore()
    raw = await put_block(store, tmp_path, T0)
    down = await put_block(store, tmp_path, T0)
    down = await rewrite_meta(store, down, resolution_ms=300_000, sources=(raw.id,))
    newer = await put_block(store, tmp_path, T0)
    await rewrite_meta(store, newer, kind="compacted", sources=(raw.id,))
    catalog = BlockCatalog(store, ChunkCache(1 << 20))
    await catalog.load()
    assert [m.id for m in catalog.blocks] == [newer.id]
    assert {m.id for m in catalog.deletable()} == {raw.id, down.id}


async def test_a_block_without_meta_json_is_an_unfinished_upload(tmp_path):
    store = MemoryStore()
    done = await put_block(store, tmp_path, T0)
    half = await put_block(store, tmp_path, T0)
    await store.delete(half.key(META_FILE))
    await store.put(f"blocks/{new_block_id()}/{META_FILE}", b"{not json")
    catalog = BlockCatalog(store, ChunkCache(1 << 20))
    await catalog.load()
    assert [m.id for m in catalog.blocks] == [done.id]
    assert len(catalog.unreadable) == 1


async def test_a_query_snapshot_keeps_retired_blocks_until_released(tmp_path):
    store = MemoryStore()
    a = await put_block(store, tmp_path, T0)
    catalog = BlockCatalog(store, ChunkCache(1 << 20))
    await catalog.load()
    snapshot = catalog.snapshot()
    catalog.retire([a.id])
    assert catalog.blocks == []
    assert catalog.deletable() == []  # a query still reads it
    snapshot.release()
    assert [m.id for m in catalog.deletable()] == [a.id]
