"""*_over_time functions, with the extreme-value cases of functions.test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.promql.functions.helpers import (
    as_dict,
    call,
    call_ctx,
    ms,
    range_of,
    row,
    scalar,
    series,
)


def one(name: str, points: str, interval: str, at: str, window: str, *extra) -> float | None:
    data = [series("metric", points, interval)]
    t = [ms(at)]
    args = (*extra, range_of(data, t, ms(window)))
    got = as_dict(call(name, t, *args))
    return got.get("{}", got.get("metric"))


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        ("1 2 3 4 5", 3),
        ("1 2 3 4 Inf", math.inf),
        ("1 2 3 4 -Inf", -math.inf),
        ("1 2 3 Inf -Inf", math.nan),
        ("Inf 0 Inf", math.inf),
        ("Inf Inf Inf -Inf", math.nan),
        ("1 2 3 -Inf -Inf", -math.inf),
        ("-Inf 0 -Inf", -math.inf),
        ("-Inf -Inf -Inf Inf", math.nan),
        ("1 2 -Inf -Inf Inf", math.nan),
        ("9.988465674311579e+307 9.988465674311579e+307", 9.988465674311579e307),
        (
            "-9.988465674311579e+307 -9.988465674311579e+307 -9.988465674311579e+307",
            -9.988465674311579e307,
        ),
        ("-9.988465674311579e+307 9.988465674311579e+307", 0),
        ("1 2 3 NaN NaN", math.nan),
    ],
)
def test_avg_over_time_extremes(points, expected):
    got = one("avg_over_time", points, "10s", "55s", "1m")
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected)


def test_sum_over_time_overflow_and_cancellation():
    assert (
        one("sum_over_time", "9.988465674311579e+307 9.988465674311579e+307", "10s", "55s", "1m")
        == math.inf
    )
    assert one("sum_over_time", "1 1e100 1 -1e100", "10s", "1m", "2m") == 2
    assert one("avg_over_time", "1 1e100 1 -1e100", "10s", "1m", "2m") == 0.5


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        ("1e10 1e-6 1e-6 1e-6 1e-6 1e-6", 1.6666666666666675e09),
        (
            "5.30921651659898 0.961118537914768 1.62091361305318 0.865089463758091 "
            "0.323055185914577 0.951811357687154",
            1.67186744582113,
        ),
        ("1.78264e50 0.76342771 1.9592258 7.69805412 458.90154", 3.56528e49),
        ("0.76342771 1.9592258 7.69805412 1.78264e50 458.90154", 3.56528e49),
        ("1.78264E+50 0.76342771 1.9592258 2.258E+220 7.69805412 458.90154", 3.76333333333333e219),
        (
            "-1.78264E+50 0.76342771 1.9592258 2.258E+220 7.69805412 -458.90154",
            3.76333333333333e219,
        ),
        (
            "-1.78264E+50 0.76342771 1.9592258 -2.258E+220 7.69805412 -458.90154",
            -3.76333333333333e219,
        ),
        (
            "-1.78264E+215 0.76342771 1.9592258 2.258E+220 7.69805412 -458.90154",
            3.76330362266667e219,
        ),
        (
            "-1.78264E+215 0.76342771 1.9592258 2.258E+220 7.69805412 1.78264E+215 -458.90154",
            3.225714285714286e219,
        ),
        (
            "-1.78264E+219 0.76342771 1.9592258 2.3757689E+217 -2.3757689E+217 2.258E+220 "
            "7.69805412 1.78264E+219 -458.90154",
            2.5088888888888888e219,
        ),
    ],
)
def test_avg_over_time_mixed_magnitudes(points, expected):
    assert one("avg_over_time", points, "5s", "55s", "1m") == pytest.approx(expected, rel=1e-6)


def test_avg_over_time_reproduces_kahans_failure_exactly():
    # Prometheus's data: the large values cancel exactly; Kahan summation
    # still ends at 0 (the true mean would be -44.848083237000004).
    points = (
        "-2.258E+220 -1.78264E+219 0.76342771 1.9592258 2.3757689E+217 "
        "-2.3757689E+217 2.258E+220 7.69805412 1.78264E+219 -458.90154"
    )
    assert one("avg_over_time", points, "5s", "55s", "1m") == 0


@pytest.mark.parametrize("window", ["100s", "110s", "120s", "130s"])
def test_avg_of_a_constant_is_exactly_the_constant(window):
    assert one("avg_over_time", "52+0x100", "10s", "10m", window) == 52


@pytest.mark.parametrize("window", [1000, 1001, 1002, 1003, 2000, 2001, 2002, 2003, 3000, 3003])
def test_sum_over_time_on_dense_samples(window):
    assert one("sum_over_time", "1+0x4000", "1ms", "4s", f"{window}ms") == window


def test_stdvar_and_stddev():
    assert one("stdvar_over_time", "0 8 8 2 3", "10s", "1m", "2m") == pytest.approx(10.56)
    assert one("stddev_over_time", "0 8 8 2 3", "10s", "1m", "2m") == pytest.approx(3.249615)
    constant = "1.5990505637277868 1.5990505637277868 1.5990505637277868"
    assert one("stdvar_over_time", constant, "10s", "55s", "1m") == 0
    assert one("stddev_over_time", constant, "10s", "55s", "1m") == 0


def test_stdvar_fast_path_agrees_with_numpy_over_a_range_query():
    rng_ = np.random.default_rng(3)
    vals = " ".join(f"{v:.9f}" for v in 5e5 + rng_.normal(0, 3, 400))
    data = [series("g", vals, "15s")]
    steps = [ms("20m") + i * ms("30s") for i in range(40)]
    rng = range_of(data, steps, ms("5m"))
    got = call("stdvar_over_time", steps, rng)
    for j in range(len(steps)):
        window = rng.values[rng.lo[0, j] : rng.hi[0, j]]
        assert got.values[0, j] == pytest.approx(np.var(window), rel=1e-9)


def test_mad_over_time():
    assert one("mad_over_time", "4 6 2 1 999 1 2", "10s", "70s", "70s") == 1
    assert one("mad_over_time", "1 2 3 4 5", "10s", "40s", "50s") == 1
    assert one("mad_over_time", "7 7 7 7 7", "10s", "40s", "50s") == 0
    assert one("mad_over_time", "5", "10s", "0s", "10s") == 0
    assert math.isnan(one("mad_over_time", "1 2 NaN 4", "10s", "30s", "40s"))


DATA = [
    series('data{type="numbers"}', "2 0 3", "10s"),
    series('data{type="some_nan"}', "2 0 NaN", "10s"),
    series('data{type="some_nan2"}', "2 NaN 1", "10s"),
    series('data{type="some_nan3"}', "NaN 0 1", "10s"),
    series('data{type="only_nan"}', "NaN NaN NaN", "10s"),
    series('data_sparse{type="sparse_numbers"}', "_ 5 2 _ 4 _", "10s"),
]


def by_type(out) -> dict[str, float]:
    return {k.split('"')[-2]: v for k, v in as_dict(out).items()}


def assert_same(got: dict[str, float], want: dict[str, float]) -> None:
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert (math.isnan(v) and math.isnan(got[k])) or got[k] == v, k


def test_min_max_ignore_nan_unless_all_nan():
    t = [ms("1m")]
    rng = range_of(DATA, t, ms("2m"))
    nan = math.nan
    assert_same(
        by_type(call("min_over_time", t, rng)),
        {
            "numbers": 0,
            "some_nan": 0,
            "some_nan2": 1,
            "some_nan3": 0,
            "only_nan": nan,
            "sparse_numbers": 2,
        },
    )
    assert_same(
        by_type(call("max_over_time", t, rng)),
        {
            "numbers": 3,
            "some_nan": 2,
            "some_nan2": 2,
            "some_nan3": 1,
            "only_nan": nan,
            "sparse_numbers": 5,
        },
    )


def test_min_max_sparse_table_path_matches_brute_force():
    rng_ = np.random.default_rng(11)
    vals = " ".join("NaN" if rng_.random() < 0.05 else f"{v:.3f}" for v in rng_.normal(0, 10, 500))
    reverse = " ".join(reversed(vals.split()))
    data = [series("g", vals, "15s"), series('g{b="1"}', reverse, "15s")]
    steps = [ms("10m") + i * ms("15s") for i in range(200)]
    rng = range_of(data, steps, ms("5m"))
    got_max = call("max_over_time", steps, rng)
    got_min = call("min_over_time", steps, rng)
    for i in range(2):
        for j in range(len(steps)):
            w = rng.values[rng.lo[i, j] : rng.hi[i, j]]
            if not len(w):
                continue
            want_max = np.nan if np.isnan(w).all() else np.nanmax(w)
            want_min = np.nan if np.isnan(w).all() else np.nanmin(w)
            assert np.isclose(got_max.values[i, j], want_max, equal_nan=True)
            assert np.isclose(got_min.values[i, j], want_min, equal_nan=True)


def test_last_and_first_keep_the_name_count_and_present_drop_it():
    t = [ms("1m")]
    rng = range_of(DATA, t, ms("2m"))
    last = as_dict(call("last_over_time", t, rng))
    assert last['data{type="numbers"}'] == 3
    assert math.isnan(last['data{type="some_nan"}'])
    assert last['data_sparse{type="sparse_numbers"}'] == 4
    first = as_dict(call("first_over_time", t, rng))
    assert first['data{type="numbers"}'] == 2
    assert math.isnan(first['data{type="some_nan3"}'])
    assert first['data_sparse{type="sparse_numbers"}'] == 5
    assert by_type(call("count_over_time", t, rng))["sparse_numbers"] == 3
    assert set(as_dict(call("present_over_time", t, rng))) == {
        '{type="numbers"}',
        '{type="some_nan"}',
        '{type="some_nan2"}',
        '{type="some_nan3"}',
        '{type="only_nan"}',
        '{type="sparse_numbers"}',
    }


def test_last_over_time_keeps_a_drop_mark_from_a_subquery():
    rng = range_of([series('metric_total{env="1"}', "0 60 120", "5m")], [ms("10m")], ms("10m"))
    rng.drop_name = np.array([True])
    out = call("last_over_time", [ms("10m")], rng, delayed=True)
    assert out.drop_name.tolist() == [True]


def test_ts_of_functions():
    data = [series("metric", "1 2 3 0 5 6 2 1 4", "10s53ms")]
    t = [ms("90s")]
    rng = range_of(data, t, ms("90s"))
    assert as_dict(call("ts_of_min_over_time", t, rng)) == {"{}": 30.159}
    assert as_dict(call("ts_of_max_over_time", t, rng)) == {"{}": 50.265}
    data = [series("metric", "1 2 3 _ _", "10s53ms")]
    for at in ("90s", "95s"):
        rng = range_of(data, [ms(at)], ms("90s"))
        assert as_dict(call("ts_of_last_over_time", [ms(at)], rng)) == {"{}": 20.106}
    data = [series("metric", "_ _ 1 2 3 _ _", "10s53ms")]
    rng = range_of(data, [ms("90s")], ms("90s"))
    assert as_dict(call("ts_of_first_over_time", [ms("90s")], rng)) == {"{}": 20.106}
    rng = range_of(data, [ms("15s")], ms("90s"))
    assert as_dict(call("ts_of_first_over_time", [ms("15s")], rng)) == {}


QDATA = [
    series('data{test="two samples"}', "0 1", "10s"),
    series('data{test="three samples"}', "0 1 2", "10s"),
    series('data{test="uneven samples"}', "0 1 4", "10s"),
]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0, [0, 0, 0]),
        (0.5, [0.5, 1, 1]),
        (0.75, [0.75, 1.5, 2.5]),
        (0.8, [0.8, 1.6, 2.8]),
        (1, [1, 2, 4]),
        (-1, [-math.inf] * 3),
        (2, [math.inf] * 3),
    ],
)
def test_quantile_over_time(q, expected):
    t = [ms("1m")]
    out, ctx = call_ctx(
        "quantile_over_time", t, scalar(q), range_of(QDATA, t, ms("2m")), positions=["(1:20)"]
    )
    assert list(as_dict(out).values()) == pytest.approx(expected)
    if 0 <= q <= 1:
        assert not ctx.annotations
    else:
        assert ctx.annotations.warning_list() == [
            f"PromQL warning: quantile value should be between 0 and 1, got {q} (1:20)"
        ]


def test_quantile_over_time_puts_nan_first_and_varies_by_step():
    data = [series("g", "NaN 0 1", "10s")]
    steps = [ms("30s"), ms("30s")]
    q = scalar(0.8, 2)
    q.values[1] = 0.2
    out = call("quantile_over_time", steps, q, range_of(data, steps, ms("1m")))
    got = row(out, "{}")
    assert got[0] == pytest.approx(0.6)
    assert math.isnan(got[1])


def test_range_query_over_many_series_matches_per_window_numpy():
    rng_ = np.random.default_rng(5)
    data = [
        series(f'g{{i="{i}"}}', " ".join(f"{v:.4f}" for v in rng_.normal(100, 20, 120)), "15s")
        for i in range(30)
    ]
    steps = [ms("5m") + k * ms("30s") for k in range(40)]
    rng = range_of(data, steps, ms("3m"))
    outs = {
        name: call(name, steps, rng)
        for name in ("sum_over_time", "avg_over_time", "min_over_time", "max_over_time")
    }
    qout = call("quantile_over_time", steps, scalar(0.9, len(steps)), rng)
    for i in range(len(data)):
        for j in range(len(steps)):
            w = rng.values[rng.lo[i, j] : rng.hi[i, j]]
            assert outs["sum_over_time"].values[i, j] == pytest.approx(w.sum(), rel=1e-12)
            assert outs["avg_over_time"].values[i, j] == pytest.approx(w.mean(), rel=1e-12)
            assert outs["min_over_time"].values[i, j] == w.min()
            assert outs["max_over_time"].values[i, j] == w.max()
            assert qout.values[i, j] == pytest.approx(np.quantile(w, 0.9), rel=1e-12)
