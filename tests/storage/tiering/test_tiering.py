"""Tiering end to end inside one process: cut, upload, compact, late samples, downsample, retain.

Storage runs with minute-long blocks and ten-minute compaction ranges over an
in-memory object store; every check compares what queries answer with the
samples that were written (kept aside in plain dicts), bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from remote_write.batch import STALE_NAN, WriteBatch
from storage.blocks.meta import META_FILE
from storage.blocks.resolution import Resolution
from storage.db import Storage
from storage.interfaces import SelectHints
from storage.labels import Matcher, MatchType
from storage.objstore import MemoryStore
from storage.options import StorageOptions, TieringOptions
from storage.tiering.querier import ReadOptions

T0 = 1_700_000_000_000 - 1_700_000_000_000 % 600_000  # on a ten-minute boundary
STEP = 15_000
MIN = 60_000
ALL = [Matcher(MatchType.RE, "__name__", ".+")]


def options(**tiering):
    return StorageOptions(
        out_of_order_window_ms=30_000,
        late_window_ms=3_600_000,
        tiering=TieringOptions(
            block_duration_ms=MIN,
            compaction_range_ms=10 * MIN,
            upload_retry_ms=(10, 50),
            compaction_interval_ms=0,  # compaction runs when a test calls maintain()
            late_cut_interval_ms=0,
            **tiering,
        ),
    )


class Fleet:
    """Writes scrapes of a few series and remembers every acknowledged sample."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.written: dict[str, dict[int, float]] = {}

    async def scrape(self, t: int, *, series=("a", "b", "c")) -> None:
        rows = []
        for name in series:
            k = (t - T0) // STEP
            value = float(k * 3 + ord(name)) if name != "c" else round(0.25 * k, 2)
            rows.append(((("__name__", f"m_{name}"), ("cluster", "eu")), [t], [value]))
        app = self.storage.appender()
        result = app.append(WriteBatch.from_series(rows))
        assert not result.rejected, result.rejected
        await app.commit()
        for labels, ts, vals in rows:
            self.written.setdefault(labels[0][1], {})[ts[0]] = vals[0]

    async def run(self, start: int, end: int) -> None:
        for t in range(start, end, STEP):
            await self.scrape(t)

    async def answer(self, start=T0 - 3_600_000, end=T0 + 3_600_000, read=None):
        q = self.storage.scoped(read) if read is not None else self.storage
        async with q.querier(start, end) as querier:
            ss = await querier.select(ALL, start, end)
        out = {}
        for s in ss.series:
            ts = s.timestamps.tolist()
            assert len(ts) == len(set(ts)), f"{s.labels}: a sample came back twice"
            out[s.labels.metric_name] = dict(zip(ts, s.values.tolist(), strict=True))
        return out

    async def check(self) -> None:
        assert await self.answer() == self.written


async def settle(storage: Storage) -> None:
    await storage.run_maintenance()
    await storage.tiering.wait_uploaded()
    await storage.run_maintenance()


@pytest.fixture
async def storage(tmp_path):
    store = MemoryStore()
    s = await Storage.open(tmp_path / "data", options(), object_store=store)
    s.store_for_tests = store
    yield s
    await s.close()


async def test_closed_ranges_leave_the_head_and_stay_queryable(storage):
    fleet = Fleet(storage)
    await fleet.run(T0, T0 + 12 * MIN)
    await settle(storage)
    blocks = storage.catalog.blocks
    assert len(blocks) >= 10
    assert all(b.range_end - b.range_start == MIN for b in blocks)
    # The head keeps only what is not in a block yet: the open minute or so.
    assert storage.stats().samples <= 3 * 6
    await fleet.check()


async def test_flush_leaves_the_head_empty_and_the_wal_trimmed(storage, tmp_path):
    fleet = Fleet(storage)
    await fleet.run(T0, T0 + 3 * MIN + STEP)
    result = await storage.flush()
    assert result.samples == sum(len(v) for v in fleet.written.values())
    assert result.series == 3
    assert storage.stats().samples == 0
    await fleet.check()
    # Every WAL segment before the current one is gone: the blocks hold it all.
    wal = sorted((tmp_path / "data" / "wal").iterdir())
    assert len(wal) == 1


async def test_a_new_storage_on_the_same_store_answers_the_same(storage, tmp_path):
    fleet = Fleet(storage)
    await fleet.run(T0, T0 + 5 * MIN)
    await storage.flush()
    other = await Storage.open(
        tmp_path / "elsewhere", options(), object_store=storage.store_for_tests
    )
    try:
        assert await Fleet(other).answer() == fleet.written
    finally:
        await other.close()


async def test_compaction_merges_a_closed_range_into_one_block(storage):
    fleet = Fleet(storage)
    await fleet.run(T0, T0 + 23 * MIN)
    await settle(storage)
    await storage.tiering.maintain()
    blocks = storage.catalog.blocks
    compacted = [b for b in blocks if b.kind == "compacted"]
    assert [(b.range_start, b.range_end) for b in compacted] == [
        (T0, T0 + 10 * MIN),
        (T0 + 10 * MIN, T0 + 20 * MIN),
    ]
    assert all(len(b.sources) == 10 for b in compacted)
    await fleet.check()
    # The sources are gone from the store once no query holds them.
    keys = storage.store_for_tests.objects
    for b in compacted:
        for source in b.sources:
            assert f"blocks/{source}/{META_FILE}" not in keys


