"""rate, increase, delta, irate, idelta, resets, changes, deriv, predict_linear.

Expected values are the ones Prometheus's own test data (functions.test)
states, or derived by hand from the documented algorithm.
"""

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

HTTP = [
    series('http_requests{path="/foo"}', "1 2 3 0 1 0 0 1 2 0", "5m"),
    series('http_requests{path="/bar"}', "1 2 3 4 5 1 2 3 4 5", "5m"),
    series('http_requests{path="/biz"}', "0 0 0 0 0 1 1 1 1 1", "5m"),
]


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ("5m", {}),
        ("10m", {"/foo": 0, "/bar": 0, "/biz": 0}),
        ("20m", {"/foo": 1, "/bar": 0, "/biz": 0}),
        ("32m", {"/foo": 2, "/bar": 1, "/biz": 0}),
        ("50m", {"/foo": 3, "/bar": 1, "/biz": 0}),
    ],
)
def test_resets_counts_decreases_inside_the_window(window, expected):
    out = call("resets", [ms("50m")], range_of(HTTP, [ms("50m")], ms(window)))
    # windows are left-open: (50m - 5m, 50m] holds no sample (the last is at 45m)
    assert {k.split('"')[1]: v for k, v in as_dict(out).items()} == expected


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ("6m", {"/foo": 0, "/bar": 0, "/biz": 0}),
        ("20m", {"/foo": 2, "/bar": 2, "/biz": 0}),
        ("30m", {"/foo": 3, "/bar": 4, "/biz": 0}),
        ("50m", {"/foo": 7, "/bar": 8, "/biz": 1}),
    ],
)
def test_changes(window, expected):
    out = call("changes", [ms("50m")], range_of(HTTP, [ms("50m")], ms(window)))
    assert {k.split('"')[1]: v for k, v in as_dict(out).items()} == expected


def test_changes_treats_nan_to_nan_as_no_change():
    data = [series('x{a="b"}', "NaN NaN NaN", "5m"), series('x{a="c"}', "0 NaN 0", "5m")]
    out = call("changes", [ms("15m")], range_of(data, [ms("15m")], ms("20m")))
    assert as_dict(out) == {'{a="b"}': 0, '{a="c"}': 2}


def test_increase_extrapolates_and_clamps_at_zero():
    data = [
        series('http_requests_total{path="/foo"}', "0+10x10", "5m"),
        series('http_requests_total{path="/bar"}', "0+18x5 0+18x5", "5m"),
        series('http_requests_total{path="/dings"}', "10+10x10", "5m"),
        series('http_requests_total{path="/bumms"}', "1+10x10", "5m"),
    ]
    t = [ms("50m")]
    out = call("increase", t, range_of(data, t, ms("50m")))
    assert as_dict(out) == pytest.approx(
        {'{path="/foo"}': 100, '{path="/bar"}': 160, '{path="/dings"}': 100, '{path="/bumms"}': 100}
    )
    out = call("increase", t, range_of(data, t, ms("100m")))
    assert as_dict(out) == pytest.approx(
        {'{path="/foo"}': 100, '{path="/bar"}': 162, '{path="/dings"}': 105, '{path="/bumms"}': 101}
    )


def test_increase_counts_a_decrease_as_a_reset_to_zero():
    data = [series('http_requests_total{path="/foo"}', "0 1 2 3 2 3 4", "5m")]
    t = [ms("30m")]
    assert as_dict(call("increase", t, range_of(data, t, ms("30m")))) == pytest.approx(
        {'{path="/foo"}': 7}
    )


def test_rate_with_resets_in_the_middle_and_at_the_end():
    middle = [series("testcounter_reset_middle_total", "0+27x4 0+27x5", "5m")]
    end = [series("testcounter_reset_end_total", "0+10x9 0 10", "5m")]
    t = [ms("50m")]
    assert as_dict(call("rate", t, range_of(middle, t, ms("50m")))) == pytest.approx({"{}": 0.08})
    assert as_dict(call("rate", t, range_of(end, t, ms("5m")))) == {}
    assert as_dict(call("rate", t, range_of(end, t, ms("6m")))) == {"{}": 0}


