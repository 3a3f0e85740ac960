"""Which blocks a select reads, at which resolution (after Thanos's `max_source_resolution`).

Downsampled blocks (5m and 1h windows of count, sum, min, max and counter)
are used when the query asks coarse enough: with `auto` (the default) a
resolution up to a fifth of the query step, as Thanos does; `raw` (0) never;
an explicit duration up to that resolution. Which aggregate stands in for
the samples depends on the function the selector feeds (Thanos's
`aggrsFromFunc`): `rate`/`increase` read the counter, `min_over_time` the
minimum, `max_over_time` the maximum, `sum_over_time` the sum, and
everything else the window average (sum / count). Functions that count
samples or changes (`count_over_time`, `changes`, `resets`) cannot be
answered from windows and always read raw samples.

For each stretch of the select's range the coarsest allowed resolution with
a usable downsampled block wins; raw blocks fill the rest. A downsampled
block is usable only while no raw block other than its source overlaps its
range (late samples not yet compacted into the source would be missing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from storage.blocks.reader import BlockReader
from storage.interfaces import SelectHints

AUTO = None
RAW_ONLY_FUNCS = frozenset({"count_over_time", "changes", "resets"})
_FUNC_AGGREGATE = {
    "rate": "counter",
    "increase": "counter",
    "irate": "counter",
    "min_over_time": "min",
    "max_over_time": "max",
    "sum_over_time": "sum",
}
AGGREGATE_COLUMNS = {
    "counter": ("counter",),
    "min": ("min",),
    "max": ("max",),
    "sum": ("sum",),
    "avg": ("count", "sum"),
}


@dataclass(frozen=True, slots=True)
class Resolution:
    """A query's `max_source_resolution`: None for auto (step / 5), 0 for raw, else ms."""

    max_ms: int | None = AUTO

    def allowed(self, hints: SelectHints | None) -> int:
        if self.max_ms is not None:
            return self.max_ms
        step = hints.step_ms if hints is not None and hints.step_ms else 0
        return step // 5


@dataclass(frozen=True, slots=True)
class PlannedRead:
    """Read `reader` over [start_ms, end_ms]; `aggregate` None for raw samples."""

    reader: BlockReader
    start_ms: int
    end_ms: int
    whole: bool
    aggregate: str | None = None

    @property
    def columns(self) -> tuple[str, ...] | None:
        return None if self.aggregate is None else AGGREGATE_COLUMNS[self.aggregate]


def aggregate_for(hints: SelectHints | None) -> str | None:
    """The aggregate standing in for samples fed to `hints.func`; None: raw only."""
    func = hints.func if hints is not None else None
    if func in RAW_ONLY_FUNCS:
        return None
    return _FUNC_AGGREGATE.get(func or "", "avg")


def plan_reads(
    readers: Sequence[BlockReader],
    start_ms: int,
    end_ms: int,
    hints: SelectHints | None,
    resolution: Resolution,
) -> list[PlannedRead]:
    """The reads answering a select over [start_ms, end_ms], in the readers' order."""
    raw = [r for r in readers if r.meta.resolution_ms == 0 and r.meta.overlaps(start_ms, end_ms)]
    allowed = resolution.allowed(hints)
    aggregate = aggregate_for(hints)
    down = [
        r
        for r in readers
        if 0 < r.meta.resolution_ms <= allowed and r.meta.overlaps(start_ms, end_ms)
    ]
    if not down or aggregate is None:
        return [_raw_read(r, start_ms, end_ms) for r in raw]
    uncovered = [(start_ms, end_ms)]
    chosen: list[PlannedRead] = []
    for res in sorted({r.meta.resolution_ms for r in down}, reverse=True):
        for r in sorted((r for r in down if r.meta.resolution_ms == res), key=_range_start):
            if not _usable(r, raw):
                continue
            lo, hi = r.meta.range_start, r.meta.range_end - 1
            rest = []
            for a, b in uncovered:
                if b < lo or a > hi:
                    rest.append((a, b))
                    continue
                chosen.append(PlannedRead(r, max(a, lo), min(b, hi), False, aggregate))
                if a < lo:
                    rest.append((a, lo - 1))
                if b > hi:
                    rest.append((hi + 1, b))
            uncovered = rest
    for a, b in uncovered:
        chosen += [_raw_read(r, a, b) for r in raw if r.meta.overlaps(a, b)]
    order = {id(r): i for i, r in enumerate(readers)}
    chosen.sort(key=lambda p: (p.start_ms, order[id(p.reader)]))
    return chosen


def _raw_read(reader: BlockReader, start_ms: int, end_ms: int) -> PlannedRead:
    """Read a raw block over [start_ms, end_ms] cut to what it holds."""
    meta = reader.meta
    whole = start_ms <= meta.min_time and meta.max_time <= end_ms
    return PlannedRead(reader, max(start_ms, meta.min_time), min(end_ms, meta.max_time), whole)


def _range_start(reader: BlockReader) -> int:
    return reader.meta.range_start


def _usable(down: BlockReader, raw: Sequence[BlockReader]) -> bool:
    meta = down.meta
    return all(
        r.meta.id in meta.sources
        or r.meta.max_time < meta.range_start
        or r.meta.min_time >= meta.range_end
        for r in raw
    )
