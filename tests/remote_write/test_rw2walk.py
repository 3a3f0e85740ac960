"""The usual-layout walk finds exactly the fields the general scan finds, or declines."""

from __future__ import annotations

import numpy as np
import pytest

from remote_write.pbscan import scan_fields
from remote_write.rw2walk import MAX_SAMPLES, walk_usual
from remote_write.serieswalk import join_series
from tests.support.rw2 import SeriesV2, build_v2

T = 1_700_000_000_000


def both(series: list[SeriesV2]):
    request = build_v2(series)
    joined = join_series([ts.SerializeToString() for ts in request.timeseries])
    fast = walk_usual(joined.buf, joined.starts, joined.ends)
    slow = scan_fields(joined.buf, joined.starts, joined.ends, what="TimeSeries")
    return fast, slow


def table(f) -> list[tuple[int, int, int, int, int, int]]:
    rows = zip(
        f.msg.tolist(),
        f.number.tolist(),
        f.wire.tolist(),
        f.start.tolist(),
        f.end.tolist(),
        f.value.tolist(),
        strict=True,
    )
    return sorted(rows, key=lambda r: (r[1], r[0], r[3]))


LONG = tuple((f"label_{k:03d}", "v" * 40) for k in range(200))  # refs field over 127 bytes


@pytest.mark.parametrize(
    "series",
    [
        [SeriesV2((("__name__", "a"),), [(T, 1.0)])],
        [
            SeriesV2(
                (("__name__", "a"), ("job", "x")), [(T, 1.0), (T + 1, 2.0)], metric_type="counter"
            ),
            SeriesV2((("__name__", "b"),), [(T, 3.0)], metric_type="gauge", created_ms=T - 9),
            SeriesV2((("__name__", "c"),), []),  # no samples at all
            SeriesV2((("__name__", "d"), *LONG), [(0, 0.0), (-1, -2.5)], help="h" * 300),
        ],
        [  # a sender catching up: long series, walked in one step each
            SeriesV2(
                (("__name__", "a"),), [(T + k, 1.5) for k in range(2000)], metric_type="gauge"
            ),
            SeriesV2((("__name__", "b"),), [(T, 2.5)]),
            SeriesV2((("__name__", "c"),), [(T + k, 3.5) for k in range(MAX_SAMPLES + 1)]),
        ],
    ],
    ids=["one", "usual", "long-series"],
)
def test_the_walk_matches_the_general_scan(series: list[SeriesV2]) -> None:
    fast, slow = both(series)
    assert fast is not None
    assert table(fast) == table(slow)


@pytest.mark.parametrize(
    "series",
    [
        [SeriesV2((("__name__", "a"),), [(T, 1.0)], exemplars=[((("t", "1"),), 1.0, T)])],
        [SeriesV2((("__name__", "h"),), histograms=[{"count_int": 1, "timestamp": T}])],
        # Past MAX_SAMPLES, a series' samples must have one size (here: some values
        # are 0.0, whose field is left out).
        [SeriesV2((("__name__", "a"),), [(T + k, float(k % 2)) for k in range(MAX_SAMPLES + 9)])],
    ],
    ids=["exemplars", "histograms", "long-series-mixed-sizes"],
)
def test_other_layouts_are_left_to_the_general_scan(series: list[SeriesV2]) -> None:
    fast, slow = both(series)
    assert fast is None
    assert slow is not None
    assert len(slow.msg) > 0


def test_an_empty_request_walks_to_nothing() -> None:
    joined = join_series([])
    assert walk_usual(joined.buf, joined.starts, joined.ends) is None
    assert np.asarray(joined.starts).size == 0
