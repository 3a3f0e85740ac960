"""One SeriesSet out of several over overlapping data: union by labels, one sample per timestamp.

Used where one logical store answers from several physical ones: the head
and the blocks below it, or blocks whose time ranges overlap (a late block
beside the block of its range, a block cut again after a restart). Sets are
given in priority order: at a timestamp held by several, the earliest set's
sample wins (the one written first, as on ingest).

The common case costs one gather: per series, the pieces from the sets are
ordered by their first timestamp, and when no piece starts before the
previous one of its series ends, the pieces are simply laid end to end.
Only series whose pieces do overlap go through a sort and a de-duplication.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from storage.annotations import Annotations
from storage.csr import ranges
from storage.histset import merge_histogram_sets
from storage.interfaces import SeriesSet
from storage.labels import Labels

_TIME_BITS = 40


def combine(sets: Sequence[SeriesSet]) -> SeriesSet:
    """The union of `sets` (each sorted by labels), earlier sets winning equal timestamps.

    Native histogram samples (`SeriesSet.histograms`) merge the same way.
    """
    out = _combine_floats(sets)
    out.histograms = merge_histogram_sets([s.histograms for s in sets])
    return out


def _combine_floats(sets: Sequence[SeriesSet]) -> SeriesSet:
    """The union of `sets` (each sorted by labels), earlier sets winning equal timestamps."""
    warnings = Annotations()
    for s in sets:
        warnings.merge(s.warnings)
    present = [s for s in sets if len(s)]
    if not present:
        return SeriesSet.empty(warnings)
    if len(present) == 1:
        only = present[0]
        return SeriesSet(only.labels, only.offsets, only.timestamps, only.values, warnings)
    labels = sorted(set().union(*(s.labels for s in present)))
    index = {lbl: i for i, lbl in enumerate(labels)}
    groups, prios, los, counts, firsts, lasts = [], [], [], [], [], []
    for prio, s in enumerate(present):
        n = np.diff(s.offsets)
        has = n > 0
        lo = s.offsets[:-1][has]
        hi = s.offsets[1:][has] - 1
        groups.append(np.fromiter(map(index.__getitem__, s.labels), np.int64, len(s.labels))[has])
        prios.append(np.full(int(has.sum()), prio, dtype=np.int64))
        los.append(lo + sum(len(p.timestamps) for p in present[:prio]))
        counts.append(n[has])
        firsts.append(s.timestamps[lo])
        lasts.append(s.timestamps[hi])
    group, prio_, lo, count = map(np.concatenate, (groups, prios, los, counts))
    first, last = np.concatenate(firsts), np.concatenate(lasts)
    order = np.lexsort((prio_, first, group))
    group, prio_, lo, count, first, last = (
        a[order] for a in (group, prio_, lo, count, first, last)
    )
    all_ts = np.concatenate([s.timestamps for s in present])
    all_values = np.concatenate([s.values for s in present])
    rows = ranges(lo, count)
    ts, values = all_ts[rows], all_values[rows]
    messy = _overlapping_groups(group, first, last, len(labels))
    if messy is None:
        sizes = np.bincount(group, weights=count, minlength=len(labels)).astype(np.int64)
        return SeriesSet(labels, _offsets(sizes), ts, values, warnings)
    row_group = np.repeat(group, count)
    row_prio = np.repeat(prio_, count)
    bad = messy[row_group]
    sub = np.flatnonzero(bad)
    order = np.lexsort((row_prio[sub], ts[sub], row_group[sub]))
    sub = sub[order]
    dup = (row_group[sub][1:] == row_group[sub][:-1]) & (ts[sub][1:] == ts[sub][:-1])
    sub = sub[np.concatenate(([True], ~dup))]
    keep = np.concatenate((np.flatnonzero(~bad), sub))
    final = keep[np.argsort(row_group[keep], kind="stable")]
    sizes = np.bincount(row_group[final], minlength=len(labels)).astype(np.int64)
    return SeriesSet(labels, _offsets(sizes), ts[final], values[final], warnings)


def _overlapping_groups(
    group: NDArray[np.int64], first: NDArray[np.int64], last: NDArray[np.int64], n_groups: int
) -> NDArray[np.bool_] | None:
    """Groups with a piece starting at or before the end of an earlier piece (None if none).

    Pieces are sorted by (group, first). A running maximum of `last` within each
    group comes from one accumulate over `group << 40 | last` (times relative
    to the smallest, so they fit the low bits).
    """
    if len(group) < 2:
        return None
    base = int(min(first.min(), last.min()))
    key = (group << _TIME_BITS) | (last - base)
    reach = np.maximum.accumulate(key)
    prev_reach = reach[:-1]
    same = group[1:] == group[:-1]
    overlap = same & ((group[1:] << _TIME_BITS) | (first[1:] - base) <= prev_reach)
    if not overlap.any():
        return None
    messy = np.zeros(n_groups, dtype=bool)
    messy[group[1:][overlap]] = True
    return messy


def _offsets(sizes: NDArray[np.int64]) -> NDArray[np.int64]:
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return offsets


def labels_union(lists: Sequence[Sequence[Labels]]) -> list[Labels]:
    """Sorted distinct label sets of several sorted lists."""
    return sorted(set().union(*lists))