def test_rate_zero_cutoff_for_left_extrapolation():
    data = [
        series(f'testcounter_zero_cutoff_total{{start="{i}m"}}', f"{60 * i}+240x10", "4m")
        for i in range(6)
    ]
    out = call("rate", [ms("10m")], range_of(data, [ms("10m")], ms("20m")))
    got = {k: round(v, 12) for k, v in as_dict(out).items()}
    assert got == {
        '{start="0m"}': 0.5,
        '{start="1m"}': 0.55,
        '{start="2m"}': 0.6,
        '{start="3m"}': 0.6,
        '{start="4m"}': 0.6,
        '{start="5m"}': 0.6,
    }
    out = call("rate", [ms("50m")], range_of(data, [ms("50m")], ms("20m")))
    assert list(as_dict(out).values()) == pytest.approx([0.6] * 6)


def test_rate_offset_and_per_second_units():
    data = [
        series('calculate_rate_offset_total{x="a"}', "0+10x10", "5m"),
        series('calculate_rate_offset_total{x="b"}', "0+20x10", "5m"),
    ]
    t = [ms("50m")]
    out = call("rate", t, range_of(data, t, ms("10m"), offset_ms=ms("5m")))
    assert as_dict(out) == pytest.approx({'{x="a"}': 1 / 30, '{x="b"}': 2 / 30})


def test_rate_over_a_range_query_matches_instant_evaluations():
    data = [series("c_total", "0+7x40", "15s"), series('c_total{x="1"}', "5+3x12 0+3x27", "15s")]
    steps = [ms(f"{s}s") for s in range(0, 600, 30)]
    whole = call("rate", steps, range_of(data, steps, ms("2m")))
    for j, t in enumerate(steps):
        single = call("rate", [t], range_of(data, [t], ms("2m")))
        assert as_dict(whole, j) == pytest.approx(as_dict(single))


def test_rate_info_for_metric_names_not_like_counters():
    data = [series("http_requests", "0+10x10", "5m"), series("ok_total", "0+10x10", "5m")]
    t = [ms("50m")]
    _, ctx = call_ctx("rate", t, range_of(data, t, ms("10m")), positions=["(1:6)"])
    assert ctx.annotations.info_list() == [
        "PromQL info: metric might not be a counter, name does not end in "
        '_total/_sum/_count/_bucket: "http_requests" (1:6)'
    ]
    _, ctx = call_ctx("delta", t, range_of(data, t, ms("10m")), positions=["(1:7)"])
    assert not ctx.annotations


def test_rate_drops_or_marks_the_metric_name():
    data = [series('metric_total{env="1"}', "0 60 120", "5m")]
    t = [ms("10m")]
    out = call("rate", t, range_of(data, t, ms("10m")))
    assert as_dict(out) == pytest.approx({'{env="1"}': 0.2})
    out = call("rate", t, range_of(data, t, ms("10m")), delayed=True)
    assert as_dict(out) == pytest.approx({'metric_total{env="1"}': 0.2})
    assert out.drop_name is not None
    assert out.drop_name.all()


def test_irate_and_idelta_use_the_last_two_samples():
    data = [
        series('http_requests_total{path="/foo"}', "0+10x10", "5m"),
        series('http_requests_total{path="/bar"}', "0+10x5 0+10x5", "5m"),
    ]
    out = call("irate", [ms("50m")], range_of(data, [ms("50m")], ms("50m")))
    assert list(as_dict(out).values()) == pytest.approx([1 / 30, 1 / 30])
    out = call("irate", [ms("30m")], range_of(data, [ms("30m")], ms("50m")))
    assert as_dict(out) == pytest.approx({'{path="/foo"}': 1 / 30, '{path="/bar"}': 0})
    gauge = [
        series('http_requests{path="/foo"}', "0 50 100 150", "5m"),
        series('http_requests{path="/bar"}', "0 50 100 50", "5m"),
    ]
    out = call("idelta", [ms("20m")], range_of(gauge, [ms("20m")], ms("20m")))
    assert as_dict(out) == {'{path="/foo"}': 50, '{path="/bar"}': -50}


