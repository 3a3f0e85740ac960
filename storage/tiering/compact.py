"""Compaction, downsampling and retention of the blocks in the object store.

- Compaction: once a whole compaction range (a UTC day by default) is closed,
  its blocks (the cuts of the range, late blocks, an earlier compacted block)
  are merged into one, so the store ends up with one block per day and
  reads touch few files. Samples at the same timestamp in two blocks are
  kept once (the block written first wins), so the result has no gap and no
  double. The new block names its sources, which makes them superseded.
- Downsampling: a compacted block older than a resolution's age gets a copy
  at that resolution (see `storage.blocks.downsample`).
- Retention: blocks whose newest sample is older than the retention
  (counted back from the newest sample held) are deleted whole.

Merging and downsampling stream series in batches of about a few row groups
through the same reader queries use, so memory stays bounded by the batch,
not by the block.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from storage.blocks.cache import ReadCost
from storage.blocks.downsample import downsample
from storage.blocks.meta import RAW, BlockMeta, new_block_id
from storage.blocks.reader import BlockReader
from storage.blocks.schema import ROW_GROUP_ROWS
from storage.blocks.writer import BlockWriter, SeriesBatch, series_sort_key
from storage.combine import combine
from storage.csr import ranges
from storage.labels import Labels
from storage.objstore.base import ObjectStore
from storage.options import TieringOptions
from storage.tiering.catalog import BlockCatalog
from storage.tiering.status import TieringStats
from storage.tiering.upload import delete_block, upload_block

log = logging.getLogger(__name__)

BATCH_ROWS = 4 * ROW_GROUP_ROWS
ALL_TIME = (-(1 << 62), 1 << 62)


def plan_compactions(
    blocks: Sequence[BlockMeta], boundary_ms: int, range_ms: int
) -> list[tuple[int, list[BlockMeta]]]:
    """(range start, raw blocks) of closed ranges whose blocks should be merged into one."""
    by_range: dict[int, list[BlockMeta]] = {}
    for meta in blocks:
        if meta.resolution_ms != RAW:
            continue
        start = meta.range_start // range_ms * range_ms
        by_range.setdefault(start, []).append(meta)
    plans = []
    for start, metas in sorted(by_range.items()):
        if start + range_ms > boundary_ms:
            continue  # still being cut
        whole = (
            len(metas) == 1
            and metas[0].range_start == start
            and metas[0].range_end == start + range_ms
        )
        if not whole:
            plans.append((start, metas))
    return plans


def plan_downsamples(
    blocks: Sequence[BlockMeta], newest_ms: int, after: Sequence[tuple[int, int]], range_ms: int
) -> list[tuple[BlockMeta, int]]:
    """(raw block, resolution) pairs still missing a downsampled copy."""
    have = {(m.sources[0], m.resolution_ms) for m in blocks if m.resolution_ms and m.sources}
    out = []
    for meta in blocks:
        if meta.resolution_ms != RAW or meta.range_end - meta.range_start != range_ms:
            continue
        for resolution, age in after:
            if meta.max_time < newest_ms - age and (meta.id, resolution) not in have:
                out.append((meta, resolution))
    return out


def plan_retention(
    blocks: Sequence[BlockMeta], newest_ms: int, retention_ms: int
) -> list[BlockMeta]:
    """Blocks entirely older than the retention boundary."""
    return [m for m in blocks if m.max_time < newest_ms - retention_ms]


async def compact(
    sources: Sequence[BlockReader], directory: Path, range_start: int, range_end: int
) -> BlockMeta | None:
    """Merge `sources` (in write order) into one block under `directory/<id>`."""
    cost = ReadCost()
    tables = [await r.series_table(cost) for r in sources]
    union = sorted({lbl for t in tables for lbl in t.labels}, key=series_sort_key)
    position = {lbl: i for i, lbl in enumerate(union)}
    mapped = [
        np.fromiter(map(position.__getitem__, t.labels), np.int64, len(t.labels)) for t in tables
    ]
    rows = np.zeros(len(union), dtype=np.int64)
    for t, pos in zip(tables, mapped, strict=True):
        np.add.at(rows, pos, t.rows)
    block_id = new_block_id()
    writer = BlockWriter(directory / block_id)
    try:
        for a, b in _batches(rows, BATCH_ROWS):
            sets = []
            for reader, table, pos in zip(sources, tables, mapped, strict=True):
                ids = np.flatnonzero((pos >= a) & (pos < b)).astype(np.int64)
                if len(ids):
                    data = await reader.read(ids, *ALL_TIME, cost)
                    sets.append(data.series_set(table, data.columns["value"]))
            merged = combine(sets)
            batch = _block_order(merged.labels, merged.offsets, merged.timestamps, merged.values)
            await asyncio.to_thread(writer.add, batch)
        return await asyncio.to_thread(
            writer.finish,
            block_id=block_id,
            kind="compacted",
            range_start=range_start,
            range_end=range_end,
            sources=tuple(r.meta.id for r in sources),
            origin=min(r.meta.origin or r.meta.id for r in sources),
        )
    except BaseException:
        writer.abort()
        raise


async def downsample_block(
    source: BlockReader, resolution_ms: int, directory: Path
) -> BlockMeta | None:
    """A copy of a raw block at `resolution_ms` under `directory/<id>`."""
    cost = ReadCost()
    table = await source.series_table(cost)
    block_id = new_block_id()
    writer = BlockWriter(directory / block_id, resolution_ms=resolution_ms)
    try:
        for a, b in _batches(table.rows, BATCH_ROWS):
            ids = np.arange(a, b, dtype=np.int64)
            data = await source.read(ids, *ALL_TIME, cost)
            labels = [table.labels[i] for i in ids.tolist()]
            batch = await asyncio.to_thread(
                downsample,
                labels,
                data.offsets,
                data.timestamps,
                data.columns["value"],
                resolution_ms,
            )
            await asyncio.to_thread(writer.add, batch)
        meta = source.meta
        return await asyncio.to_thread(
            writer.finish,
            block_id=block_id,
            kind="downsampled",
            range_start=meta.range_start,
            range_end=meta.range_end,
            sources=(meta.id,),
            origin=meta.origin,
        )
    except BaseException:
        writer.abort()
        raise


def _block_order(
    labels: list[Labels], offsets: np.ndarray, ts: np.ndarray, values: np.ndarray
) -> SeriesBatch:
    """A label-ordered set as a batch in block order."""
    order = sorted(range(len(labels)), key=lambda i: series_sort_key(labels[i]))
    perm = np.asarray(order, dtype=np.int64)
    counts = np.diff(offsets)[perm]
    rows = ranges(offsets[:-1][perm], counts)
    new_offsets = np.zeros(len(perm) + 1, dtype=np.int64)
    np.cumsum(counts, out=new_offsets[1:])
    return SeriesBatch([labels[i] for i in order], new_offsets, ts[rows], {"value": values[rows]})


def _batches(rows: np.ndarray, per_batch: int) -> list[tuple[int, int]]:
    """Series index ranges [a, b) of about `per_batch` rows each."""
    n = len(rows)
    if not n:
        return []
    ends = np.cumsum(rows)
    cuts = np.searchsorted(ends, np.arange(per_batch, int(ends[-1]), per_batch), side="left") + 1
    bounds = sorted({0, n, *cuts.clip(0, n).tolist()})
    return [(a, b) for a, b in itertools.pairwise(bounds) if a < b]


class Compactor:
    """Runs the rounds: compaction, downsampling, retention, deletion of what left."""

    def __init__(
        self,
        store: ObjectStore,
        catalog: BlockCatalog,
        options: TieringOptions,
        work_dir: Path,
        stats: TieringStats,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.options = options
        self.work_dir = work_dir
        self.stats = stats

    async def run(self, boundary_ms: int, newest_ms: int) -> None:
        """One round over the catalog; ranges ending by `boundary_ms` are closed."""
        opts = self.options
        catalog = self.catalog
        for start, metas in plan_compactions(catalog.blocks, boundary_ms, opts.compaction_range_ms):
            readers = [r for m in metas if (r := catalog.reader(m.id)) is not None]
            readers.sort(key=lambda r: (r.meta.origin, r.meta.id))
            meta = await compact(readers, self.work_dir, start, start + opts.compaction_range_ms)
            if meta is not None:
                await self.publish(meta)
                self.stats.compactions += 1
            else:
                catalog.retire(m.id for m in metas)
        for source, resolution in plan_downsamples(
            catalog.blocks, newest_ms, opts.downsample_after_ms, opts.compaction_range_ms
        ):
            reader = catalog.reader(source.id)
            if reader is None:
                continue
            meta = await downsample_block(reader, resolution, self.work_dir)
            if meta is not None:
                await self.publish(meta)
                self.stats.downsamples += 1
        doomed = plan_retention(catalog.blocks, newest_ms, opts.object_store_retention_ms)
        if doomed:
            log.info("blocks past retention", extra={"blocks": [m.id for m in doomed]})
            catalog.retire(m.id for m in doomed)
        for meta in catalog.deletable():
            await delete_block(self.store, meta)
            catalog.forget(meta.id)
            self.stats.blocks_deleted += 1

    async def publish(self, meta: BlockMeta) -> None:
        """Upload a block made here (retrying with backoff) and add it to the catalog."""
        directory = self.work_dir / meta.id
        try:
            delay = self.options.upload_retry_ms[0] / 1000
            attempt = 0
            while True:
                attempt += 1
                try:
                    await upload_block(self.store, directory, meta)
                    break
                except Exception as exc:
                    self.stats.upload_failures += 1
                    log.warning(
                        "block upload failed",
                        extra={"block": meta.id, "attempt": attempt, "error": str(exc)},
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.options.upload_retry_ms[1] / 1000)
            self.catalog.add(meta)
            self.stats.blocks_uploaded += 1
            self.stats.bytes_uploaded += meta.size
            log.info(
                "block published",
                extra={"block": meta.id, "kind": meta.kind, "sources": list(meta.sources)},
            )
        finally:
            await asyncio.to_thread(shutil.rmtree, directory, True)
