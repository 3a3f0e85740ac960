"""topk / bottomk over many series pick the right values at every step."""

from __future__ import annotations

import numpy as np
import pytest

from promql.engine import Engine
from storage.labels import Labels
from storage.memory import MemoryStorage


@pytest.mark.parametrize("op", ["topk", "bottomk"])
@pytest.mark.parametrize(("series", "k", "distinct"), [(600, 7, 10**6), (600, 7, 5), (40, 30, 50)])
async def test_selected_values_are_the_k_extremes(op: str, series: int, k: int, distinct: int):
    rng = np.random.default_rng(series + k + distinct)
    st = MemoryStorage()
    ts = np.arange(0, 600_001, 15_000)
    values = rng.integers(0, distinct, (series, len(ts))).astype(float)
    gaps = rng.random((series, len(ts))) < 0.2  # series missing at some steps
    for i in range(series):
        keep = ~gaps[i]
        st.add(Labels.from_dict({"__name__": "m", "i": str(i)}), ts[keep], values[i][keep])
    res = await Engine(lookback_ms=1).range_query(st, f"{op}({k}, m)", 0, 600_000, 15_000)
    m = res.value
    got: dict[int, list[float]] = {}
    for s in range(len(m)):
        lo, hi = int(m.offsets[s]), int(m.offsets[s + 1])
        for t, v in zip(m.timestamps[lo:hi].tolist(), m.values[lo:hi].tolist(), strict=True):
            got.setdefault(t, []).append(v)
    for j, t in enumerate(ts.tolist()):
        present = np.sort(values[~gaps[:, j], j])
        want = present[::-1][:k] if op == "topk" else present[:k]
        assert sorted(got.get(t, [])) == sorted(want.tolist()), t
