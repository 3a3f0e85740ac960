"""Writing a block: series in label order, in batches, into local Parquet files.

`BlockWriter` takes series batches (already sorted, later batches after
earlier ones; `series_sort_key` gives the order) and streams their samples
into `samples.parquet` in row groups of about `ROW_GROUP_ROWS`, so a block
of any size is written in bounded memory. `finish` writes the series table,
hashes the files and writes `meta.json` last. It is synchronous and CPU
bound: callers run it in a worker thread (numpy and Parquet release the GIL).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from storage.blocks import decimal
from storage.blocks.meta import (
    META_FILE,
    SAMPLES_FILE,
    SERIES_FILE,
    BlockFile,
    BlockMeta,
)
from storage.blocks.schema import (
    ROW_GROUP_ROWS,
    samples_schema,
    samples_writer_options,
    series_schema,
    series_writer_options,
    value_columns,
)
from storage.labels import CLUSTER_LABEL, METRIC_NAME, Labels


def series_sort_key(labels: Labels) -> tuple[str, str, Labels]:
    """Block order of series: metric name, then cluster, then all labels."""
    return (labels.get(METRIC_NAME), labels.get(CLUSTER_LABEL), labels)


@dataclass(slots=True)
class SeriesBatch:
    """Consecutive series of a block: labels and CSR samples (`offsets` into the columns).

    `columns` holds `value` for a raw block, or `count` and the aggregates for a
    downsampled one. `first_value` / `last_value` (per series) default to the
    first and last `value`.
    """

    labels: Sequence[Labels]
    offsets: NDArray[np.int64]
    timestamps: NDArray[np.int64]
    columns: dict[str, NDArray]
    first_value: NDArray[np.float64] | None = None
    last_value: NDArray[np.float64] | None = None
    extra: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    """Per-series columns of a downsampled block (`schema.EXTRA_SERIES_COLUMNS`)."""


@dataclass(slots=True)
class _SeriesRows:
    labels: list[Labels] = field(default_factory=list)
    min_time: list[NDArray[np.int64]] = field(default_factory=list)
    max_time: list[NDArray[np.int64]] = field(default_factory=list)
    rows: list[NDArray[np.int64]] = field(default_factory=list)
    first_value: list[NDArray[np.float64]] = field(default_factory=list)
    last_value: list[NDArray[np.float64]] = field(default_factory=list)
    scales: dict[str, list[NDArray[np.int8]]] = field(default_factory=dict)
    extra: dict[str, list[NDArray[np.float64]]] = field(default_factory=dict)


class BlockWriter:
    """Writes one block into `directory` (created; removed again by `abort`)."""

    def __init__(self, directory: Path, *, resolution_ms: int = 0) -> None:
        self.directory = Path(directory)
        self.resolution_ms = resolution_ms
        self.directory.mkdir(parents=True, exist_ok=True)
        self._schema = samples_schema(resolution_ms)
        self._writer = pq.ParquetWriter(
            self.directory / SAMPLES_FILE, self._schema, **samples_writer_options(resolution_ms)
        )
        self._series = _SeriesRows()
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._rows = 0
        self._last_key: tuple[str, str, Labels] | None = None

    @property
    def num_series(self) -> int:
        return len(self._series.labels)

    def add(self, batch: SeriesBatch) -> None:
        """Append series (in block order, after those added before) with their samples."""
        counts = np.diff(batch.offsets)
        keep = counts > 0
        if not keep.all():
            batch = _drop_empty(batch, keep)
            counts = counts[keep]
        if not len(counts):
            return
        keys = [series_sort_key(lbl) for lbl in batch.labels]
        if (self._last_key is not None and keys[0] <= self._last_key) or any(
            a >= b for a, b in itertools.pairwise(keys)
        ):
            raise ValueError("series must be added in block order (series_sort_key), once each")
        self._last_key = keys[-1]
        first = self.num_series
        ts = batch.timestamps
        starts, ends = batch.offsets[:-1], batch.offsets[1:] - 1
        rec = self._series
        rec.labels.extend(batch.labels)
        rec.min_time.append(ts[starts])
        rec.max_time.append(ts[ends])
        rec.rows.append(counts)
        values = batch.columns.get("value")
        firsts = batch.first_value if batch.first_value is not None else values[starts]  # type: ignore[index]
        lasts = batch.last_value if batch.last_value is not None else values[ends]  # type: ignore[index]
        rec.first_value.append(np.asarray(firsts, dtype=np.float64))
        rec.last_value.append(np.asarray(lasts, dtype=np.float64))
        for name, column in batch.extra.items():
            rec.extra.setdefault(name, []).append(np.asarray(column, dtype=np.float64))
        n_series = len(counts)
        metric_codes, metrics = _codes([k[0] for k in keys])
        cluster_codes, clusters = _codes([k[1] for k in keys])
        arrays: dict[str, pa.Array] = {
            "metric": pa.DictionaryArray.from_arrays(
                np.repeat(metric_codes, counts), pa.array(metrics, pa.string())
            ),
            "cluster": pa.DictionaryArray.from_arrays(
                np.repeat(cluster_codes, counts), pa.array(clusters, pa.string())
            ),
            "series_id": pa.array(
                np.repeat(np.arange(first, first + n_series, dtype=np.int32), counts)
            ),
            "timestamp": pa.array(ts, pa.timestamp("ms", tz="UTC")),
        }
        if self.resolution_ms:
            arrays["count"] = pa.array(np.asarray(batch.columns["count"], dtype=np.int64))
        for name in value_columns(self.resolution_ms):
            column = np.ascontiguousarray(batch.columns[name], dtype=np.float64)
            scales = decimal.choose_scales(column, batch.offsets)
            ints, is_int = decimal.split(column, batch.offsets, scales)
            arrays[name] = pa.array(column, mask=is_int)
            arrays[f"{name}_int"] = pa.array(ints, mask=~is_int)
            rec.scales.setdefault(name, []).append(scales)
        table = pa.Table.from_arrays([arrays[f.name] for f in self._schema], schema=self._schema)
        self._pending.append(table)
        self._pending_rows += len(ts)
        self._rows += len(ts)
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        table = pa.concat_tables(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self._pending = []
        self._pending_rows = 0

    def finish(
        self,
        *,
        block_id: str,
        kind: str,
        range_start: int,
        range_end: int,
        sources: tuple[str, ...] = (),
        origin: str = "",
    ) -> BlockMeta | None:
        """Close the files and write `meta.json`; None (and nothing left) if no sample came."""
        self._flush()
        self._writer.close()
        if not self._rows:
            self.abort()
            return None
        rec = self._series
        min_time = np.concatenate(rec.min_time)
        max_time = np.concatenate(rec.max_time)
        self._write_series_table(min_time, max_time)
        files = tuple(
            BlockFile(name, (self.directory / name).stat().st_size, _sha256(self.directory / name))
            for name in (SAMPLES_FILE, SERIES_FILE)
        )
        clusters = sorted({lbl.get(CLUSTER_LABEL) for lbl in rec.labels})
        meta = BlockMeta(
            id=block_id,
            min_time=int(min_time.min()),
            max_time=int(max_time.max()),
            series=len(rec.labels),
            samples=self._rows,
            clusters=tuple(clusters),
            resolution_ms=self.resolution_ms,
            kind=kind,
            range_start=range_start,
            range_end=range_end,
            sources=sources,
            origin=origin or block_id,
            files=files,
        )
        _write_synced(self.directory / META_FILE, meta.to_json())
        _fsync_dir(self.directory)
        return meta

    def _write_series_table(self, min_time: NDArray, max_time: NDArray) -> None:
        rec = self._series
        n = len(rec.labels)
        rows = np.concatenate(rec.rows)
        first_row = np.zeros(n, dtype=np.int64)
        np.cumsum(rows[:-1], out=first_row[1:])
        schema = series_schema(self.resolution_ms)
        columns: dict[str, pa.Array] = {
            "series_id": pa.array(np.arange(n, dtype=np.int32)),
            "metric": pa.array([lbl.get(METRIC_NAME) for lbl in rec.labels], pa.string()),
            "cluster": pa.array([lbl.get(CLUSTER_LABEL) for lbl in rec.labels], pa.string()),
            "labels": pa.array(
                [list(lbl) for lbl in rec.labels], pa.map_(pa.string(), pa.string())
            ),
            "min_time": pa.array(min_time, pa.timestamp("ms", tz="UTC")),
            "max_time": pa.array(max_time, pa.timestamp("ms", tz="UTC")),
            "first_row": pa.array(first_row),
            "rows": pa.array(rows),
            "first_value": pa.array(np.concatenate(rec.first_value)),
            "last_value": pa.array(np.concatenate(rec.last_value)),
        }
        for name in value_columns(self.resolution_ms):
            scales = np.concatenate(rec.scales[name])
            columns[f"{name}_scale"] = pa.array(scales, mask=scales == decimal.FLOAT)
        for name, parts in rec.extra.items():
            columns[name] = pa.array(np.concatenate(parts))
        table = pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)
        pq.write_table(table, self.directory / SERIES_FILE, **series_writer_options())
        for name in (SAMPLES_FILE, SERIES_FILE):
            _fsync(self.directory / name)

    def abort(self) -> None:
        """Drop everything written (an error, or an empty block)."""
        try:
            self._writer.close()
        except Exception:
            pass
        shutil.rmtree(self.directory, ignore_errors=True)


def _drop_empty(batch: SeriesBatch, keep: NDArray[np.bool_]) -> SeriesBatch:
    labels = [lbl for lbl, k in zip(batch.labels, keep.tolist(), strict=True) if k]
    counts = np.diff(batch.offsets)[keep]
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return SeriesBatch(
        labels,
        offsets,
        batch.timestamps,
        batch.columns,
        None if batch.first_value is None else batch.first_value[keep],
        None if batch.last_value is None else batch.last_value[keep],
        {name: column[keep] for name, column in batch.extra.items()},
    )


def _codes(names: list[str]) -> tuple[NDArray[np.int32], list[str]]:
    uniq: dict[str, int] = {}
    codes = np.fromiter((uniq.setdefault(n, len(uniq)) for n in names), np.int32, len(names))
    return codes, list(uniq)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    _fsync(tmp)
    os.replace(tmp, path)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
