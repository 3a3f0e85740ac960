"""The agent's window: what rules and the tunnel read."""

from __future__ import annotations

import numpy as np

from aggregator.edge.window import Window
from storage.labels import Labels, Matcher

A = Labels.from_pairs([("__name__", "up"), ("job", "a")])
B = Labels.from_pairs([("__name__", "up"), ("job", "b")])


async def select(w: Window, *matchers: Matcher, start: int = 0, end: int = 10**12):
    async with w.querier(start, end) as q:
        return await q.select(list(matchers), start, end)


async def test_select_orders_by_series_and_time() -> None:
    w = Window(60_000)
    w.append([B, A], 2000, [2.0, 1.0])
    w.append([A, B], 1000, [10.0, 20.0])
    ss = await select(w, Matcher.eq("__name__", "up"))
    assert ss.labels == [A, B]
    assert ss.timestamps.tolist() == [1000, 2000, 1000, 2000]
    assert ss.values.tolist() == [10.0, 1.0, 20.0, 2.0]


async def test_matchers_and_time_range_filter() -> None:
    w = Window(60_000)
    w.append([A, B], np.array([1000, 1000]), [1.0, 2.0])
    w.append([A], 5000, [3.0])
    ss = await select(w, Matcher.eq("job", "a"), start=2000, end=6000)
    assert ss.labels == [A]
    assert ss.values.tolist() == [3.0]


async def test_same_timestamp_keeps_the_last_append() -> None:
    w = Window(60_000)
    w.append([A], 1000, [1.0])
    w.append([A], 1000, [2.0])
    ss = await select(w)
    assert ss.values.tolist() == [2.0]


async def test_truncate_drops_old_samples_and_empty_series() -> None:
    w = Window(10_000)
    w.append([A, B], 1000, [1.0, 2.0])
    w.append([A], 20_000, [3.0])
    w.truncate(25_000)
    assert w.num_series == 1
    ss = await select(w)
    assert ss.labels == [A]
    assert ss.timestamps.tolist() == [20_000]
    # A series that comes back gets an id again.
    w.append([B], 26_000, [5.0])
    assert (await select(w, Matcher.eq("job", "b"))).values.tolist() == [5.0]


async def test_one_time_chunks_store_no_timestamp_column_and_share_series_ids() -> None:
    """A scrape costs 12 bytes a sample, not 20: one time, the previous scrape's ids."""
    w = Window(60_000)
    w.append([A, B], np.array([1000, 1000]), [1.0, 2.0])
    w.append([A, B], 2000, [3.0, 4.0])
    w.append([A, B], np.array([3000, 3500]), [5.0, 6.0])  # exposition timestamps: a column
    first, second, third = w._chunks
    assert first.timestamps == 1000
    assert second.timestamps == 2000
    assert second.sids is first.sids
    assert third.timestamp_column().tolist() == [3000, 3500]
    assert not isinstance(third.timestamps, int)
    assert w.num_samples == 6
    ss = await select(w, Matcher.eq("__name__", "up"))
    assert ss.timestamps.tolist() == [1000, 2000, 3000, 1000, 2000, 3500]
    assert ss.values.tolist() == [1.0, 3.0, 5.0, 2.0, 4.0, 6.0]
