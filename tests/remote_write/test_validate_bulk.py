"""The bulk checks say "valid and canonical" exactly when `check_series` finds no
problem and the labels are already sorted with no empty value."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from remote_write.validate import (
    SeriesLimits,
    canonical_sets,
    check_series,
    good_pairs,
    per_series,
)

NAMES = st.sampled_from(["__name__", "job", "a", "b", "", "1x", "x-y", "zz", "é"])
VALUES = st.sampled_from(["up", "v", "", "a:b", "1bad", "x" * 9, "é", "a\udcffb", "ns"])
SERIES = st.lists(st.tuples(NAMES, VALUES), min_size=0, max_size=6)
LIMITS = SeriesLimits(max_label_names=4, max_label_name_length=3, max_label_value_length=8)


def bulk(series_list, limits):
    names = [n for s in series_list for n, _ in s]
    values = [v for s in series_list for _, v in s]
    offsets = np.zeros(len(series_list) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in series_list], out=offsets[1:])
    bad = ~good_pairs(names, values, limits)
    fast = canonical_sets(names, offsets, limits) & (per_series(bad, offsets) == 0)
    return fast.tolist()


@settings(max_examples=300, deadline=None)
@given(st.lists(SERIES, min_size=1, max_size=5), st.sampled_from([LIMITS, SeriesLimits()]))
def test_bulk_verdict_matches_check_series(series_list, limits):
    for pairs, fast in zip(series_list, bulk(series_list, limits), strict=True):
        names = [n for n, _ in pairs]
        canonical = (
            check_series(tuple(pairs), limits) is None
            and names == sorted(set(names))
            and all(v for _, v in pairs)
        )
        assert fast == canonical, pairs
