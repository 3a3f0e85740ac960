"""The head's exemplar ring: bounded, per series, Prometheus's checks."""

from __future__ import annotations

import numpy as np

from remote_write.exemplars import ExemplarBatch
from storage.head.exemplars import ExemplarRing

TRACE = (("trace_id", "abc"),)


def batch(rows: list[tuple[int, int, float, tuple]]) -> ExemplarBatch:
    """(series index, timestamp, value, labels) rows."""
    return ExemplarBatch(
        np.array([r[0] for r in rows], dtype=np.int32),
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype=np.float64),
        [r[3] for r in rows],
    )


def stored(ring: ExemplarRing, sids: list[int], start: int = 0, end: int = 1 << 40):
    return {
        s.sid: list(zip(s.timestamps.tolist(), s.values.tolist(), s.labels, strict=True))
        for s in ring.select(np.array(sids, dtype=np.int64), start, end)
    }


def test_exemplars_are_read_per_series_and_time_range_oldest_first():
    ring = ExemplarRing(10)
    sids = np.array([7, 9], dtype=np.int64)  # batch series 0 -> id 7, 1 -> id 9
    n, refused = ring.add(sids, batch([(1, 20, 2.0, TRACE), (0, 10, 1.0, TRACE), (1, 5, 0.5, ())]))
    assert (n, refused) == (3, {})
    assert stored(ring, [7, 9]) == {7: [(10, 1.0, TRACE)], 9: [(5, 0.5, ()), (20, 2.0, TRACE)]}
    assert stored(ring, [9], start=6, end=25) == {9: [(20, 2.0, TRACE)]}
    assert stored(ring, [8]) == {}


def test_a_full_ring_overwrites_its_oldest_exemplars():
    ring = ExemplarRing(3)
    sids = np.array([1], dtype=np.int64)
    for t in range(1, 6):
        ring.add(sids, batch([(0, t, float(t), TRACE)]))
    assert [t for t, _, _ in stored(ring, [1])[1]] == [3, 4, 5]
    assert len(ring) == 3


def test_out_of_order_and_duplicate_exemplars_are_not_stored():
    ring = ExemplarRing(10)
    sids = np.array([1], dtype=np.int64)
    ring.add(sids, batch([(0, 100, 1.0, TRACE)]))
    # The same exemplar again (a retry) is skipped silently; an older or an equal
    # timestamp with another value is out of order.
    n, refused = ring.add(
        sids, batch([(0, 100, 1.0, TRACE), (0, 90, 3.0, TRACE), (0, 100, 2.0, TRACE)])
    )
    assert n == 0
    assert refused == {"exemplar_out_of_order": 2}
    n, refused = ring.add(sids, batch([(0, 101, 4.0, TRACE)]))
    assert (n, refused) == (1, {})


def test_long_labels_and_unresolved_series_are_refused():
    ring = ExemplarRing(10)
    sids = np.array([1, -1], dtype=np.int64)  # series 1 of the batch was rejected
    long = (("trace_id", "x" * 121),)  # 8 + 121 > 128 characters
    n, refused = ring.add(sids, batch([(0, 1, 1.0, long), (1, 1, 1.0, TRACE), (0, 2, 1.0, TRACE)]))
    assert n == 1
    assert refused == {"exemplar_labels_too_long": 1}
    assert stored(ring, [1]) == {1: [(2, 1.0, TRACE)]}


def test_a_zero_sized_ring_keeps_nothing():
    ring = ExemplarRing(0)
    assert ring.add(np.array([1]), batch([(0, 1, 1.0, TRACE)])) == (0, {})
    assert stored(ring, [1]) == {}
