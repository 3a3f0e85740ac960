"""Decimal coding: every float64 comes back bit for bit, and decimals become small integers."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from remote_write.batch import STALE_NAN
from storage.blocks import decimal


def round_trip(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    scales = decimal.choose_scales(values, offsets)
    ints, is_int = decimal.split(values, offsets, scales)
    floats = np.where(is_int, 0.0, values)  # what the float column holds where ints do
    row_scale = np.repeat(scales, np.diff(offsets))
    return decimal.join(floats, ints, is_int, row_scale)


special = st.sampled_from([np.nan, STALE_NAN, np.inf, -np.inf, -0.0, 0.0, 5e-324, 1e308])
decimals = st.builds(lambda n, k: n / 10**k, st.integers(-(10**9), 10**9), st.integers(0, 6))
values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), decimals, special)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(values, max_size=30), min_size=1, max_size=6))
def test_every_value_round_trips_bit_for_bit(series):
    flat = np.array([v for s in series for v in s], dtype=np.float64)
    offsets = np.zeros(len(series) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in series], out=offsets[1:])
    got = round_trip(flat, offsets)
    assert got.view(np.uint64).tolist() == flat.view(np.uint64).tolist()


def test_scales_are_the_smallest_that_fit():
    series = [
        np.cumsum(np.ones(50)),  # integers
        np.round(np.linspace(0, 10, 50), 2),  # two decimals
        np.linspace(0, 1, 50) * np.pi,  # no short decimal form
        np.array([np.nan, STALE_NAN]),  # nothing finite
    ]
    flat = np.concatenate(series)
    offsets = np.zeros(len(series) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in series], out=offsets[1:])
    assert decimal.choose_scales(flat, offsets).tolist() == [0, 2, decimal.FLOAT, decimal.FLOAT]


def test_a_few_odd_values_do_not_spoil_a_series():
    values = np.arange(1000, dtype=np.float64)
    values[[10, 500]] = [0.1 + 0.2, STALE_NAN]
    offsets = np.array([0, 1000])
    scales = decimal.choose_scales(values, offsets)
    assert scales.tolist() == [0]
    ints, is_int = decimal.split(values, offsets, scales)
    assert (~is_int).sum() == 2
    assert ints[999] == 999
