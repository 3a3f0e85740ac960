"""Native histogram samples of a select: a CSR set beside the float one.

A `SeriesSet` carries its float samples in flat columns; the native histogram
samples of the same select ride along as a `HistogramSet` with its own label
list (a series may have floats, histograms or both; the consumer joins the two
by labels). Samples are one `remote_write.histograms.HistogramBatch`, whose
`series_idx` is the position of the series in `labels`; series `i` owns rows
`offsets[i]:offsets[i+1]`, sorted by time, one per timestamp.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from remote_write.histograms import HistogramBatch
from storage.labels import Labels


@dataclass(slots=True)
class HistogramSet:
    """Histogram samples per series, sorted by labels; see the module docstring."""

    labels: list[Labels]
    offsets: NDArray[np.int64]
    samples: HistogramBatch

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_samples(self) -> int:
        return len(self.samples)

    @classmethod
    def build(
        cls, labels: Sequence[Labels], samples: HistogramBatch, *, first_wins: bool = True
    ) -> HistogramSet:
        """A set from samples whose `series_idx` points into `labels` (any order,
        duplicates allowed): series sorted by labels (equal labels merged),
        samples by time, one per timestamp (the earliest row wins)."""
        uniq = sorted(set(labels))
        pos = {lbl: i for i, lbl in enumerate(uniq)}
        remap = np.fromiter(map(pos.__getitem__, labels), dtype=np.int64, count=len(labels))
        if not len(samples):
            return cls(uniq, np.zeros(len(uniq) + 1, dtype=np.int64), samples)
        group = remap[samples.series_idx]
        order = np.lexsort((np.arange(len(group)), samples.timestamps, group))
        g, t = group[order], samples.timestamps[order]
        keep = np.ones(len(order), dtype=bool)
        keep[1:] = (g[1:] != g[:-1]) | (t[1:] != t[:-1])
        rows = order[keep]
        taken = samples.take(rows).with_series_idx(group[rows].astype(np.int32))
        counts = np.bincount(group[rows], minlength=len(uniq))
        used = np.flatnonzero(counts)
        if len(used) < len(uniq):  # drop series without samples, renumber
            renum = np.full(len(uniq), -1, dtype=np.int64)
            renum[used] = np.arange(len(used))
            taken = taken.with_series_idx(renum[taken.series_idx].astype(np.int32))
            uniq = [uniq[i] for i in used.tolist()]
            counts = counts[used]
        offsets = np.zeros(len(uniq) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return cls(uniq, offsets, taken)


def merge_histogram_sets(sets: Sequence[HistogramSet | None]) -> HistogramSet | None:
    """One set from several (earlier sets win equal timestamps); None if all are empty."""
    present = [s for s in sets if s is not None and s.num_samples]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    labels: list[Labels] = []
    parts = []
    for s in present:
        parts.append(
            s.samples.with_series_idx((s.samples.series_idx + len(labels)).astype(np.int32))
        )
        labels.extend(s.labels)
    return HistogramSet.build(labels, HistogramBatch.concat(parts))
