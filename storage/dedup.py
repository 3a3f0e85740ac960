"""HA pairs: series that differ only by a replica label are answered as one.

`DedupQuerier(inner, replica_labels)` drops the replica labels from every
series, and where that makes several series equal it merges their samples
with Thanos Query's penalty algorithm: follow one replica; at each step
seek the one just followed to the next sample, and the other to the next
sample at least twice the last sampling interval later (5 s before the
first interval is known); take the earlier of the two. A replica with a gap
loses the race at the gap and the other one fills it; while both have data
the one followed keeps winning, so samples are neither doubled nor
interleaved. Three or more replicas are folded in turn, as Thanos does.
(Thanos also adjusts counter values across a switch when the query runs
`rate` and friends; that refinement is not done here.)

The algorithm is sequential, but a Python step is taken only per *switch*
between replicas: each run on one replica is found with numpy over the
stretch it covers (see `penalty_merge`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from storage.csr import offsets_of, ranges
from storage.interfaces import LabelResult, Querier, SelectHints, SeriesSet
from storage.labels import Labels, Matcher

INITIAL_PENALTY_MS = 5000

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]


class DedupQuerier:
    """A Querier that hides `replica_labels` and merges the replicas they told apart."""

    def __init__(self, inner: Querier, replica_labels: Sequence[str]) -> None:
        self.inner = inner
        self.replica_labels = tuple(replica_labels)

    async def select(
        self,
        matchers: Sequence[Matcher],
        start_ms: int,
        end_ms: int,
        *,
        hints: SelectHints | None = None,
    ) -> SeriesSet:
        result = await self.inner.select(matchers, start_ms, end_ms, hints=hints)
        return dedup_series_set(result, self.replica_labels)

    async def label_names(
        self, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        res = await self.inner.label_names(matchers)
        names = [n for n in res.values if n not in self.replica_labels]
        return LabelResult(names[:limit] if limit else names, res.warnings)

    async def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        if name in self.replica_labels:
            return LabelResult([])
        return await self.inner.label_values(name, matchers, limit=limit)


def dedup_series_set(ss: SeriesSet, replica_labels: Sequence[str]) -> SeriesSet:
    """`ss` with replica labels removed and replicas of one series merged (label order kept)."""
    names = set(replica_labels)
    if not names or not any(n in names for lbl in ss.labels for n, _ in lbl):
        return ss
    stripped = [lbl.without(*replica_labels) for lbl in ss.labels]
    order = sorted(range(len(stripped)), key=stripped.__getitem__)
    groups: list[list[int]] = []
    out_labels: list[Labels] = []
    for i in order:
        if out_labels and stripped[i] == out_labels[-1]:
            groups[-1].append(i)
        else:
            out_labels.append(stripped[i])
            groups.append([i])
    off = ss.offsets
    if all(len(g) == 1 for g in groups):
        which = np.fromiter((g[0] for g in groups), dtype=np.int64, count=len(groups))
        sizes = off[1:][which] - off[:-1][which]
        rows = ranges(off[:-1][which], sizes)
        return SeriesSet(
            out_labels, offsets_of(sizes), ss.timestamps[rows], ss.values[rows], ss.warnings
        )
    ts_parts: list[I64] = []
    val_parts: list[F64] = []
    sizes_list = []
    bounds = off.tolist()
    for g in groups:
        t = ss.timestamps[bounds[g[0]] : bounds[g[0] + 1]]
        v = ss.values[bounds[g[0]] : bounds[g[0] + 1]]
        for j in g[1:]:
            t, v = penalty_merge(
                t, v, ss.timestamps[bounds[j] : bounds[j + 1]], ss.values[bounds[j] : bounds[j + 1]]
            )
        ts_parts.append(t)
        val_parts.append(v)
        sizes_list.append(len(t))
    sizes_arr = np.asarray(sizes_list, dtype=np.int64)
    return SeriesSet(
        out_labels,
        offsets_of(sizes_arr),
        np.concatenate(ts_parts).astype(np.int64, copy=False),
        np.concatenate(val_parts).astype(np.float64, copy=False),
        ss.warnings,
    )


def penalty_merge(ta: I64, va: F64, tb: I64, vb: F64) -> tuple[I64, F64]:
    """Thanos's penalty dedup of two replicas (A preferred on ties), one numpy pass per run.

    A run is a stretch followed on one replica X. Having emitted X[k] after
    time p, the next decision compares X[k+1] with the other replica Y sought
    to `X[k] + 1 + 2 (X[k] - p)`; later decisions in the run use the gap
    between X's own last two samples. Y's iterator only moves forward, so its
    position is that of the running maximum of these targets. The run ends at
    the first decision Y wins; the emitted samples are X[k .. end).
    """
    streams = ((ta, va), (tb, vb))
    pos = [0, 0]
    pen = [0, 0]
    last_t: int | None = None
    out: list[tuple[int, int, int]] = []  # (stream, lo, hi)
    lens = (len(ta), len(tb))
    while True:
        if last_t is not None:
            for s in (0, 1):
                target = last_t + 1 + pen[s]
                pos[s] = max(pos[s], int(np.searchsorted(streams[s][0], target, "left")))
        a_left, b_left = pos[0] < lens[0], pos[1] < lens[1]
        if not a_left or not b_left:
            s = 0 if a_left else 1
            if pos[s] < lens[s]:
                out.append((s, pos[s], lens[s]))
            break
        x = 0 if ta[pos[0]] <= tb[pos[1]] else 1
        y = 1 - x
        tx, ty = streams[x][0], streams[y][0]
        k = pos[x]
        first_pen = INITIAL_PENALTY_MS if last_t is None else 2 * (int(tx[k]) - last_t)
        end, y_pos = _run_end(tx, ty, k, int(tx[k]) + 1 + first_pen, pos[y], ties_to_x=x == 0)
        out.append((x, k, end))
        last = end - 1
        last_t = int(tx[last])
        pen[x] = 0
        pen[y] = first_pen if last == k else 2 * (int(tx[last]) - int(tx[last - 1]))
        pos[x] = end
        pos[y] = y_pos
    if not out:
        return ta[:0], va[:0]
    ts = np.concatenate([streams[s][0][lo:hi] for s, lo, hi in out])
    vals = np.concatenate([streams[s][1][lo:hi] for s, lo, hi in out])
    return ts, vals


def _run_end(
    tx: I64, ty: I64, k: int, first_target: int, y_pos: int, *, ties_to_x: bool
) -> tuple[int, int]:
    """(one past the last sample of the run on X that starts at k, Y's position then).

    Decision j (choosing X[j] or Y, j = k+1, ...) seeks Y to target[j]:
    `first_target` for j = k+1, `X[j-1] + 1 + 2 (X[j-1] - X[j-2])` after.
    On equal timestamps replica A wins (`ties_to_x` when X is A).
    Looked at in growing windows so that a short run costs a short scan.
    """
    n = len(tx)
    j0 = k + 1
    running = first_target
    width = 64
    while j0 < n:
        j1 = min(n, j0 + width)
        idx = np.arange(j0, j1)
        prev = tx[idx - 1]
        targets = np.where(
            idx == k + 1, first_target, prev + 1 + 2 * (prev - tx[np.maximum(idx - 2, 0)])
        )
        targets = np.maximum.accumulate(np.maximum(targets, running))
        ypos = np.maximum(np.searchsorted(ty, targets, "left"), y_pos)
        y_next = np.where(ypos < len(ty), ty[np.minimum(ypos, len(ty) - 1)], np.iinfo(np.int64).max)
        lose = np.flatnonzero(tx[idx] > y_next if ties_to_x else tx[idx] >= y_next)
        if len(lose):
            f = int(lose[0])
            # Y's iterator stands where the last decision X won left it.
            return j0 + f, y_pos if f == 0 else max(y_pos, int(ypos[f - 1]))
        running = int(targets[-1])
        y_pos = max(y_pos, int(ypos[-1]))
        j0 = j1
        width *= 4
    return n, y_pos
