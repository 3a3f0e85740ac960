"""Reading a block from the object store: only the row groups and columns a select needs.

A select first matches series in the block's series table (fetched once and
kept), which gives each matching series' exact row range in
`samples.parquet`. From the file's footer (also fetched once) those ranges
map to row groups, and the row groups to the byte ranges of just the wanted
column chunks. Chunks already in the shared `ChunkCache` cost nothing; the
others are fetched with as few ranged GETs as adjacent chunks allow (each
charged to the query's `ReadCost` before it is sent), then decoded by
pyarrow from those bytes alone (`_SparseFile`), in a worker thread. The
series' rows are cut out of the decoded row groups with numpy, trimmed to
the time range, and decimal-coded values turned back into float64.
"""

from __future__ import annotations

import asyncio
import io
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from storage.blocks import decimal
from storage.blocks.cache import ChunkCache, ReadCost
from storage.blocks.meta import SAMPLES_FILE, SERIES_FILE, BlockFormatError, BlockMeta
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
        order = np.argsort(table.label_rank[ids], kind="stable")
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


class BlockReader:
    """Reads one block through `store`, caching its series table and footer."""

    def __init__(self, store: ObjectStore, meta: BlockMeta, cache: ChunkCache) -> None:
        self.store = store
        self.meta = meta
        self.cache = cache
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
        sparse = _SparseFile(size, {size - len(tail): tail})
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
        if columns is None:
            columns = value_columns(self.meta.resolution_ms)
            if self.meta.resolution_ms:
                columns = ("count", *columns)
        wanted = ["timestamp"]
        for name in columns:
            wanted += [name, f"{name}_int"] if name != "count" else [name]
        lo = table.first_row[ids]
        counts = table.rows[ids]
        groups = _needed_groups(footer.rg_start, lo, counts)
        if not len(groups):
            return _empty(ids, columns)
        chunks = await self._fetch_chunks(footer, groups, wanted, cost)
        cost.blocks += 1
        decoded = await asyncio.to_thread(
            _decode, footer, groups, wanted, chunks, self.meta.file(SAMPLES_FILE).size
        )
        # Rows of the decoded groups, which sit back to back: where each series starts.
        sizes = np.diff(footer.rg_start)[groups]
        base = np.zeros(len(groups), dtype=np.int64)
        np.cumsum(sizes[:-1], out=base[1:])
        group_of = np.searchsorted(footer.rg_start, lo, side="right") - 1
        pos = base[np.searchsorted(groups, group_of)] + lo - footer.rg_start[group_of]
        return _cut(self.meta, table, ids, pos, counts, decoded, columns, start_ms, end_ms)

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


class _SparseFile(io.RawIOBase):
    """A read-only file of `size` bytes of which only some ranges are present.

    pyarrow reads exactly the column chunks the footer names; any read
    outside what was fetched is a bug, reported as such.
    """

    def __init__(self, size: int, pieces: dict[int, bytes]) -> None:
        super().__init__()
        self._size = size
        self._starts = sorted(pieces)
        self._pieces = pieces
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        i = bisect_right(self._starts, self._pos) - 1
        if i >= 0:
            start = self._starts[i]
            piece = self._pieces[start]
            at = self._pos - start
            if at + want <= len(piece):
                buffer[:want] = piece[at : at + want]
                self._pos += want
                return want
        raise BlockFormatError(f"parquet reader asked for bytes {self._pos}+{want} not fetched")


def _decode(
    footer: _Footer,
    groups: NDArray[np.int64],
    wanted: list[str],
    chunks: dict[int, bytes],
    size: int,
) -> dict[str, tuple[NDArray, NDArray[np.bool_] | None]]:
    """Decode the wanted columns of `groups` from fetched chunks: (values, valid or None)."""
    source = pq.ParquetFile(_SparseFile(size, chunks), metadata=footer.metadata, pre_buffer=False)
    table = source.read_row_groups(groups.tolist(), columns=wanted, use_threads=False)
    return {name: _numpy(table.column(name)) for name in wanted}


def _numpy(column: pa.ChunkedArray) -> tuple[NDArray, NDArray[np.bool_] | None]:
    """Values (nulls as zero) and validity (None if no nulls) of a numeric column."""
    arr = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_timestamp(arr.type):
        arr = arr.cast(pa.int64())
    if arr.null_count == 0:
        return arr.to_numpy(zero_copy_only=False), None
    if arr.null_count == len(arr):
        return np.zeros(len(arr), dtype=arr.type.to_pandas_dtype()), np.zeros(len(arr), bool)
    valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    return arr.fill_null(0).to_numpy(zero_copy_only=False), valid


def _cut(
    meta: BlockMeta,
    table: SeriesTable,
    ids: NDArray[np.int64],
    pos: NDArray[np.int64],
    counts: NDArray[np.int64],
    decoded: dict[str, tuple[NDArray, NDArray[np.bool_] | None]],
    columns: Sequence[str],
    start_ms: int,
    end_ms: int,
) -> BlockData:
    """The series' rows out of the decoded row groups, trimmed to [start_ms, end_ms]."""
    rows = ranges(pos, counts)
    ts_all = decoded["timestamp"][0]
    ts = ts_all[rows]
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if start_ms > meta.min_time or end_ms < meta.max_time:
        seg = np.repeat(np.arange(len(ids), dtype=np.int64), counts) << _TIME_BITS
        keys = seg + (ts - meta.min_time)
        top = (1 << _TIME_BITS) - 1
        lo_key = (np.arange(len(ids), dtype=np.int64) << _TIME_BITS) + min(
            max(start_ms - meta.min_time, 0), top
        )
        hi_key = (np.arange(len(ids), dtype=np.int64) << _TIME_BITS) + min(
            max(end_ms - meta.min_time + 1, 0), top
        )
        lo = np.searchsorted(keys, lo_key)
        hi = np.searchsorted(keys, hi_key)
        keep = ranges(lo, hi - lo)
        rows = rows[keep]
        ts = ts[keep]
        counts = hi - lo
        np.cumsum(counts, out=offsets[1:])
    out: dict[str, NDArray] = {}
    for name in columns:
        if name == "count":
            out[name] = decoded[name][0][rows]
            continue
        floats, _ = decoded[name]
        ints, is_int = decoded[f"{name}_int"]
        if is_int is None:  # every value of these rows is decimal-coded
            is_int = np.ones(len(ints), dtype=bool)
        row_scale = np.repeat(table.scales[name][ids], counts)
        out[name] = decimal.join(floats[rows], ints[rows], is_int[rows], row_scale)
    return BlockData(ids, offsets, ts, out)


def _empty(ids: NDArray[np.int64], columns: Sequence[str]) -> BlockData:
    cols: dict[str, NDArray] = {
        name: np.zeros(0, dtype=np.int64 if name == "count" else np.float64) for name in columns
    }
    return BlockData(ids, np.zeros(len(ids) + 1, dtype=np.int64), np.zeros(0, dtype=np.int64), cols)
