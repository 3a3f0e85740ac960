"""The vectorized window search agrees with a plain per-series search."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from promql.eval.selectors import count_le, search


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.integers(-50, 50), max_size=8), min_size=1, max_size=5),
    st.integers(-60, 60),
    st.integers(1, 7),
    st.integers(1, 6),
)
def test_count_le_matches_searchsorted(series: list[list[int]], t0: int, step: int, n: int) -> None:
    arrays = [np.unique(np.array(s, dtype=np.int64)) for s in series]
    offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
    np.cumsum([len(a) for a in arrays], out=offsets[1:])
    ts = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
    times = t0 + step * np.arange(n, dtype=np.int64)
    expected = np.array(
        [np.searchsorted(a, times, side="right") + offsets[i] for i, a in enumerate(arrays)]
    )
    assert (count_le(offsets, ts, times) == expected).all()
    irregular = np.sort(times + np.arange(n) ** 2)
    expected2 = np.array(
        [np.searchsorted(a, irregular, side="left") + offsets[i] for i, a in enumerate(arrays)]
    )
    assert (search(offsets, ts, irregular, "left") == expected2).all()