async def test_late_samples_are_accepted_and_survive_compaction(storage):
    fleet = Fleet(storage)
    await fleet.run(T0, T0 + 15 * MIN)
    await settle(storage)
    await storage.tiering.maintain()  # the first ten minutes are one block now
    # An edge cluster comes back: samples from minute 3 to 5, long cut already.
    late_series = ("a", "b")
    for t in range(T0 + 3 * MIN + 5_000, T0 + 5 * MIN, STEP):
        await fleet.scrape(t, series=late_series)
    await fleet.check()  # from the head, beside the compacted block
    await settle(storage)
    kinds = sorted(b.kind for b in storage.catalog.blocks)
    assert "late" in kinds
    await fleet.check()
    await storage.tiering.maintain()
    assert "late" not in [b.kind for b in storage.catalog.blocks]
    await fleet.check()


async def test_samples_older_than_the_late_window_are_refused(storage):
    fleet = Fleet(storage)
    await fleet.run(T0, T0 + 2 * MIN)
    app = storage.appender()
    old = T0 + 2 * MIN - 3_600_000 - 2 * STEP  # one step past the window
    result = app.append(
        WriteBatch.from_series([((("__name__", "m_a"), ("cluster", "eu")), [old], [1.0])])
    )
    assert [r.reason for r in result.rejected] == ["sample_too_old"]
    assert "storage.late_window of 1h0m0s" in result.rejected[0].message


async def test_downsampled_blocks_answer_coarse_queries(tmp_path):
    store = MemoryStore()
    s = await Storage.open(
        tmp_path,
        options(downsample_after_ms=((MIN, 15 * MIN),)),
        object_store=store,
    )
    try:
        fleet = Fleet(s)
        await fleet.run(T0, T0 + 32 * MIN)
        await settle(s)
        await s.tiering.maintain()  # compacts the first three ranges
        await s.tiering.maintain()  # downsamples those older than 15 minutes
        down = [b for b in s.catalog.blocks if b.resolution_ms == MIN]
        assert [(b.range_start, b.range_end) for b in down] == [(T0, T0 + 10 * MIN)]
        start, end = T0, T0 + 30 * MIN
        hints = SelectHints(step_ms=5 * MIN, func="max_over_time", range_ms=5 * MIN)
        async with s.querier(start, end) as q:
            got = await q.select(
                [Matcher(MatchType.EQ, "__name__", "m_a")], start, end, hints=hints
            )
        ts, values = got.series[0].timestamps, got.series[0].values
        written = fleet.written["m_a"]
        # Downsampled: one point per minute (the window's last sample, its max) ...
        early = ts < T0 + 10 * MIN
        assert ts[early].tolist() == [T0 + k * MIN + 3 * STEP for k in range(10)]
        assert values[early].tolist() == [written[t] for t in ts[early].tolist()]
        # ... then raw samples where no downsampled block covers the range.
        assert ts[~early].tolist() == sorted(t for t in written if T0 + 10 * MIN <= t <= end)
        # max_source_resolution=raw keeps every sample.
        raw = ReadOptions(resolution=Resolution(0))
        async with s.scoped(raw).querier(start, end) as q:
            exact = await q.select(
                [Matcher(MatchType.EQ, "__name__", "m_a")], start, end, hints=hints
            )
        assert exact.series[0].timestamps.tolist() == sorted(
            t for t in written if start <= t <= end
        )
    finally:
        await s.close()


async def test_retention_deletes_whole_old_blocks(tmp_path):
    store = MemoryStore()
    s = await Storage.open(
        tmp_path, options(object_store_retention_ms=12 * MIN), object_store=store
    )
    try:
        fleet = Fleet(s)
        await fleet.run(T0, T0 + 25 * MIN)
        await settle(s)
        await s.tiering.maintain()
        newest = max(max(v) for v in fleet.written.values())
        blocks = s.catalog.blocks
        assert blocks
        assert all(b.max_time >= newest - 12 * MIN for b in blocks)
        assert min(b.min_time for b in blocks) <= newest - 12 * MIN  # whole blocks only
        kept = await fleet.answer()
        assert min(min(v) for v in kept.values()) > T0
        # What retention removed is gone from the store, not just hidden.
        stored = {k.split("/")[1] for k in store.objects if k.endswith(META_FILE)}
        assert stored == {b.id for b in blocks}
        assert all(k.split("/")[1] in stored for k in store.objects)
    finally:
        await s.close()


async def test_stale_markers_survive_the_round_trip(storage):
    app = storage.appender()
    ts = [T0 + k * STEP for k in range(10)]
    values = [float(k) for k in range(9)] + [STALE_NAN]
    app.append(WriteBatch.from_series([((("__name__", "gone"),), ts, values)]))
    await app.commit()
    await storage.flush()
    assert storage.stats().samples == 0
    async with storage.querier(T0, T0 + MIN * 10) as q:
        ss = await q.select([Matcher(MatchType.EQ, "__name__", "gone")], T0, T0 + 10 * MIN)
    got = ss.values.view(np.uint64).tolist()
    assert got == np.array(values).view(np.uint64).tolist()
