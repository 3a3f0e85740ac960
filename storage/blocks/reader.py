"""Reading a block from the object store: only the row groups and columns a select needs.

A select first matches series in the block's series table (fetched once and
kept), which gives each matching series' exact row range in
`samples.parquet`. From the file's footer (also fetched once) those ranges
map to row groups, and the row groups to the byte ranges of their column
chunks. Row groups already decoded in the cache cost nothing; for the others,
chunks already fetched are taken from the cache, and the rest are fetched
with as few ranged GETs as adjacent chunks allow (each charged to the
query's `ReadCost` before it is sent), then decoded by pyarrow from those
bytes alone (`rowgroups.SparseFile`), in a worker thread. The series' rows
are gathered from the decoded groups and trimmed to the time range.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from storage.blocks.cache import ChunkCache, ReadCost
from storage.blocks.meta import SAMPLES_FILE, SERIES_FILE, BlockFormatError, BlockMeta
from storage.blocks.rowgroups import DecodedGroup, SparseFile, decode_groups, gather
from storage.blocks.schema import value_columns
from storage.blocks.table import SeriesTable
from storage.csr import ranges
from storage.interfaces import SeriesSet
from storage.objstore.base import ObjectStore

FOOTER_GUESS = 64 << 10
"""Bytes read from the end of a file to find its footer (one request for most files)."""
COALESCE_GAP = 256 << 10
"""Chunks closer than this are fetched in one request (the gap is read and dropped)."""
MAX_REQUEST = 16 << 20
"""Longer ranges are split, so they download in parallel."""
FETCH_CONCURRENCY = 8
TRIM_ONE_BY_ONE = 2000
"""Up to this many series are trimmed to the time range one by one (two searches each)."""
_TIME_BITS = 40


@dataclass(slots=True)
class BlockData:
    """Samples of some series of one block, CSR by series (ids ascending)."""

    ids: NDArray[np.int64]
    offsets: NDArray[np.int64]
    timestamps: NDArray[np.int64]
    columns: dict[str, NDArray]
    """`value` (raw) or `count` and the aggregates (downsampled)."""

    def series_set(self, table: SeriesTable, values: NDArray[np.float64]) -> SeriesSet:
        """These samples (with `values`) as a SeriesSet: label order, empty series left out."""
        counts = np.diff(self.offsets)
        has = counts > 0
        ids = self.ids[has]
        rank = table.label_rank[ids]
        if has.all() and (len(rank) < 2 or bool((rank[1:] > rank[:-1]).all())):
            # Block order is label order here (the usual case within one metric).
            labels = [table.labels[i] for i in ids.tolist()]
            return SeriesSet(labels, self.offsets, self.timestamps, values)
        order = np.argsort(rank, kind="stable")
        sizes = counts[has][order]
        rows = ranges(self.offsets[:-1][has][order], sizes)
        offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        labels = [table.labels[i] for i in ids[order].tolist()]
        return SeriesSet(labels, offsets, self.timestamps[rows], values[rows])


@dataclass(slots=True)
class _Footer:
    metadata: pq.FileMetaData
    rg_start: NDArray[np.int64]
    """First row of each row group, plus the row count at the end."""
    columns: dict[str, int]
    chunk_offset: NDArray[np.int64]
    """[row group, column] -> byte offset of the column chunk."""
    chunk_length: NDArray[np.int64]


class LoadedTables:
    """Keeps at most `limit` readers' series tables and footers, least recently used
    unloaded first (they are fetched again when needed); on the event loop only."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._readers: OrderedDict[int, BlockReader] = OrderedDict()

    def touch(self, reader: BlockReader) -> None:
        key = id(reader)
        if key in self._readers:
            self._readers.move_to_end(key)
            return
        self._readers[key] = reader
        while len(self._readers) > self.limit:
            _, old = self._readers.popitem(last=False)
            old.unload()

    def forget(self, reader: BlockReader) -> None:
        self._readers.pop(id(reader), None)