def test_irate_idelta_with_nan_samples_over_a_range_query():
    data = [series("http_requests_nan", "1 NaN NaN 5 11", "5m")]
    steps = [ms(f"{m}m") for m in range(0, 21, 5)]
    rng = range_of(data, steps, ms("15m1s"))
    got = row(call("irate", steps, rng), "{}")
    assert got[0] is None
    assert all(math.isnan(v) for v in got[1:4])
    assert got[4] == pytest.approx(0.02)
    got = row(call("idelta", steps, rng), "{}")
    assert got[0] is None
    assert got[4] == 6


def test_delta_of_a_gauge():
    data = [
        series('http_requests{path="/foo"}', "0 50 100 150 200", "5m"),
        series('http_requests{path="/bar"}', "200 150 100 50 0", "5m"),
    ]
    out = call("delta", [ms("20m")], range_of(data, [ms("20m")], ms("20m")))
    assert as_dict(out) == pytest.approx({'{path="/foo"}': 200, '{path="/bar"}': -200})


REGRESSION = [
    series("testcounter_reset_middle_total", "0+10x4 0+10x5", "5m"),
    series('http_requests_total{job="app-server", instance="1", group="canary"}', "0+80x10", "5m"),
]


def test_deriv_matches_rate_for_a_straight_line_and_the_documented_slope():
    t = [ms("50m")]
    out = call("deriv", t, range_of(REGRESSION[1:], t, ms("50m")))
    assert list(as_dict(out).values()) == pytest.approx([0.26666666666666666])
    out = call("deriv", t, range_of(REGRESSION[:1], t, ms("100m")))
    assert as_dict(out) == pytest.approx({"{}": 0.010606060606060607})


def test_predict_linear_intercepts_at_the_evaluation_time():
    data = REGRESSION[:1]
    t = [ms("50m")]
    out = call("predict_linear", t, range_of(data, t, ms("50m")), scalar(3600))
    assert as_dict(out) == pytest.approx({"{}": 70})
    # `@ 3000`: the window is fixed, the intercept moves with the evaluation time
    for at, expected in (("50m", 76.81818181818181), ("10m", 51.36363636363637)):
        steps = [ms(at)]
        rng = range_of(data, steps, ms("55m"), at_ms=3_000_000)
        out = call("predict_linear", steps, rng, scalar(3600))
        assert as_dict(out) == pytest.approx({"{}": expected})
    steps = [ms("70m")]
    rng = range_of(data, steps, ms("55m"), at_ms=3_000_000)
    assert as_dict(call("predict_linear", steps, rng, scalar(3600))) == pytest.approx(
        {"{}": 89.54545454545455}
    )


def test_regression_with_infinite_values_is_nan():
    data = [series("http_requests_inf", "-Inf 0+80x10 Inf", "5m")]
    t = [ms("100m")]
    rng = range_of(data, t, ms("100m"))
    assert math.isnan(as_dict(call("deriv", t, rng))["{}"])
    assert math.isnan(as_dict(call("predict_linear", t, rng, scalar(6000)))["{}"])


def test_deriv_of_constant_values_is_zero_and_predict_is_the_value():
    data = [series("g", "7x20", "15s")]
    t = [ms("4m")]
    rng = range_of(data, t, ms("2m"))
    assert as_dict(call("deriv", t, rng)) == {"{}": 0.0}
    assert as_dict(call("predict_linear", t, rng, scalar(100))) == {"{}": 7.0}


def test_regression_fast_path_agrees_with_sequential_least_squares():
    rng_ = np.random.default_rng(7)
    vals = " ".join(f"{v:.6f}" for v in 1e6 + np.cumsum(rng_.normal(5, 2, 300)))
    data = [series("g", vals, "15s")]
    steps = [ms("30m") + i * ms("1m") for i in range(30)]
    rng = range_of(data, steps, ms("10m"))
    got = call("deriv", steps, rng)
    for j in range(len(steps)):
        lo, hi = rng.lo[0, j], rng.hi[0, j]
        x = rng.timestamps[lo:hi] / 1000.0
        y = rng.values[lo:hi]
        slope = np.polyfit(x - x[0], y - y[0], 1)[0]
        assert got.values[0, j] == pytest.approx(slope, rel=1e-9)
