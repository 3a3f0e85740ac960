"""`limitk` and `limit_ratio` on float series.

The conformance file limit.test loads native histograms beside its floats, so
nearly all of its evals are skipped; these tests pin the documented contract
on plain float series: limitk keeps at most k series per group, unchanged;
limit_ratio(r) and limit_ratio(-(1 - r)) split a vector into two disjoint
halves, and the split is stable over time and across queries.
"""

from __future__ import annotations

import numpy as np
import pytest

from promql.engine import Engine
from promql.value import Matrix, Vector
from storage.labels import Labels
from storage.memory import MemoryStorage

SERIES = 200
AT = 600_000


@pytest.fixture
def store() -> MemoryStorage:
    st = MemoryStorage()
    for i in range(SERIES):
        st.add(
            Labels.from_dict({"__name__": "x", "i": str(i), "g": f"g{i % 4}"}),
            np.arange(0, AT + 1, 15_000),
            np.full(41, float(i)),
        )
    return st


async def _vector(store: MemoryStorage, query: str) -> dict[Labels, float]:
    res = await Engine().instant_query(store, query, AT)
    assert isinstance(res.value, Vector)
    return dict(zip(res.value.labels, res.value.values.tolist(), strict=True))


async def test_limitk_keeps_at_most_k_series_per_group_unchanged(store: MemoryStorage) -> None:
    everything = await _vector(store, "x")
    kept = await _vector(store, "limitk by (g) (3, x)")
    assert len(kept) == 12
    groups = [lbl.get("g") for lbl in kept]
    assert sorted(set(groups)) == ["g0", "g1", "g2", "g3"]
    assert all(groups.count(g) == 3 for g in set(groups))
    assert all(everything[lbl] == value for lbl, value in kept.items())


async def test_limitk_with_k_beyond_the_group_keeps_all(store: MemoryStorage) -> None:
    assert len(await _vector(store, "limitk(1000, x)")) == SERIES
    assert await _vector(store, "limitk(0, x)") == {}


async def test_limit_ratio_and_its_complement_split_the_vector(store: MemoryStorage) -> None:
    everything = await _vector(store, "x")
    part = await _vector(store, "limit_ratio(0.3, x)")
    rest = await _vector(store, "limit_ratio(-0.7, x)")
    assert not set(part) & set(rest)
    assert {**part, **rest} == everything
    # A hash-based choice: roughly the asked share, not an exact count.
    assert 0.15 * SERIES < len(part) < 0.45 * SERIES


async def test_limit_ratio_bounds(store: MemoryStorage) -> None:
    assert len(await _vector(store, "limit_ratio(1, x)")) == SERIES
    assert await _vector(store, "limit_ratio(0, x)") == {}
    assert len(await _vector(store, "limit_ratio(-1, x)")) == SERIES


async def test_limit_ratio_choice_is_stable_over_steps_and_queries(store: MemoryStorage) -> None:
    chosen = set(await _vector(store, "limit_ratio(0.5, x)"))
    res = await Engine().range_query(store, "limit_ratio(0.5, x)", 0, AT, 60_000)
    assert isinstance(res.value, Matrix)
    assert set(res.value.labels) == chosen
    counts = np.diff(res.value.offsets)
    assert (counts == 11).all(), "every chosen series is there at every step"
