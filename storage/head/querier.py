"""Reads from the head: select series by matchers, label names and values.

A select resolves matchers in the index, orders the series by labels (a
Python sort over the matched series, never over samples), then for every part
overlapping the range finds each series' rows with two `searchsorted` calls
over the part's keys and gathers them with one fancy index. Rows of the active
buffer are sorted into temporary parts first. Parts of a partition are in seal
order, so each series' slices concatenate in time order; only parts that took
out-of-order samples make the result go through an order check (and a sort of
just the series that need it).

Label names and values come from series with samples overlapping the
querier's time range, judged by each series' oldest and newest timestamps.

Threads: the index (matchers, label order, label sets) is read on the event
loop only, because reading it may fold postings and re-rank series. Everything
after that reads parts, which are immutable, so a select of many series finds
its row ranges and gathers its samples in a worker thread (numpy releases the
GIL there), and the event loop keeps answering probes and writes meanwhile.
Before gathering, the select counts its rows and asks `hints.memory` for the
bytes the answer will take, so a query past its memory budget fails before
allocating.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from storage.errors import SampleLimitExceeded
from storage.head.head import Head
from storage.head.parts import REL_MASK, Part
from storage.histset import HistogramSet
from storage.interfaces import LabelResult, MemoryBudget, SelectHints, SeriesSet
from storage.labels import Labels, Matcher

OFFLOAD_SERIES = 2_000
"""Selects of more series than this gather their samples in a worker thread."""
SAMPLE_BYTES = 24
"""Memory per gathered sample: int64 timestamp and float64 value out, int64 index in."""


class HeadQuerier:
    """A Querier over the head for [start_ms, end_ms]; reads see the head as it is."""

    def __init__(self, head: Head, start_ms: int, end_ms: int) -> None:
        self._head = head
        self.start_ms = start_ms
        self.end_ms = end_ms

    async def select(
        self,
        matchers: Sequence[Matcher],
        start_ms: int,
        end_ms: int,
        *,
        hints: SelectHints | None = None,
    ) -> SeriesSet:
        limit = hints.sample_limit if hints is not None else None
        memory = hints.memory if hints is not None else None
        hist = select_histograms(self._head, matchers, start_ms, end_ms)
        plan = plan_select(self._head, matchers, start_ms, end_ms)
        if plan is None:
            out = SeriesSet.empty()
        elif len(plan.sids) > OFFLOAD_SERIES:
            out = await asyncio.to_thread(gather, plan, sample_limit=limit, memory=memory)
        else:
            out = gather(plan, sample_limit=limit, memory=memory)
        out.histograms = hist
        return out

    async def label_names(
        self, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        sids = self._series(matchers)
        names = self._head.index.label_names(sids)
        return LabelResult(names[:limit] if limit else names)

    async def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        sids = self._series(matchers)
        values = self._head.index.label_values(name, sids)
        return LabelResult(values[:limit] if limit else values)

    def _series(self, matchers: Sequence[Matcher]) -> NDArray[np.int64] | None:
        """Matching series with samples in the querier's range; None means all series."""
        head = self._head
        first = head.start_time()
        covers_all = first is not None and self.start_ms <= first and head.max_time <= self.end_ms
        if not matchers and covers_all:
            return None
        sids = head.index.select(matchers)
        if covers_all:
            return sids
        return sids[in_time_range(head, sids, self.start_ms, self.end_ms)]


def in_time_range(
    head: Head, sids: NDArray[np.int64], start_ms: int, end_ms: int
) -> NDArray[np.bool_]:
    """Whether each series' [oldest, newest] sample times overlap [start_ms, end_ms]."""
    return (head.max_ts[sids] >= start_ms) & (head.min_ts[sids] <= end_ms)


class SelectPlan:
    """What a select reads, resolved on the event loop: series in label order, their
    labels, and the parts to gather from (immutable, so safe to read in a thread)."""

    __slots__ = ("end_ms", "labels", "sids", "sources", "start_ms")

    def __init__(
        self,
        sids: NDArray[np.int64],
        labels: list[Labels],
        sources: list[Part],
        start_ms: int,
        end_ms: int,
    ) -> None:
        self.sids = sids
        self.labels = labels
        self.sources = sources
        self.start_ms = start_ms
        self.end_ms = end_ms


