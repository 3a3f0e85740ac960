"""HA dedup: the numpy penalty merge against Thanos's algorithm run sample by sample."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.dedup import dedup_series_set, penalty_merge
from storage.interfaces import Series, SeriesSet
from storage.labels import Labels
from tests.support.dedup_reference import reference_penalty_merge


def replica(draw_steps: list[int], start: int, drops: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    ts = start + np.cumsum(np.asarray(draw_steps, dtype=np.int64))
    keep = np.asarray(drops[: len(ts)] + [True] * (len(ts) - len(drops)), dtype=bool)[: len(ts)]
    ts = np.unique(ts[keep])
    return ts, np.arange(len(ts), dtype=np.float64) + start % 97


replicas = st.tuples(
    st.lists(st.sampled_from([1, 500, 1000, 5000, 14_000, 15_000, 16_000, 90_000]), max_size=150),
    st.integers(0, 60_000),
    st.lists(st.booleans(), max_size=150),
)


@settings(max_examples=300, deadline=None)
@given(replicas, replicas)
def test_penalty_merge_matches_the_reference(a, b):
    ta, va = replica(*a)
    tb, vb = replica(*b)
    ts, vs = penalty_merge(ta, va, tb, vb)
    want = reference_penalty_merge(
        list(zip(ta.tolist(), va.tolist(), strict=True)),
        list(zip(tb.tolist(), vb.tolist(), strict=True)),
    )
    assert list(zip(ts.tolist(), vs.tolist(), strict=True)) == want


def test_a_gap_in_one_replica_is_filled_from_the_other_without_doubling():
    ta = np.arange(0, 600_000, 15_000, dtype=np.int64)
    ta = ta[(ta < 150_000) | (ta > 300_000)]
    tb = np.arange(2_000, 600_000, 15_000, dtype=np.int64)
    ts, vs = penalty_merge(ta, np.zeros(len(ta)), tb, np.ones(len(tb)))
    # a's 165 s gap becomes one step of about two intervals at the switch: the
    # penalty keeps b from contributing a sample right after a's last one
    assert np.diff(ts).max() <= 2 * 15_000 + 2_000
    assert np.diff(ts).min() >= 13_000  # no doubled samples
    assert vs[:10].tolist() == [0.0] * 10  # follows a until its gap, then b


def test_dedup_series_set_drops_replica_labels_and_keeps_label_order():
    def s(replica: str, job: str, ts: list[int]) -> Series:
        lbl = Labels.from_dict({"__name__": "up", "job": job, "replica": replica})
        return Series(lbl, np.asarray(ts, dtype=np.int64), np.ones(len(ts)))

    ss = SeriesSet.from_series(
        [
            s("a", "x", [0, 15_000]),
            s("b", "x", [1_000, 16_000, 31_000, 46_000, 61_000]),
            s("b", "y", [5]),
        ]
    )
    out = dedup_series_set(ss, ["replica"])
    assert [str(lbl) for lbl in out.labels] == ['up{job="x"}', 'up{job="y"}']
    # a until it ends, then b after the penalty (twice a's last interval)
    assert out.timestamps.tolist() == [0, 15_000, 46_000, 61_000, 5]
    assert dedup_series_set(out, ["replica"]) is out  # nothing to do: same set back


@pytest.mark.parametrize("empty", ["a", "b", "both"])
def test_empty_replicas(empty):
    ts = np.array([1, 2, 3], dtype=np.int64)
    none = np.zeros(0, dtype=np.int64)
    ta = none if empty in ("a", "both") else ts
    tb = none if empty in ("b", "both") else ts
    got, _ = penalty_merge(ta, np.zeros(len(ta)), tb, np.zeros(len(tb)))
    assert got.tolist() == ([] if empty == "both" else [1, 2, 3])
