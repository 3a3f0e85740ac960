"""The engine end to end over a MemoryStorage: semantics, errors, limits."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
import pytest

from promql.engine import MAX_POINTS_PER_SERIES, Engine, QueryOpts
from promql.errors import ExecutionError, InvalidQuery, QueryTimeout, TooManySamples
from promql.value import Matrix, Scalar, Vector
from storage.interfaces import SelectHints, SeriesSet
from storage.labels import Labels
from storage.memory import MemoryStorage

STALE = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]


def lbl(**kv: str) -> Labels:
    return Labels.from_dict(kv)


@pytest.fixture
def store() -> MemoryStorage:
    st = MemoryStorage()
    for i in range(4):
        st.add(
            lbl(__name__="x", i=str(i), g=str(i % 2)),
            np.arange(0, 600_001, 15_000),
            np.arange(41) * float(i + 1),
        )
    return st


def as_dict(v: Vector) -> dict[str, float]:
    return {str(lb): float(x) for lb, x in zip(v.labels, v.values, strict=True)}


async def test_instant_selector_lookback_is_left_open() -> None:
    st = MemoryStorage()
    st.add(lbl(__name__="m"), [0], [1.0])
    e = Engine()
    at_edge = await e.instant_query(st, "m", 300_000)
    inside = await e.instant_query(st, "m", 299_999)
    assert isinstance(at_edge.value, Vector)
    assert len(at_edge.value) == 0
    assert isinstance(inside.value, Vector)
    assert list(inside.value.values) == [1.0]


async def test_stale_marker_ends_series_until_next_sample() -> None:
    st = MemoryStorage()
    st.add(lbl(__name__="m"), [0, 10_000, 20_000, 30_000], [0.0, 1.0, STALE, 2.0])
    e = Engine()
    res = await e.range_query(st, "m", 10_000, 40_000, 10_000)
    assert isinstance(res.value, Matrix)
    assert res.value.timestamps.tolist() == [10_000, 30_000, 40_000]
    assert res.value.values.tolist() == [1.0, 2.0, 2.0]


async def test_range_selector_window_is_left_open(store: MemoryStorage) -> None:
    res = await Engine().instant_query(store, 'x{i="0"}[1m]', 600_000)
    assert isinstance(res.value, Matrix)
    assert res.value.timestamps.tolist() == [555_000, 570_000, 585_000, 600_000]


async def test_range_query_sorted_and_names_dropped(store: MemoryStorage) -> None:
    res = await Engine().range_query(store, "x * 2", 0, 60_000, 30_000)
    m = res.value
    assert isinstance(m, Matrix)
    assert m.labels == sorted(m.labels)
    assert all(not lb.has("__name__") for lb in m.labels)
    assert m.offsets.tolist() == [0, 3, 6, 9, 12]


async def test_scalar_range_query_is_one_series(store: MemoryStorage) -> None:
    res = await Engine().range_query(store, "time() * 2", 0, 60_000, 30_000)
    m = res.value
    assert isinstance(m, Matrix)
    assert m.labels == [Labels()]
    assert m.values.tolist() == [0.0, 60.0, 120.0]


async def test_offset_and_at(store: MemoryStorage) -> None:
    e = Engine()
    off = await e.instant_query(store, 'x{i="1"} offset 1m', 600_000)
    at = await e.instant_query(store, 'x{i="1"} @ 540', 0)
    assert isinstance(off.value, Vector)
    assert isinstance(at.value, Vector)
    assert off.value.values.tolist() == at.value.values.tolist() == [2.0 * 36]


async def test_aggregations_and_matching(store: MemoryStorage) -> None:
    e = Engine()
    s = await e.instant_query(store, "sum by (g) (x)", 600_000)
    assert isinstance(s.value, Vector)
    assert as_dict(s.value) == {'{g="0"}': 40.0 * 4, '{g="1"}': 40.0 * 6}
    r = await e.instant_query(store, "x / on (g) group_left sum by (g) (x)", 600_000)
    assert isinstance(r.value, Vector)
    assert as_dict(r.value)['{g="0", i="0"}'] == pytest.approx(0.25)
    t = await e.instant_query(store, "topk(1, x)", 600_000)
    assert isinstance(t.value, Vector)
    assert [str(x) for x in t.value.labels] == ['x{g="1", i="3"}']


async def test_matching_errors(store: MemoryStorage) -> None:
    e = Engine()
    with pytest.raises(ExecutionError, match="many-to-many matching not allowed"):
        await e.instant_query(store, "x + on(g) x", 600_000)
    with pytest.raises(ExecutionError, match="many-to-one matching must be explicit"):
        await e.instant_query(store, 'x + on(g) x{i="0"}', 600_000)
    store.add(lbl(__name__="y", i="0", g="0"), [600_000], [1.0])
    with pytest.raises(ExecutionError, match="same labelset"):
        await e.instant_query(store, '{__name__=~"x|y", i="0"} * 2', 600_000)


async def test_annotation_carries_position(store: MemoryStorage) -> None:
    res = await Engine().instant_query(store, "quantile(2, x)", 600_000)
    assert res.warnings.warning_list() == [
        "PromQL warning: quantile value should be between 0 and 1, got 2 (1:10)"
    ]


async def test_points_per_series_limit_is_prometheus_s(store: MemoryStorage) -> None:
    # 11,000 steps between start and end (11,001 points) is the most Prometheus takes
    res = await Engine().range_query(store, "time()", 0, 11_000_000, 1000)
    assert isinstance(res.value, Matrix)
    assert len(res.value.timestamps) == MAX_POINTS_PER_SERIES == 11_001
    with pytest.raises(InvalidQuery) as info:
        await Engine().range_query(store, "time()", 0, 11_001_000, 1000)
    assert str(info.value) == (
        "exceeded maximum resolution of 11,000 points per timeseries. "
        "Try decreasing the query resolution (?step=XX)"
    )


async def test_too_many_samples(store: MemoryStorage) -> None:
    with pytest.raises(TooManySamples, match="too many samples"):
        await Engine().instant_query(store, "x[10m]", 600_000, opts=QueryOpts(max_samples=10))


class _SlowQueryable:
    """A Queryable whose selects never finish in time (a stalled remote cluster)."""

    @asynccontextmanager
    async def querier(self, start_ms: int, end_ms: int) -> AsyncIterator[object]:
        yield self

    async def select(self, *args: object, **kwargs: object) -> SeriesSet:
        await asyncio.sleep(30)
        return SeriesSet.empty()


async def test_timeout_while_fetching() -> None:
    with pytest.raises(QueryTimeout):
        await Engine(timeout_s=0.05).instant_query(_SlowQueryable(), "up", 0)  # type: ignore[arg-type]


async def test_cancel_cancels_query() -> None:
    task = asyncio.ensure_future(Engine().instant_query(_SlowQueryable(), "up", 0))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_scalar_and_sort(store: MemoryStorage) -> None:
    e = Engine()
    sc = await e.instant_query(store, 'scalar(x{i="2"})', 600_000)
    assert isinstance(sc.value, Scalar)
    assert sc.value.value == 120.0
    srt = await e.instant_query(store, "sort_desc(x)", 600_000)
    assert isinstance(srt.value, Vector)
    assert srt.value.values.tolist() == [160.0, 120.0, 80.0, 40.0]
    rng = await e.range_query(store, "sort(x)", 0, 60_000, 30_000)
    assert rng.warnings.warning_list() == [
        "PromQL warning: sort is ineffective for range queries since results are always "
        "ordered by labels (1:1)"
    ]


class _RecordingQueryable:
    """Passes selects through to a store, recording the hints the engine sent."""

    def __init__(self, inner: MemoryStorage) -> None:
        self.inner = inner
        self.hints: list[SelectHints | None] = []

    @asynccontextmanager
    async def querier(self, start_ms: int, end_ms: int) -> AsyncIterator[_RecordingQueryable]:
        async with self.inner.querier(start_ms, end_ms) as q:
            self._q = q
            yield self

    async def select(self, matchers, start_ms, end_ms, *, hints=None):  # type: ignore[no-untyped-def]
        self.hints.append(hints)
        return await self._q.select(matchers, start_ms, end_ms, hints=hints)


async def test_sample_limit_reaches_storage_before_it_gathers(store: MemoryStorage) -> None:
    recording = _RecordingQueryable(store)
    with pytest.raises(TooManySamples) as refused:
        await Engine().instant_query(recording, "x[10m]", 600_000, opts=QueryOpts(max_samples=10))
    assert str(refused.value) == (
        "query processing would load too many samples into memory in query execution"
    )
    assert [h.sample_limit for h in recording.hints if h is not None] == [10]
    # Under the limit the same query answers.
    ok = await Engine().instant_query(store, "x[10m]", 600_000, opts=QueryOpts(max_samples=10**6))
    assert ok.value is not None
