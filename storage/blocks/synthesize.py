"""Samples stood in by downsampled windows, per the aggregate `resolution` chose.

Each window of a downsampled block holds count, sum, min, max and a counter
value with resets removed, stamped with the time of the window's last raw
sample. The counter is stored shifted so that each block's last window
equals the series' last raw value in that block: raw samples after the block
continue it without a jump. Across several downsampled blocks the earlier
ones are shifted down by the resets the later ones removed
(`counter_loss`), so the whole stretch is one reset-free counter that ends
on the raw value (what `rate` and `increase` need).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from storage.blocks.reader import BlockData
from storage.blocks.table import SeriesTable
from storage.interfaces import SeriesSet
from storage.labels import Labels


def series_from_aggregates(aggregate: str, table: SeriesTable, data: BlockData) -> NDArray:
    """Per-row values standing in for raw samples (see the module docstring)."""
    cols = data.columns
    if aggregate == "avg":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(cols["sum"], dtype=np.float64) / cols["count"]
    return np.asarray(cols[aggregate], dtype=np.float64)


def chain_counters(pieces: list[tuple[SeriesSet, dict[Labels, float]]]) -> None:
    """Shift counter pieces (in time order, each with its series' losses) into one counter.

    The last piece stays as it is (it ends on the raw value); each earlier
    piece of a series is lowered by the losses of all later pieces of that
    series. Values are shifted in place, one add per series.
    """
    owed: dict[Labels, float] = {}
    for ss, losses in reversed(pieces):
        shift = np.fromiter((owed.get(lbl, 0.0) for lbl in ss.labels), np.float64, len(ss.labels))
        if shift.any():
            ss.values = ss.values + np.repeat(shift, np.diff(ss.offsets))
        for lbl, s in zip(ss.labels, shift.tolist(), strict=True):
            owed[lbl] = s - losses.get(lbl, 0.0)
