"""A block's series table in memory: labels, row ranges, and matcher evaluation.

Loaded once per block (`BlockReader.series_table`) and kept while the block
is in use. Matchers are evaluated the way the head's index does, once per
distinct label value, never per series: each label name's values are kept as
(distinct values, per-series code), built the first time a matcher needs them.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray

from storage.blocks import decimal
from storage.blocks.schema import EXTRA_SERIES_COLUMNS, value_columns
from storage.labels import Labels, Matcher, MatchType


@dataclass(slots=True)
class SeriesTable:
    """One row per series, in block order (see `schema.py`)."""

    labels: list[Labels]
    first_row: NDArray[np.int64]
    rows: NDArray[np.int64]
    min_time: NDArray[np.int64]
    max_time: NDArray[np.int64]
    first_value: NDArray[np.float64]
    last_value: NDArray[np.float64]
    scales: dict[str, NDArray[np.int8]]
    label_rank: NDArray[np.int64]
    """Position of each series when sorted by labels (the SeriesSet order)."""
    extra: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    """Per-series columns of downsampled blocks (`counter_loss`)."""
    _columns: dict[str, tuple[list[str], NDArray[np.int32]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def from_parquet(cls, source: pa.NativeFile, resolution_ms: int) -> SeriesTable:
        table = pq.read_table(source, use_threads=False)
        label_map = table.column("labels").combine_chunks()
        labels = _labels(label_map)
        scales = {}
        for name in value_columns(resolution_ms):
            col = table.column(f"{name}_scale").combine_chunks()
            scales[name] = np.asarray(col.fill_null(decimal.FLOAT).to_numpy(), dtype=np.int8)
        order = sorted(range(len(labels)), key=labels.__getitem__)
        rank = np.empty(len(labels), dtype=np.int64)
        rank[np.asarray(order, dtype=np.int64)] = np.arange(len(labels))

        def ints(name: str) -> NDArray[np.int64]:
            return np.asarray(table.column(name).cast(pa.int64()).to_numpy(), dtype=np.int64)

        columns = _label_columns(label_map)
        return cls(
            labels=labels,
            first_row=ints("first_row"),
            rows=ints("rows"),
            min_time=ints("min_time"),
            max_time=ints("max_time"),
            first_value=table.column("first_value").to_numpy(),
            last_value=table.column("last_value").to_numpy(),
            scales=scales,
            label_rank=rank,
            extra={
                name: table.column(name).to_numpy()
                for name in EXTRA_SERIES_COLUMNS
                if name in table.column_names
            },
            _columns=columns,
        )

    def _column(self, name: str) -> tuple[list[str], NDArray[np.int32]]:
        """Distinct values of label `name` (sorted, "" for series without it) and codes."""
        hit = self._columns.get(name)
        if hit is None:  # no series has this label: every one reads as ""
            hit = self._columns[name] = ([""], np.zeros(len(self.labels), dtype=np.int32))
        return hit

    def select(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> NDArray[np.int64]:
        """Ids (ascending) of series matching all matchers with samples in [start, end]."""
        keep = (self.max_time >= start_ms) & (self.min_time <= end_ms)
        for m in matchers:
            if not keep.any():
                break
            uniq, codes = self._column(m.name)
            if m.type is MatchType.EQ:  # the values are sorted: one binary search
                ok = np.zeros(len(uniq), dtype=bool)
                i = bisect_left(uniq, m.value)
                if i < len(uniq) and uniq[i] == m.value:
                    ok[i] = True
            else:
                ok = np.fromiter((m.matches(v) for v in uniq), dtype=bool, count=len(uniq))
            keep &= ok[codes]
        return np.flatnonzero(keep).astype(np.int64)

    def label_names(self, ids: NDArray[np.int64]) -> set[str]:
        out: set[str] = set()
        for i in ids.tolist():
            out.update(self.labels[i].names())
        return out

    def label_values(self, name: str, ids: NDArray[np.int64]) -> set[str]:
        uniq, codes = self._column(name)
        present = np.unique(codes[ids]) if len(ids) else np.zeros(0, dtype=np.int32)
        return {uniq[c] for c in present.tolist() if uniq[c]}


def _label_columns(column: pa.MapArray) -> dict[str, tuple[list[str], NDArray[np.int32]]]:
    """Per label name: (sorted distinct values, "" for series without it; code per series).

    Built once when the table loads (in a worker thread), from the map column's
    flat key and value arrays hashed by Arrow, so that no select pays for it.
    """
    n = len(column)
    offsets = column.offsets.to_numpy()
    owner = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
    keys = pc.dictionary_encode(column.keys)
    items = pc.dictionary_encode(column.items)
    key_codes = keys.indices.to_numpy(zero_copy_only=False)
    item_codes = items.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    item_values = items.dictionary.to_pylist()
    out: dict[str, tuple[list[str], NDArray[np.int32]]] = {}
    order = np.argsort(key_codes, kind="stable")
    bounds = np.searchsorted(key_codes[order], np.arange(len(keys.dictionary) + 1))
    for k, name in enumerate(keys.dictionary.to_pylist()):
        pairs = order[bounds[k] : bounds[k + 1]]
        present = np.unique(item_codes[pairs])
        values = sorted({item_values[c] for c in present.tolist()} | {""})
        rank = {v: i for i, v in enumerate(values)}
        remap = np.array([rank[item_values[c]] for c in present.tolist()], dtype=np.int32)
        codes = np.full(n, rank[""], dtype=np.int32)
        codes[owner[pairs]] = remap[np.searchsorted(present, item_codes[pairs])]
        out[name] = (values, codes)
    return out


def _labels(column: pa.MapArray) -> list[Labels]:
    """Label sets of a map column, built from its flat key/item arrays (one pass)."""
    offsets = column.offsets.to_numpy().tolist()
    keys = column.keys.to_pylist()
    items = column.items.to_pylist()
    pairs = list(zip(keys, items, strict=True))
    return [Labels.from_sorted(pairs[a:b]) for a, b in itertools.pairwise(offsets)]
