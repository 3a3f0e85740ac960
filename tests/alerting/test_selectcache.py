"""The per-evaluation select cache: answers equal storage's, and never go stale."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.selectcache import SelectCache, cut
from storage.interfaces import Series, SeriesSet
from storage.labels import Labels, Matcher, MatchType
from storage.memory import MemoryStorage


def store_with(series: dict[str, list[int]]) -> MemoryStorage:
    storage = MemoryStorage()
    for name, ts in series.items():
        storage.add(Labels.from_dict({"__name__": "m", "s": name}), ts, [float(t) for t in ts])
    return storage


def as_dict(found: SeriesSet) -> dict[str, list[int]]:
    return {s.labels.get("s"): s.timestamps.tolist() for s in found.series}


@settings(max_examples=80, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from("abcdef"),
        st.lists(st.integers(-50, 150), min_size=0, max_size=12, unique=True).map(sorted),
    ),
    st.integers(-60, 160),
    st.integers(0, 120),
)
def test_cut_equals_selecting_the_smaller_range(
    series: dict[str, list[int]], start: int, length: int
) -> None:
    every = SeriesSet.from_series(
        [
            Series(
                Labels.from_dict({"__name__": "m", "s": k}),
                np.array(v, dtype=np.int64),
                np.array(v, dtype=np.float64),
            )
            for k, v in series.items()
        ]
    )
    wanted = {k: [t for t in v if start <= t <= start + length] for k, v in series.items()}
    got = cut(every, start, start + length)
    assert as_dict(got) == {k: v for k, v in wanted.items() if v}
    keys = [lbl.get("s") for lbl in got.labels]
    assert keys == sorted(keys)
    assert got.values.tolist() == [float(t) for k in keys for t in wanted[k]]


async def test_a_wider_select_answers_a_narrower_one_and_writes_invalidate() -> None:
    storage = store_with({"a": [0, 10, 20, 30], "b": [5, 25]})
    cache = SelectCache(storage)
    name = [Matcher(MatchType.EQ, "__name__", "m")]
    async with cache.querier(0, 30) as q:
        wide = await q.select(name, 0, 30)
        narrow = await q.select(name, 10, 20)
        again = await q.select(list(reversed(name)), 0, 30)
    assert as_dict(wide) == {"a": [0, 10, 20, 30], "b": [5, 25]}
    assert as_dict(narrow) == {"a": [10, 20]}
    assert again is wide
    assert (cache.misses, cache.hits) == (1, 2)
    # A write of other metrics keeps the answer; a write of `m` (or of anything a
    # regex on the name could match) drops it.
    cache.invalidate(["ALERTS"])
    async with cache.querier(0, 30) as q:
        assert await q.select(name, 0, 30) is wide
    cache.invalidate(["m"])
    storage.add(Labels.from_dict({"__name__": "m", "s": "c"}), [15], [1.0])
    async with cache.querier(0, 30) as q:
        assert as_dict(await q.select(name, 0, 30)) == {
            "a": [0, 10, 20, 30],
            "b": [5, 25],
            "c": [15],
        }
    regex = [Matcher(MatchType.RE, "__name__", "m|n")]
    async with cache.querier(0, 30) as q:
        first = await q.select(regex, 0, 30)
    cache.invalidate(["n"])
    async with cache.querier(0, 30) as q:
        assert await q.select(regex, 0, 30) is not first


def test_cut_of_nothing() -> None:
    empty = SeriesSet.empty()
    assert cut(empty, 0, 10) is empty
    one = SeriesSet([Labels.from_dict({"s": "a"})], np.array([0, 2]), np.array([1, 2]), np.ones(2))
    assert len(cut(one, 5, 9)) == 0
