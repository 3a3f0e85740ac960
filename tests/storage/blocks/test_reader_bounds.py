"""The block reader's memory bounds: series tables of at most N blocks stay loaded."""

from __future__ import annotations

import numpy as np

from storage.blocks.cache import ChunkCache, ReadCost
from storage.blocks.reader import BlockReader, LoadedTables
from storage.labels import Labels
from storage.objstore import MemoryStore
from tests.storage.blocks.helpers import batch_of, upload, write_block


async def test_least_recently_used_series_tables_are_unloaded(tmp_path):
    store = MemoryStore()
    limit = LoadedTables(2)
    readers = []
    for k in range(3):
        ts = np.arange(10, dtype=np.int64) * 1000 + k * 100_000
        meta = write_block(
            tmp_path, [batch_of([(Labels.from_dict({"__name__": "m"}), ts, ts * 1.0)])]
        )
        await upload(store, tmp_path, meta)
        reader = BlockReader(store, meta, ChunkCache(1 << 20))
        reader.loaded_tables = limit
        readers.append(reader)
    cost = ReadCost()
    for reader in readers:
        await reader.series_table(cost)
    assert [r.loaded for r in readers] == [False, True, True]
    await readers[1].series_table(cost)  # used again: now the most recent
    await readers[0].series_table(cost)
    assert [r.loaded for r in readers] == [True, True, False]
    # An unloaded table is fetched again when needed, and answers the same.
    data = await readers[2].read(np.array([0]), 0, 10**9, cost)
    assert data.timestamps.tolist() == (np.arange(10) * 1000 + 200_000).tolist()


async def test_reads_within_a_cached_group_cost_nothing(tmp_path):
    store = MemoryStore()
    ts = np.arange(100, dtype=np.int64) * 1000
    meta = write_block(tmp_path, [batch_of([(Labels.from_dict({"__name__": "m"}), ts, ts * 0.5)])])
    await upload(store, tmp_path, meta)
    reader = BlockReader(store, meta, ChunkCache(1 << 20), ChunkCache(1 << 20))
    cold = ReadCost()
    await reader.read(np.array([0]), 0, 10**9, cold)
    assert cold.requests == 3  # series table, footer, the chunks of one row group
    warm = ReadCost()
    data = await reader.read(np.array([0]), 10_000, 20_000, warm)
    assert (warm.requests, warm.bytes) == (0, 0)
    assert warm.cached_bytes > 0
    assert data.timestamps.tolist() == list(range(10_000, 20_001, 1000))
