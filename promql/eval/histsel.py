"""Selected native histograms joined into the float sample stream.

A select returns float samples and histogram samples as two CSR sets (see
`storage.histset`). The selectors work on one flat, time-sorted stream per
series, so `unify` lays both into one: histogram samples take a NaN float
value (the stale NaN for a stale histogram, so staleness works unchanged)
and `href[k]` names the histogram row of sample `k` (-1 for floats). All of
it is numpy over the flat columns; Python touches series labels only.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from promql.value import HistCells
from remote_write.histograms import HistogramBatch
from storage.interfaces import SeriesSet

STALE_NAN_BITS = np.uint64(0x7FF0000000000002)


def unify(ss: SeriesSet) -> tuple[SeriesSet, NDArray[np.int64] | None, HistogramBatch | None]:
    """One time-sorted stream per series of floats and histograms; see the module docstring.

    At a timestamp held by both a float and a histogram, the histogram wins.
    """
    hs = ss.histograms
    if hs is None or not hs.num_samples:
        return ss, None, None
    labels = sorted(set(ss.labels) | set(hs.labels))
    pos = {lbl: i for i, lbl in enumerate(labels)}
    fg = np.fromiter(map(pos.__getitem__, ss.labels), np.int64, len(ss.labels))
    hg = np.fromiter(map(pos.__getitem__, hs.labels), np.int64, len(hs.labels))
    table = hs.samples
    nf, nh = len(ss.timestamps), len(table)
    grp = np.concatenate((np.repeat(fg, np.diff(ss.offsets)), np.repeat(hg, np.diff(hs.offsets))))
    ts = np.concatenate((ss.timestamps, table.timestamps))
    hist_vals = np.full(nh, np.nan)
    stale = table.sum.view(np.uint64) == STALE_NAN_BITS
    hist_vals[stale] = table.sum[stale]
    vals = np.concatenate((ss.values, hist_vals))
    href = np.concatenate((np.full(nf, -1, dtype=np.int64), np.arange(nh, dtype=np.int64)))
    kind = np.concatenate((np.ones(nf, dtype=np.int8), np.zeros(nh, dtype=np.int8)))
    order = np.lexsort((kind, ts, grp))
    grp, ts, vals, href = grp[order], ts[order], vals[order], href[order]
    keep = np.ones(len(ts), dtype=bool)
    keep[1:] = (grp[1:] != grp[:-1]) | (ts[1:] != ts[:-1])
    if not keep.all():
        grp, ts, vals, href = grp[keep], ts[keep], vals[keep], href[keep]
    offsets = np.zeros(len(labels) + 1, dtype=np.int64)
    np.cumsum(np.bincount(grp, minlength=len(labels)), out=offsets[1:])
    return SeriesSet(labels, offsets, ts, vals, ss.warnings), href, table


def cells(href: NDArray[np.int64], index: NDArray[np.int64], valid: NDArray[np.bool_],
          table: HistogramBatch) -> HistCells:  # fmt: skip
    """Histogram cells of a vector whose cell (i, j) took flat sample `index[i, j]`."""
    return HistCells(np.where(valid, href[index], -1), table)
