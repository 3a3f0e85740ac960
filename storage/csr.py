"""Ragged rows in two numpy arrays: `values[offsets[k]:offsets[k+1]]` is row k.

The write path keeps the label pair ids of many series this way (one flat
column plus offsets), so that whole requests are reordered, filtered and
edited with numpy instead of a Python list per series; merges, dedup and
block reads use the same helpers for the samples of many series.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

_EMPTY = np.zeros(0, dtype=np.int64)


def ranges(starts: NDArray[np.int64], sizes: NDArray[np.int64]) -> NDArray[np.int64]:
    """Positions `starts[k] + j` for `j < sizes[k]`, for every k in order."""
    total = int(sizes.sum())
    if not total:
        return _EMPTY
    ends = np.cumsum(sizes)
    return np.repeat(starts - (ends - sizes), sizes) + np.arange(total)


def offsets_of(sizes: NDArray[np.int64]) -> NDArray[np.int64]:
    """Offsets of rows with these sizes (one more entry than rows)."""
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return offsets


def take_rows(
    values: NDArray[np.int64], offsets: NDArray[np.int64], which: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Rows `which` (any order, repeats allowed), as new values and offsets."""
    sizes = offsets[1:][which] - offsets[:-1][which]
    return values[ranges(offsets[:-1][which], sizes)], offsets_of(sizes)


def replace_rows(
    values: NDArray[np.int64], offsets: NDArray[np.int64], new: Mapping[int, NDArray[np.int64]]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The rows with row k replaced by `new[k]` for each k in `new`."""
    sizes = np.diff(offsets)
    kept = np.ones(len(sizes), dtype=bool)
    which = np.fromiter(new, dtype=np.int64, count=len(new))
    kept[which] = False
    new_sizes = sizes.copy()
    new_sizes[which] = [len(row) for row in new.values()]
    new_offsets = offsets_of(new_sizes)
    out = np.empty(int(new_offsets[-1]), dtype=values.dtype)
    out[ranges(new_offsets[:-1][kept], sizes[kept])] = values[
        ranges(offsets[:-1][kept], sizes[kept])
    ]
    for k, row in new.items():
        out[new_offsets[k] : new_offsets[k + 1]] = row
    return out, new_offsets


def insert_into_rows(
    values: NDArray[np.int64],
    offsets: NDArray[np.int64],
    rows: NDArray[np.int64],
    at: NDArray[np.int64],
    value: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """`value` inserted into each row `rows[k]` (distinct, ascending) before its
    element `at[k]` (`at[k]` may be the row's length: appended)."""
    out = np.insert(values, offsets[:-1][rows] + at, value)
    grown = np.zeros(len(offsets) - 1, dtype=np.int64)
    grown[rows] = 1
    return out, offsets + np.concatenate(([0], np.cumsum(grown)))
