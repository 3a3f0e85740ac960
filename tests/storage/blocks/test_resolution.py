"""Which blocks a select reads at which resolution (`resolution.plan_reads`)."""

from __future__ import annotations

from types import SimpleNamespace

from storage.blocks.meta import BlockMeta
from storage.blocks.resolution import Resolution, plan_reads
from storage.interfaces import SelectHints

DAY = 86_400_000
M5, H1 = 300_000, 3_600_000


def block(block_id, day, resolution=0, sources=(), kind="compacted", end_day=None):
    meta = BlockMeta(
        id=block_id,
        min_time=day * DAY,
        max_time=(end_day or day + 1) * DAY - 1,
        series=1,
        samples=1,
        resolution_ms=resolution,
        kind=kind,
        range_start=day * DAY,
        range_end=(end_day or day + 1) * DAY,
        sources=sources,
        origin=block_id,
    )
    return SimpleNamespace(meta=meta)


def describe(reads):
    return [(r.reader.meta.id, r.start_ms // DAY, r.aggregate) for r in reads]


RAW = [block(f"raw{d}", d) for d in range(4)]
DOWN = [
    block("d5m0", 0, M5, ("raw0",)),
    block("d5m1", 1, M5, ("raw1",)),
    block("d1h0", 0, H1, ("raw0",)),
]
READERS = RAW + DOWN
WHOLE = (0, 4 * DAY - 1)


def test_fine_steps_and_raw_read_raw_blocks():
    for hints, resolution in [
        (SelectHints(step_ms=60_000), Resolution()),  # auto: 12s allowed
        (SelectHints(step_ms=DAY), Resolution(0)),  # raw asked for
    ]:
        got = describe(plan_reads(READERS, *WHOLE, hints, resolution))
        assert got == [("raw0", 0, None), ("raw1", 1, None), ("raw2", 2, None), ("raw3", 3, None)]


def test_coarse_steps_read_the_coarsest_allowed_copy_and_raw_elsewhere():
    hints = SelectHints(step_ms=3 * H1, func="max_over_time", range_ms=H1)  # auto: 36m
    got = describe(plan_reads(READERS, *WHOLE, hints, Resolution()))
    assert got == [("d5m0", 0, "max"), ("d5m1", 1, "max"), ("raw2", 2, None), ("raw3", 3, None)]
    got = describe(plan_reads(READERS, *WHOLE, SelectHints(step_ms=DAY), Resolution()))
    assert got == [("d1h0", 0, "avg"), ("d5m1", 1, "avg"), ("raw2", 2, None), ("raw3", 3, None)]


def test_functions_that_count_samples_read_raw():
    hints = SelectHints(step_ms=DAY, func="count_over_time", range_ms=DAY)
    got = describe(plan_reads(READERS, *WHOLE, hints, Resolution()))
    assert [a for _, _, a in got] == [None] * 4


def test_rate_reads_the_counter():
    hints = SelectHints(step_ms=DAY, func="rate", range_ms=H1)
    got = describe(plan_reads(READERS, *WHOLE, hints, Resolution(M5)))
    assert got[:2] == [("d5m0", 0, "counter"), ("d5m1", 1, "counter")]


def test_a_late_block_not_yet_compacted_keeps_its_day_raw():
    late = block("late1", 1, kind="late")
    got = describe(plan_reads([*READERS, late], *WHOLE, SelectHints(step_ms=DAY), Resolution()))
    assert ("raw1", 1, None) in got
    assert ("late1", 1, None) in got
    assert all(b != "d5m1" for b, _, _ in got)


def test_reads_cover_the_range_once():
    start, end = DAY // 2, 2 * DAY + DAY // 2
    reads = plan_reads(READERS, start, end, SelectHints(step_ms=DAY), Resolution())
    spans = sorted((r.start_ms, r.end_ms) for r in reads)
    assert spans == [(start, DAY - 1), (DAY, 2 * DAY - 1), (2 * DAY, end)]