def plan_select(
    head: Head, matchers: Sequence[Matcher], start_ms: int, end_ms: int
) -> SelectPlan | None:
    """Resolve a select in the index (event loop only); None when nothing can match."""
    if start_ms > end_ms:
        return None
    sids = head.index.select(matchers)
    if len(sids):
        sids = sids[in_time_range(head, sids, start_ms, end_ms)]
    if not len(sids):
        return None
    sources = head.partitions.overlapping(start_ms, end_ms)
    sources += _buffer_parts(head, sids, start_ms, end_ms)
    if not sources:
        return None
    # Stable: within a partition, sealed parts (seal order) come before buffered rows.
    sources.sort(key=_base)
    sids = head.index.sort_by_labels(sids)
    labels = head.index.labels_of(sids.tolist())
    return SelectPlan(sids, labels, sources, start_ms, end_ms)


def gather(
    plan: SelectPlan, *, sample_limit: int | None = None, memory: MemoryBudget | None = None
) -> SeriesSet:
    """The planned series with their samples in [start_ms, end_ms] (any thread).

    Raises `SampleLimitExceeded` past `sample_limit` samples, and whatever
    `memory.reserve` raises, both counted from the row ranges before any
    sample is gathered.
    """
    sids, sources = plan.sids, plan.sources
    # Row ranges per source, in label order of the series.
    ranges = [part.ranges(sids, plan.start_ms, plan.end_ms) for part in sources]
    los = np.stack([lo for lo, _ in ranges])
    counts = np.stack([hi for _, hi in ranges]) - los
    total = int(counts.sum())
    if sample_limit is not None and total > sample_limit:
        raise SampleLimitExceeded(total, sample_limit)
    if memory is not None:
        memory.reserve(total * SAMPLE_BYTES)
    labels = plan.labels
    present = counts.any(axis=0)
    if not present.all():
        keep = np.flatnonzero(present)
        if not len(keep):
            return SeriesSet.empty()
        los, counts = los[:, keep], counts[:, keep]
        labels = [labels[i] for i in keep.tolist()]
    totals = counts.sum(axis=0)
    offsets = np.zeros(len(labels) + 1, dtype=np.int64)
    np.cumsum(totals, out=offsets[1:])
    ts, values = _assemble(sources, los, counts, offsets)
    return SeriesSet(labels, offsets, ts, values)


def select(
    head: Head,
    matchers: Sequence[Matcher],
    start_ms: int,
    end_ms: int,
    *,
    sample_limit: int | None = None,
) -> SeriesSet:
    """The head's series matching `matchers`, with their samples in [start_ms, end_ms].

    Plans and gathers in the calling thread (the event loop's, for the index).
    Raises `SampleLimitExceeded` past `sample_limit` samples, counted from the
    row ranges before any sample is gathered.
    """
    hist = select_histograms(head, matchers, start_ms, end_ms)
    plan = plan_select(head, matchers, start_ms, end_ms)
    out = SeriesSet.empty() if plan is None else gather(plan, sample_limit=sample_limit)
    out.histograms = hist
    return out


def select_histograms(
    head: Head, matchers: Sequence[Matcher], start_ms: int, end_ms: int
) -> HistogramSet | None:
    """The native histogram samples of the matching series in [start_ms, end_ms]
    (event loop: reads the index); None when there are none."""
    store = head.histograms
    if not len(store) or start_ms > end_ms:
        return None
    sids = head.index.select(matchers)
    if len(sids):
        sids = sids[in_time_range(head, sids, start_ms, end_ms)]
    if not len(sids):
        return None
    rows = store.select(np.sort(sids), start_ms, end_ms)
    if not len(rows):
        return None
    used = np.unique(rows.series_idx).astype(np.int64)
    labels = head.index.labels_of(used.tolist())
    local = np.searchsorted(used, rows.series_idx).astype(np.int32)
    return HistogramSet.build(labels, rows.with_series_idx(local))


