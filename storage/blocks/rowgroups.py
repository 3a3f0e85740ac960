"""Row groups decoded into numpy, and the rows of selected series gathered from them.

A decoded row group is its timestamps and its value columns as float64, the
decimal-coded values already turned back into floats (`decimal.join`), so
queries that hit it again do nothing but gather rows: the block cache keeps
decoded groups as well as the compressed chunks they came from.

Gathering follows the series order of the file: selected series that sit
next to each other (all series of one metric do, by the sort order) are
read as one run, so a typical select copies a few contiguous slices.
"""

from __future__ import annotations

import io
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from storage.blocks import decimal
from storage.blocks.meta import BlockFormatError
from storage.blocks.schema import samples_schema, samples_writer_options
from storage.csr import ranges

MANY_PIECES = 256
"""Past this many slices, gather with one index per row group instead of slice by slice."""


@dataclass(frozen=True, slots=True)
class DecodedGroup:
    """One row group: first row in the file, timestamps, and value columns."""

    start: int
    timestamps: NDArray[np.int64]
    columns: dict[str, NDArray]

    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def nbytes(self) -> int:
        return int(self.timestamps.nbytes + sum(c.nbytes for c in self.columns.values()))


class SparseFile(io.RawIOBase):
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


def decode_groups(
    metadata: pq.FileMetaData,
    size: int,
    chunks: dict[int, bytes],
    groups: Sequence[int],
    rg_start: NDArray[np.int64],
    columns: Sequence[str],
    first_row: NDArray[np.int64],
    scales: dict[str, NDArray[np.int8]],
) -> list[DecodedGroup]:
    """Decode `groups` from fetched chunks (runs in a worker thread).

    The chunks are laid at their offsets in a zeroed buffer the size of the
    file: pages never written are never touched (the allocation maps zero
    pages lazily), and pyarrow reads it as memory, several times faster than
    through a Python file object.
    """
    wanted = ["timestamp"]
    for name in columns:
        wanted += [name] if name == "count" else [name, f"{name}_int"]
    image = np.zeros(size, dtype=np.uint8)
    for offset, data in chunks.items():
        image[offset : offset + len(data)] = np.frombuffer(data, dtype=np.uint8)
    source = pq.ParquetFile(pa.BufferReader(pa.py_buffer(image)), metadata=metadata)
    out = []
    for g in groups:
        table = source.read_row_group(g, columns=wanted, use_threads=False)
        lo, hi = int(rg_start[g]), int(rg_start[g + 1])
        series, counts = _series_in(first_row, lo, hi)
        cols: dict[str, NDArray] = {}
        for name in columns:
            if name == "count":
                cols[name] = _values(table.column(name))[0]
                continue
            floats, _ = _values(table.column(name))
            ints, is_int = _values(table.column(f"{name}_int"))
            cols[name] = _join(floats, ints, is_int, scales[name][series], counts)
        ts = _values(table.column("timestamp"))[0]
        out.append(DecodedGroup(lo, ts, cols))
    return out