class BlockReader:
    """Reads one block through `store`, caching its series table and footer."""

    def __init__(
        self,
        store: ObjectStore,
        meta: BlockMeta,
        cache: ChunkCache,
        decoded: ChunkCache | None = None,
    ) -> None:
        self.store = store
        self.meta = meta
        self.cache = cache
        self.decoded = decoded if decoded is not None else ChunkCache(0)
        self.loaded_tables: LoadedTables | None = None
        """Bounds how many readers keep their series table (shared by a catalog)."""
        self._table: SeriesTable | None = None
        self._footer: _Footer | None = None
        self._lock = asyncio.Lock()

    @property
    def id(self) -> str:
        return self.meta.id

    @property
    def loaded(self) -> bool:
        return self._table is not None

    def unload(self) -> None:
        """Forget the series table and footer (they are fetched again when needed)."""
        self._table = None
        self._footer = None

    async def series_table(self, cost: ReadCost) -> SeriesTable:
        if self.loaded_tables is not None:
            self.loaded_tables.touch(self)
        if self._table is None:
            async with self._lock:
                if self._table is None:
                    raw = await self._get_whole(SERIES_FILE, cost)
                    self._table = await asyncio.to_thread(
                        SeriesTable.from_parquet, pa.BufferReader(raw), self.meta.resolution_ms
                    )
        return self._table

    async def _get_whole(self, name: str, cost: ReadCost) -> bytes:
        key = (self.meta.id, name, -1)
        data = self.cache.get(key)
        if data is not None:
            cost.cached_bytes += len(data)
            return data
        size = self.meta.file(name).size
        cost.reserve(1, size)
        data = await self.store.get(self.meta.key(name))
        if len(data) != size:
            raise BlockFormatError(
                f"block {self.meta.id}: {name} has {len(data)} bytes, meta.json says {size}"
            )
        self.cache.put(key, data)
        return data

    async def footer(self, cost: ReadCost) -> _Footer:
        if self._footer is None:
            async with self._lock:
                if self._footer is None:
                    self._footer = await self._load_footer(cost)
        return self._footer

    async def _load_footer(self, cost: ReadCost) -> _Footer:
        size = self.meta.file(SAMPLES_FILE).size
        key = self.meta.key(SAMPLES_FILE)
        tail_len = min(size, FOOTER_GUESS)
        cost.reserve(1, tail_len)
        tail = await self.store.get_range(key, size - tail_len, tail_len)
        if len(tail) < 8 or tail[-4:] != b"PAR1":
            raise BlockFormatError(f"block {self.meta.id}: {SAMPLES_FILE} is not a Parquet file")
        footer_len = int.from_bytes(tail[-8:-4], "little") + 8
        if footer_len > len(tail):
            cost.reserve(1, footer_len - len(tail))
            head = await self.store.get_range(key, size - footer_len, footer_len - len(tail))
            tail = head + tail
        sparse = SparseFile(size, {size - len(tail): tail})
        metadata = pq.ParquetFile(sparse).metadata
        n_groups = metadata.num_row_groups
        names = [metadata.schema.column(i).path for i in range(metadata.num_columns)]
        offset = np.zeros((n_groups, len(names)), dtype=np.int64)
        length = np.zeros((n_groups, len(names)), dtype=np.int64)
        rg_start = np.zeros(n_groups + 1, dtype=np.int64)
        for g in range(n_groups):
            rg = metadata.row_group(g)
            rg_start[g + 1] = rg_start[g] + rg.num_rows
            for c in range(len(names)):
                col = rg.column(c)
                first = col.dictionary_page_offset
                offset[g, c] = first if first is not None and first > 0 else col.data_page_offset
                length[g, c] = col.total_compressed_size
        return _Footer(metadata, rg_start, {n: i for i, n in enumerate(names)}, offset, length)

    async def read(
        self,
        ids: NDArray[np.int64],
        start_ms: int,
        end_ms: int,
        cost: ReadCost,
        columns: Sequence[str] | None = None,
    ) -> BlockData:
        """Samples in [start_ms, end_ms] of the series `ids` (ascending) of this block."""
        table = await self.series_table(cost)
        footer = await self.footer(cost)
        stored = value_columns(self.meta.resolution_ms)
        if self.meta.resolution_ms:
            stored = ("count", *stored)
        columns = stored if columns is None else tuple(columns)
        lo = table.first_row[ids]
        counts = table.rows[ids]
        needed = _needed_groups(footer.rg_start, lo, counts)
        if not len(needed):
            return _empty(ids, columns)
        cost.blocks += 1
        groups = await self._groups(table, footer, needed, stored, cost)
        ts, cols = gather(groups, lo, counts, columns)
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        if start_ms > self.meta.min_time or end_ms < self.meta.max_time:
            ts, cols, offsets = _trim(ts, cols, offsets, self.meta.min_time, start_ms, end_ms)
        return BlockData(ids, offsets, ts, cols)

    async def _groups(
        self,
        table: SeriesTable,
        footer: _Footer,
        needed: NDArray[np.int64],
        stored: Sequence[str],
        cost: ReadCost,
    ) -> list[DecodedGroup]:
        """The decoded row groups `needed`: from the cache, else fetched and decoded."""
        found: dict[int, DecodedGroup] = {}
        missing = []
        for g in needed.tolist():
            group = self.decoded.get((self.meta.id, "group", g))
            if group is None:
                missing.append(g)
            else:
                found[g] = group
                cost.cached_bytes += int(footer.chunk_length[g].sum())
        if missing:
            wanted = ["timestamp"]
            for name in stored:
                wanted += [name] if name == "count" else [name, f"{name}_int"]
            chunks = await self._fetch_chunks(footer, np.asarray(missing), wanted, cost)
            decoded = await asyncio.to_thread(
                decode_groups,
                footer.metadata,
                self.meta.file(SAMPLES_FILE).size,
                chunks,
                missing,
                footer.rg_start,
                stored,
                table.first_row,
                table.scales,
            )
            for g, group in zip(missing, decoded, strict=True):
                found[g] = group
                self.decoded.put((self.meta.id, "group", g), group, group.nbytes)
        return [found[g] for g in needed.tolist()]

    async def _fetch_chunks(
        self, footer: _Footer, groups: NDArray[np.int64], wanted: list[str], cost: ReadCost
    ) -> dict[int, bytes]:
        cols = np.array([footer.columns[name] for name in wanted], dtype=np.int64)
        offsets = footer.chunk_offset[np.ix_(groups, cols)].ravel()
        lengths = footer.chunk_length[np.ix_(groups, cols)].ravel()
        got: dict[int, bytes] = {}
        missing: list[tuple[int, int]] = []
        for off, n in zip(offsets.tolist(), lengths.tolist(), strict=True):
            data = self.cache.get((self.meta.id, SAMPLES_FILE, off))
            if data is None:
                missing.append((off, n))
            else:
                got[off] = data
                cost.cached_bytes += n
        if not missing:
            return got
        spans = _coalesce(sorted(missing))
        cost.reserve(len(spans), sum(b - a for a, b, _ in spans))
        key = self.meta.key(SAMPLES_FILE)
        gate = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def fetch(a: int, b: int) -> bytes:
            async with gate:
                data = await self.store.get_range(key, a, b - a)
            if len(data) != b - a:
                raise BlockFormatError(
                    f"block {self.meta.id}: {SAMPLES_FILE} is shorter than its footer says"
                )
            return data

        bodies = await asyncio.gather(*(fetch(a, b) for a, b, _ in spans))
        for (a, _, members), body in zip(spans, bodies, strict=True):
            for off, n in members:
                data = body[off - a : off - a + n]
                got[off] = data
                self.cache.put((self.meta.id, SAMPLES_FILE, off), data)
        return got


