"""Tiering on a real S3 endpoint (moto on loopback) at real time scales.

Day compaction and Thanos's downsampling ages, as a service runs them, with
six-hour blocks (fewer uploads than the default two hours; the same code);
only the data's timestamps are days in the past. Queries go through the
PromQL engine as the API runs them.

- Late samples: six hours old, after newer ones, queryable from the head,
  from a late block beside the compacted day, and after the day is compacted
  again with them.
- A range query over days that spans downsampled blocks (5m and 1h), raw
  day blocks, a six-hour block and the head.
- Retention deletes whole blocks, downsampled copies included.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from promql.engine import Engine
from remote_write.batch import WriteBatch
from storage.blocks.resolution import Resolution
from storage.db import Storage
from storage.labels import Matcher, MatchType
from storage.options import DAY_MS, HOUR_MS, StorageOptions, TieringOptions
from storage.tiering.querier import ReadOptions

MIN = 60_000
DAY0 = (1_700_000_000_000 // DAY_MS - 10) * DAY_MS  # a UTC midnight
SERIES = 6


def options(**tiering) -> StorageOptions:
    return StorageOptions(
        late_window_ms=7 * DAY_MS,
        tiering=TieringOptions(
            block_duration_ms=6 * HOUR_MS,
            compaction_interval_ms=0,
            late_cut_interval_ms=0,
            upload_retry_ms=(10, 100),
            **tiering,
        ),
    )


def counter(i: int, ts: np.ndarray) -> np.ndarray:
    return ((ts - DAY0) // MIN * (i + 1)).astype(np.float64)


async def write_range(storage: Storage, start: int, end: int, *, step: int = MIN, offset: int = 0):
    """Scrapes of SERIES counters every `step` in [start, end), an hour per batch."""
    written = 0
    for hour in range(start, end, HOUR_MS):
        ts = np.arange(hour + offset, min(hour + HOUR_MS, end), step, dtype=np.int64)
        rows = [
            (
                (("__name__", "requests_total"), ("pod", f"p{i}")),
                ts.tolist(),
                counter(i, ts).tolist(),
            )
            for i in range(SERIES)
        ]
        app = storage.appender()
        result = app.append(WriteBatch.from_series(rows))
        assert not result.rejected, result.rejected[0].message
        await app.commit()
        written += len(ts) * SERIES
    return written


async def settle(storage: Storage) -> None:
    await storage.run_maintenance()
    await storage.tiering.wait_uploaded()
    await storage.run_maintenance()


async def samples_of(storage: Storage, start: int, end: int) -> dict[str, list[tuple[int, float]]]:
    async with storage.querier(start, end) as q:
        ss = await q.select([Matcher(MatchType.EQ, "__name__", "requests_total")], start, end)
    out = {}
    for s in ss.series:
        ts = s.timestamps.tolist()
        assert len(ts) == len(set(ts)), "a sample came back twice"
        out[s.labels.get("pod")] = list(zip(ts, s.values.tolist(), strict=True))
    return out


@pytest.fixture
async def storage(tmp_path, s3_store):
    s = await Storage.open(tmp_path / "data", options(), object_store=s3_store)
    yield s
    await s.close()


async def test_late_samples_six_hours_old_before_and_after_compaction(storage):
    start, newest = DAY0 + 18 * HOUR_MS, DAY0 + 29 * HOUR_MS
    await write_range(storage, start, newest + MIN)
    await settle(storage)
    await storage.tiering.maintain()
    day = [b for b in storage.catalog.blocks if b.range_start == DAY0]
    assert [b.kind for b in day] == ["compacted"]

    # Six hours old, after newer ones: a pod that was cut off sends its backlog.
    late_start = newest - 6 * HOUR_MS
    late = np.arange(late_start + 30_000, late_start + 30 * MIN, MIN, dtype=np.int64)
    app = storage.appender()
    result = app.append(
        WriteBatch.from_series(
            [((("__name__", "requests_total"), ("pod", "p0")), late.tolist(), [7.5] * len(late))]
        )
    )
    assert result.accepted == len(late)
    assert not result.rejected
    await app.commit()
    want = sorted(
        [
            (t, v)
            for t, v in zip(
                np.arange(start, newest + MIN, MIN).tolist(),
                counter(0, np.arange(start, newest + MIN, MIN)).tolist(),
                strict=True,
            )
        ]
        + [(t, 7.5) for t in late.tolist()]
    )
    assert (await samples_of(storage, start, newest))["p0"] == want  # head + blocks

    await settle(storage)
    kinds = sorted(
        b.kind for b in storage.catalog.blocks if b.range_start // DAY_MS == DAY0 // DAY_MS
    )
    assert kinds == ["compacted", "late"]
    # The late samples left the head: it holds only the open six-hour range.
    assert storage.blocks_status()["head"]["minTime"] >= DAY0 + 24 * HOUR_MS
    assert (await samples_of(storage, start, newest))["p0"] == want

    await storage.tiering.maintain()
    day = [b for b in storage.catalog.blocks if b.range_start == DAY0]
    assert [b.kind for b in day] == ["compacted"]
    assert day[0].samples == SERIES * 6 * 60 + len(late)
    assert (await samples_of(storage, start, newest))["p0"] == want


async def test_a_range_query_spans_downsampled_raw_blocks_and_head(tmp_path, s3_store):
    s = await Storage.open(
        tmp_path / "data",
        options(downsample_after_ms=((5 * MIN, 40 * HOUR_MS), (HOUR_MS, 80 * HOUR_MS))),
        object_store=s3_store,
    )
    try:
        newest = DAY0 + 4 * DAY_MS + 11 * HOUR_MS
        await write_range(s, DAY0, newest + MIN)
        await settle(s)
        await s.tiering.maintain()  # compacts the four closed days, then downsamples
        blocks = s.catalog.blocks
        by_res = {
            r: sorted(b.range_start for b in blocks if b.resolution_ms == r)
            for r in (0, 5 * MIN, HOUR_MS)
        }
        assert by_res[5 * MIN] == [DAY0, DAY0 + DAY_MS]  # older than 40h
        assert by_res[HOUR_MS] == [DAY0]  # older than 80h
        six_hours = [b for b in blocks if b.range_end - b.range_start == 6 * HOUR_MS]
        assert [(b.kind, b.range_start) for b in six_hours] == [("cut", DAY0 + 4 * DAY_MS)]
        assert s.stats().samples > 0  # the open range is in the head

        engine = Engine()
        start_s = (DAY0 + 12 * HOUR_MS + 270_000) / 1000  # off the 5m grid (see below)
        end_s = newest / 1000 + 270
        query = "max_over_time(requests_total[1h])"

        async def run(resolution: Resolution):
            read = ReadOptions(resolution=resolution)
            return await engine.range_query(
                s.scoped(read), query, int(start_s * 1000), int(end_s * 1000), 30 * MIN
            )

        exact = await run(Resolution(0))
        auto = await run(Resolution())  # step/5 = 6m: the 5m blocks answer where they exist
        coarse = await run(Resolution(HOUR_MS))  # the 1h block too where it exists
        # Each 5m window's max stands for its samples: for counters, off the 5m grid,
        # the answer is the same.
        assert auto.value.labels == exact.value.labels
        assert auto.value.timestamps.tolist() == exact.value.timestamps.tolist()
        np.testing.assert_array_equal(auto.value.values, exact.value.values)
        # Hour windows are coarser than the query's 1h range: never above, close to it.
        assert coarse.value.timestamps.tolist() == exact.value.timestamps.tolist()
        assert (coarse.value.values <= exact.value.values).all()
        np.testing.assert_allclose(coarse.value.values, exact.value.values, rtol=0.05)
        # ... from fewer samples: a day and a half of windows instead of minutes.
        assert auto.stats.samples_loaded < exact.stats.samples_loaded * 0.75
        assert coarse.stats.samples_loaded < auto.stats.samples_loaded

        # rate() reads the counter aggregate: close to the exact answer (where a 2h window
        # mixes 5m windows and raw minutes, extrapolation sees uneven spacing: a few %).
        rate = "sum(rate(requests_total[2h]))"
        approx = await engine.range_query(
            s.scoped(ReadOptions()), rate, int(start_s * 1000), int(end_s * 1000), 30 * MIN
        )
        exact_rate = await engine.range_query(
            s.scoped(ReadOptions(resolution=Resolution(0))),
            rate,
            int(start_s * 1000),
            int(end_s * 1000),
            30 * MIN,
        )
        np.testing.assert_allclose(approx.value.values, exact_rate.value.values, rtol=0.05)
    finally:
        await s.close()


async def test_retention_deletes_whole_blocks_and_their_copies(tmp_path, s3_store):
    store = s3_store
    opts = options(downsample_after_ms=((5 * MIN, 40 * HOUR_MS),))
    s = await Storage.open(tmp_path / "data", opts, object_store=store)
    try:
        newest = DAY0 + 3 * DAY_MS + 18 * HOUR_MS
        await write_range(s, DAY0, newest + MIN, step=5 * MIN)
        await settle(s)
        await s.tiering.maintain()
        assert {b.range_start for b in s.catalog.blocks if b.resolution_ms} == {
            DAY0,
            DAY0 + DAY_MS,
        }
        # Two and a half days: the first day and its copy go; the second day stays whole.
        compactor = s.tiering.compactor
        compactor.options = replace(compactor.options, object_store_retention_ms=60 * HOUR_MS)
        await s.tiering.maintain()
        assert min(b.range_start for b in s.catalog.blocks) == DAY0 + DAY_MS
        kept = await samples_of(s, DAY0, newest)
        assert min(t for t, _ in kept["p0"]) == DAY0 + DAY_MS
        ids = {key.split("/")[1] async for key in store.list("blocks/")}
        assert ids == {b.id for b in s.catalog.blocks}
    finally:
        await s.close()