def _assemble(
    sources: list[Part],
    los: NDArray[np.int64],
    counts: NDArray[np.int64],
    offsets: NDArray[np.int64],
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Gather every series' rows from every source into CSR order.

    Sources the query reads densely (most rows of the span it touches) are
    gathered with one `take` straight into the final positions: from the part
    itself when there is one such source, else from one array the spans of
    all of them were copied into (a copy runs at memcpy speed, a gather does
    not). The index is built with a cumsum; positions owned by the other,
    sparsely read sources get throw-away indices and are scattered over
    afterwards.
    """
    total = int(offsets[-1])
    per_source = counts.sum(axis=1)
    used = np.flatnonzero(per_source).tolist()
    his = los + counts
    spans = {k: (int(los[k][counts[k] > 0].min()), int(his[k][counts[k] > 0].max())) for k in used}
    dense = [k for k in used if 2 * per_source[k] >= spans[k][1] - spans[k][0]]
    if not dense:
        dense = [max(used, key=lambda k: per_source[k])]
    before = np.cumsum(counts, axis=0) - counts  # rows of earlier sources, per series
    dst = offsets[:-1] + before[dense]
    if len(dense) == 1:
        (k,) = dense
        has = counts[k] > 0
        idx = _gather_index(total, dst[0][has], los[k][has])
        ts = sources[k].keys.take(idx, mode="clip")
        values = sources[k].values.take(idx, mode="clip")
        ts &= REL_MASK
        ts += sources[k].base
    else:
        width = sum(spans[k][1] - spans[k][0] for k in dense)
        flat_ts = np.empty(width, dtype=np.int64)
        flat_values = np.empty(width, dtype=np.float64)
        shift = np.zeros((len(dense), 1), dtype=np.int64)
        at = 0
        for i, k in enumerate(dense):
            lo, hi = spans[k]
            part = sources[k]
            out = flat_ts[at : at + hi - lo]
            np.bitwise_and(part.keys[lo:hi], REL_MASK, out=out)
            out += part.base
            flat_values[at : at + hi - lo] = part.values[lo:hi]
            shift[i, 0] = at - lo
            at += hi - lo
        # Runs in output order: by series, then source.
        c = counts[dense].T.ravel()
        has = c > 0
        idx = _gather_index(total, dst.T.ravel()[has], (los[dense] + shift).T.ravel()[has])
        ts = flat_ts.take(idx, mode="clip")
        values = flat_values.take(idx, mode="clip")
    del idx
    for k in used:
        if k in dense:
            continue
        n = int(per_source[k])
        src = _ranges_index(los[k], counts[k], n)
        dst_k = _ranges_index(offsets[:-1] + before[k], counts[k], n)
        ts[dst_k] = sources[k].timestamps(src)
        values[dst_k] = sources[k].values[src]
    # Only a part with late samples can put a series' slices out of time order.
    if any(sources[k].ooo for k in used[1:]):
        _fix_order(offsets, ts, values)
    return ts, values


def _gather_index(total: int, dst: NDArray[np.int64], lo: NDArray[np.int64]) -> NDArray:
    """An index of length `total` with idx[dst[j] + e] = lo[j] + e inside each run.

    Runs end where the next begins; positions between runs (owned by other
    sources) hold values to be overwritten, possibly out of range (use
    mode="clip"). Built as a cumsum of steps: one pass, no np.repeat.
    """
    step = np.ones(total, dtype=np.int64)
    if len(dst):
        step[0] = lo[0] - dst[0]
        if len(dst) > 1:
            step[dst[1:]] = lo[1:] - lo[:-1] - (dst[1:] - dst[:-1]) + 1
    np.cumsum(step, out=step)
    return step


def _base(part: Part) -> int:
    return part.base


def _buffer_parts(head: Head, sids: NDArray[np.int64], start_ms: int, end_ms: int) -> list[Part]:
    """The active buffer's rows of `sids` in range, as temporary sorted parts."""
    buf = head.buffer
    if not buf.n or buf.max_t < start_ms or buf.min_t > end_ms:
        return []
    b_sid, b_ts, b_values = buf.view()
    wanted = np.zeros(head.index.id_limit, dtype=bool)
    wanted[sids] = True
    rows = wanted[b_sid]
    if buf.min_t < start_ms or buf.max_t > end_ms:
        rows &= (b_ts >= start_ms) & (b_ts <= end_ms)
    if not rows.any():
        return []
    return head.partitions.temporary_parts(b_sid[rows], b_ts[rows], b_values[rows], ooo=buf.ooo)


def _ranges_index(lo: NDArray[np.int64], counts: NDArray[np.int64], total: int) -> NDArray:
    """Concatenated positions lo[j] .. lo[j] + counts[j] - 1, for all j, in order."""
    has = counts > 0
    lo, counts = lo[has], counts[has]
    starts = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    return _gather_index(total, starts, lo)


def _fix_order(
    offsets: NDArray[np.int64], ts: NDArray[np.int64], values: NDArray[np.float64]
) -> None:
    """Sort, in place, the samples of series whose slices from several parts interleave."""
    if len(ts) < 2:
        return
    bad = ts[1:] <= ts[:-1]
    inner = offsets[1:-1]
    bad[inner[inner > 0] - 1] = False  # a series boundary is not a step back in time
    if not bad.any():
        return
    series = np.searchsorted(offsets, np.flatnonzero(bad), side="right") - 1
    affected = np.zeros(len(offsets) - 1, dtype=bool)
    affected[series] = True
    row_series = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    rows = np.flatnonzero(affected[row_series])
    order = np.lexsort((ts[rows], row_series[rows]))
    ts[rows] = ts[rows][order]
    values[rows] = values[rows][order]