def _series_in(
    first_row: NDArray[np.int64], lo: int, hi: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The series with rows in [lo, hi) and how many of their rows fall inside."""
    s0 = int(np.searchsorted(first_row, lo, side="right")) - 1
    s1 = int(np.searchsorted(first_row, hi - 1, side="right")) - 1
    series = np.arange(s0, s1 + 1, dtype=np.int64)
    starts = np.clip(first_row[s0 : s1 + 1], lo, hi)
    ends = np.append(starts[1:], hi)
    return series, ends - starts


def _values(column: pa.ChunkedArray) -> tuple[NDArray, NDArray[np.bool_] | None]:
    """Values and validity (None if no nulls) of an int64/float64/timestamp column.

    The values are a view of the decoded buffer; what null slots hold is
    unspecified, and callers only read slots their validity marks.
    """
    arr = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    dtype = np.float64 if pa.types.is_floating(arr.type) else np.int64
    data = np.frombuffer(arr.buffers()[1], dtype=dtype, count=arr.offset + len(arr))
    data = data[arr.offset :]
    if arr.null_count == 0:
        return data, None
    bits = np.frombuffer(arr.buffers()[0], dtype=np.uint8)
    valid = np.unpackbits(bits, bitorder="little", count=arr.offset + len(arr))[arr.offset :]
    return data, valid.view(bool)


def _join(
    floats: NDArray[np.float64],
    ints: NDArray,
    is_int: NDArray[np.bool_] | None,
    series_scale: NDArray[np.int8],
    counts: NDArray[np.int64],
) -> NDArray[np.float64]:
    """Float64 values of a row group: `floats` where set, else ints / 10**scale."""
    if is_int is not None and not is_int.any():
        return floats
    used = series_scale[counts > 0]
    scale = int(used[0]) if len(used) and (used == used[0]).all() else None
    if scale == decimal.FLOAT:
        return floats if is_int is None else np.where(is_int, 0.0, floats)
    out = ints.astype(np.float64)
    if scale is None:  # several scales in this group: one divisor per row
        out /= decimal.POW10[np.repeat(series_scale.clip(0), counts)]
    elif scale:
        out /= decimal.POW10[scale]
    if is_int is not None:
        np.copyto(out, floats, where=~is_int)
    return out


def gather(
    groups: Sequence[DecodedGroup],
    lo: NDArray[np.int64],
    counts: NDArray[np.int64],
    columns: Sequence[str],
) -> tuple[NDArray[np.int64], dict[str, NDArray]]:
    """Rows [lo[i], lo[i] + counts[i]) (file rows, ascending) from decoded groups."""
    has = counts > 0
    lo, counts = lo[has], counts[has]
    if not len(lo):
        return np.zeros(0, dtype=np.int64), {c: np.zeros(0) for c in columns}
    # Runs of adjacent series, then cut at group boundaries.
    breaks = np.flatnonzero(lo[1:] != lo[:-1] + counts[:-1]) + 1
    run_lo = lo[np.concatenate(([0], breaks))]
    ends = lo + counts
    run_hi = ends[np.concatenate((breaks - 1, [len(lo) - 1]))]
    starts = np.array([g.start for g in groups], dtype=np.int64)
    pieces: list[tuple[int, int, int]] = []
    for a, b in zip(run_lo.tolist(), run_hi.tolist(), strict=True):
        g = int(np.searchsorted(starts, a, side="right")) - 1
        while a < b:
            group = groups[g]
            stop = min(b, group.start + len(group))
            pieces.append((g, a - group.start, stop - group.start))
            a = stop
            g += 1
    if len(pieces) <= MANY_PIECES:
        ts = _concat([groups[g].timestamps[x:y] for g, x, y in pieces])
        cols = {c: _concat([groups[g].columns[c][x:y] for g, x, y in pieces]) for c in columns}
        return ts, cols
    by_group: dict[int, tuple[list[int], list[int]]] = {}
    for g, x, y in pieces:
        xs, ns = by_group.setdefault(g, ([], []))
        xs.append(x)
        ns.append(y - x)
    takes = [
        (g, ranges(np.asarray(xs, dtype=np.int64), np.asarray(ns, dtype=np.int64)))
        for g, (xs, ns) in by_group.items()
    ]
    ts = _concat([groups[g].timestamps[idx] for g, idx in takes])
    cols = {c: _concat([groups[g].columns[c][idx] for g, idx in takes]) for c in columns}
    return ts, cols


def _concat(parts: list[NDArray]) -> NDArray:
    """One array of the parts; a single part is returned as is (a view of the cached
    group: SeriesSet arrays are read-only to their consumers)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def warm_decoders() -> None:
    """Write and decode a tiny block file in memory, so the first query in a fresh
    process does not pay for the codecs' and allocators' first use (tens of ms)."""
    n = 1024
    ints = np.arange(n, dtype=np.int64)
    table = pa.table(
        {
            "metric": pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), ["warm"]),
            "cluster": pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), [""]),
            "series_id": pa.array(np.zeros(n, np.int32)),
            "timestamp": pa.array(ints, pa.timestamp("ms", tz="UTC")),
            "value": pa.array(ints * 0.5, mask=ints % 2 == 0),
            "value_int": pa.array(ints, mask=ints % 2 == 1),
        },
        schema=samples_schema(0),
    )
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, table.schema, **samples_writer_options(0)) as writer:
        writer.write_table(table)
    data = sink.getvalue()
    read = pq.ParquetFile(pa.BufferReader(data)).read_row_group(0, use_threads=False)
    for name in ("timestamp", "value", "value_int"):
        _values(read.column(name))