def _needed_groups(
    rg_start: NDArray[np.int64], lo: NDArray[np.int64], counts: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Row groups holding any of the row ranges [lo, lo + counts)."""
    has = counts > 0
    if not has.any():
        return np.zeros(0, dtype=np.int64)
    first = np.searchsorted(rg_start, lo[has], side="right") - 1
    last = np.searchsorted(rg_start, lo[has] + counts[has] - 1, side="right") - 1
    mark = np.zeros(len(rg_start), dtype=np.int64)
    np.add.at(mark, first, 1)
    np.add.at(mark, last + 1, -1)
    return np.flatnonzero(np.cumsum(mark)[:-1] > 0).astype(np.int64)


def _coalesce(chunks: list[tuple[int, int]]) -> list[tuple[int, int, list[tuple[int, int]]]]:
    """Sorted (offset, length) chunks as request spans [a, b) with their members."""
    spans: list[tuple[int, int, list[tuple[int, int]]]] = []
    for off, n in chunks:
        if spans and off - spans[-1][1] <= COALESCE_GAP and off + n - spans[-1][0] <= MAX_REQUEST:
            a, b, members = spans[-1]
            members.append((off, n))
            spans[-1] = (a, max(b, off + n), members)
        else:
            spans.append((off, off + n, [(off, n)]))
    return spans


def _trim(
    ts: NDArray[np.int64],
    cols: dict[str, NDArray],
    offsets: NDArray[np.int64],
    base: int,
    start_ms: int,
    end_ms: int,
) -> tuple[NDArray[np.int64], dict[str, NDArray], NDArray[np.int64]]:
    """Keep each series' samples in [start_ms, end_ms].

    Only series with a sample outside are searched: one by one when few (the
    usual case: the query starts a little after the block), else with two
    searches over one sorted key for all of them.
    """
    n = len(offsets) - 1
    counts = np.diff(offsets)
    has = counts > 0
    first = np.where(has, ts[np.minimum(offsets[:-1], len(ts) - 1)], start_ms)
    last = np.where(has, ts[np.maximum(offsets[1:] - 1, 0)], end_ms)
    need = has & ((first < start_ms) | (last > end_ms))
    if not need.any():
        return ts, cols, offsets
    lo = offsets[:-1].copy()
    hi = offsets[1:].copy()
    which = np.flatnonzero(need)
    if len(which) <= TRIM_ONE_BY_ONE:
        for i in which.tolist():
            a, b = int(offsets[i]), int(offsets[i + 1])
            piece = ts[a:b]
            lo[i] = a + int(np.searchsorted(piece, start_ms, side="left"))
            hi[i] = a + int(np.searchsorted(piece, end_ms, side="right"))
    else:
        seg = np.arange(n, dtype=np.int64) << _TIME_BITS
        keys = np.repeat(seg, counts) + (ts - base)
        top = (1 << _TIME_BITS) - 1
        lo = np.searchsorted(keys, seg + min(max(start_ms - base, 0), top))
        hi = np.searchsorted(keys, seg + min(max(end_ms - base + 1, 0), top))
    new_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(hi - lo, out=new_offsets[1:])
    dropped = len(ts) - int(new_offsets[-1])
    if dropped * 8 < len(ts):
        # Few samples go (a head or tail per series): mark them, compress once.
        keep = np.ones(len(ts), dtype=bool)
        keep[ranges(offsets[:-1], lo - offsets[:-1])] = False
        keep[ranges(hi, offsets[1:] - hi)] = False
        return ts[keep], {c: v[keep] for c, v in cols.items()}, new_offsets
    rows = ranges(lo, hi - lo)
    return ts[rows], {c: v[rows] for c, v in cols.items()}, new_offsets


def _empty(ids: NDArray[np.int64], columns: Sequence[str]) -> BlockData:
    cols: dict[str, NDArray] = {
        name: np.zeros(0, dtype=np.int64 if name == "count" else np.float64) for name in columns
    }
    return BlockData(ids, np.zeros(len(ids) + 1, dtype=np.int64), np.zeros(0, dtype=np.int64), cols)
