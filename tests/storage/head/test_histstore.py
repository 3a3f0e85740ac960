"""The head's histogram store against a plain model: rows added in many batches
(pool chunks made tiny, so buckets straddle chunks), folded, selected, dropped
by retention (the pools then rebuilt) read back exactly, first write winning a
timestamp."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remote_write.histograms import HistogramBatch
from storage.head import histstore
from storage.head.histstore import HistogramStore


def batch_of(rows: list[tuple[int, int, int, int]], tag: float) -> HistogramBatch:
    """Rows (series, time, positive buckets, negative buckets) as a batch; counts
    and indexes carry the row's identity so that a mix-up shows."""
    n = len(rows)
    pos_n = [r[2] for r in rows]
    neg_n = [r[3] for r in rows]
    pos_off = np.concatenate(([0], np.cumsum(pos_n))).astype(np.int64)
    neg_off = np.concatenate(([0], np.cumsum(neg_n))).astype(np.int64)
    cv_n = [1 if r[2] % 2 else 0 for r in rows]
    cv_off = np.concatenate(([0], np.cumsum(cv_n))).astype(np.int64)
    stamp = [r[0] * 1000.0 + r[1] + tag for r in rows]
    return HistogramBatch(
        series_idx=np.array([r[0] for r in rows], dtype=np.int32),
        timestamps=np.array([r[1] for r in rows], dtype=np.int64),
        schema=np.full(n, 3, dtype=np.int32),
        count=np.array(stamp),
        sum=np.array(stamp) * 2,
        zero_threshold=np.zeros(n),
        zero_count=np.zeros(n),
        reset_hint=np.zeros(n, dtype=np.uint8),
        float_counts=np.zeros(n, dtype=bool),
        pos_offsets=pos_off,
        pos_index=np.concatenate([np.arange(k, dtype=np.int32) for k in pos_n] + [[]]).astype(
            np.int32
        ),
        pos_counts=np.repeat(stamp, pos_n).astype(np.float64),
        neg_offsets=neg_off,
        neg_index=np.concatenate([-np.arange(k, dtype=np.int32) for k in neg_n] + [[]]).astype(
            np.int32
        ),
        neg_counts=np.repeat(stamp, neg_n).astype(np.float64) + 0.5,
        cv_offsets=cv_off,
        custom_values=np.repeat(stamp, cv_n).astype(np.float64),
    )


row = st.tuples(st.integers(0, 6), st.integers(0, 40), st.integers(0, 9), st.integers(0, 3))


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.lists(row, min_size=1, max_size=20), min_size=1, max_size=25),
    st.integers(0, 40),
    st.integers(0, 45),
)
def test_store_reads_back_what_was_written(
    batches: list[list[tuple[int, int, int, int]]], horizon: int, fold_min: int
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(histstore, "CHUNK_SHIFT", 4)
        mp.setattr(histstore, "_CHUNK", 16)
        mp.setattr(histstore, "_MASK", 15)
        mp.setattr(histstore, "FOLD_MIN_ROWS", fold_min)
        store = HistogramStore()
        model: dict[tuple[int, int], tuple[float, int, int]] = {}
        for seq, rows in enumerate(batches):
            store.add(batch_of(rows, tag=seq / 100), seq)
            for s, t, p, n in rows:
                model.setdefault((s, t), (s * 1000.0 + t + seq / 100, p, n))
        check(store, model, 0, 40)
        check(store, model, 5, 17)
        store.drop_before(horizon)
        model = {k: v for k, v in model.items() if k[1] >= horizon}
        check(store, model, 0, 40)
        assert len(store) == len(model)


def check(store: HistogramStore, model: dict, start: int, end: int) -> None:
    sids = np.array([0, 2, 3, 6], dtype=np.int64)
    got = store.select(sids, start, end)
    want = sorted(
        (s, t, v) for (s, t), v in model.items() if s in sids.tolist() and start <= t <= end
    )
    assert list(zip(got.series_idx.tolist(), got.timestamps.tolist(), strict=True)) == [
        (s, t) for s, t, _ in want
    ]
    assert got.count.tolist() == [v[0] for _, _, v in want]
    for i, (_, _, (stamp, p, n)) in enumerate(want):
        lo, hi = got.pos_offsets[i], got.pos_offsets[i + 1]
        assert got.pos_index[lo:hi].tolist() == list(range(p))
        assert got.pos_counts[lo:hi].tolist() == [stamp] * p
        lo, hi = got.neg_offsets[i], got.neg_offsets[i + 1]
        assert got.neg_index[lo:hi].tolist() == [-k for k in range(n)]
        assert got.neg_counts[lo:hi].tolist() == [stamp + 0.5] * n
        lo, hi = got.cv_offsets[i], got.cv_offsets[i + 1]
        assert got.custom_values[lo:hi].tolist() == ([stamp] if p % 2 else [])


def test_retention_rebuilds_the_pools_when_most_is_dead() -> None:
    store = HistogramStore()
    store.add(batch_of([(1, t, 8, 0) for t in range(100)], 0.0), 1)
    store.drop_before(90)
    assert store._pos.size == 10 * 8  # rebuilt: only the 10 live rows' buckets
    got = store.select(np.array([1]), 0, 1000)
    assert got.timestamps.tolist() == list(range(90, 100))
    assert got.pos_counts.tolist() == [1000.0 + t for t in range(90, 100) for _ in range(8)]
