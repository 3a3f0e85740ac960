"""Building blocks for tests: series data -> a block written, uploaded and readable."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from storage.blocks.cache import ChunkCache
from storage.blocks.meta import META_FILE, BlockMeta, new_block_id
from storage.blocks.reader import BlockReader
from storage.blocks.writer import BlockWriter, SeriesBatch, series_sort_key
from storage.labels import Labels


def batch_of(series: list[tuple[Labels, np.ndarray, np.ndarray]]) -> SeriesBatch:
    """A sorted SeriesBatch from (labels, timestamps, values) in any order."""
    ordered = sorted(series, key=lambda s: series_sort_key(s[0]))
    counts = np.array([len(s[1]) for s in ordered], dtype=np.int64)
    offsets = np.zeros(len(ordered) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    ts = np.concatenate([np.asarray(s[1], dtype=np.int64) for s in ordered])
    vals = np.concatenate([np.asarray(s[2], dtype=np.float64) for s in ordered])
    return SeriesBatch([s[0] for s in ordered], offsets, ts, {"value": vals})


def write_block(directory: Path, batches: list[SeriesBatch], **meta_args) -> BlockMeta:
    block_id = new_block_id()
    writer = BlockWriter(directory / block_id)
    for b in batches:
        writer.add(b)
    meta = writer.finish(
        block_id=block_id,
        kind=meta_args.pop("kind", "cut"),
        range_start=meta_args.pop("range_start", 0),
        range_end=meta_args.pop("range_end", 1 << 62),
        **meta_args,
    )
    assert meta is not None
    return meta


async def upload(store, directory: Path, meta: BlockMeta) -> None:
    for f in meta.files:
        await store.put(meta.key(f.name), directory / meta.id / f.name)
    await store.put(meta.key(META_FILE), directory / meta.id / META_FILE)


def reader(store, meta: BlockMeta, cache_bytes: int = 64 << 20) -> BlockReader:
    return BlockReader(store, meta, ChunkCache(cache_bytes))
