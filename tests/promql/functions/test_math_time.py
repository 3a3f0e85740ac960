"""Element-wise math, clamp, round, scalars, calendar and query-bound functions."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from promql.errors import ExecutionError
from promql.eval.functions.registry import FUNCTIONS
from tests.promql.functions.helpers import as_dict, call, context, row, scalar, vector_of

TYPES = ["positive", "whole", "negative", "nwhole", "zero", "nzero", "inf", "ninf", "nan"]
VALUES = [2.5, 2, -2.5, -2, 0, -0.0, math.inf, -math.inf, math.nan]
DATA = vector_of([f'data{{type="{t}"}}' for t in TYPES], [[v] for v in VALUES])


def typed(out) -> dict[str, float]:
    return {k.split('"')[1]: v for k, v in as_dict(out).items()}


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("abs", [2.5, 2, 2.5, 2, 0, 0, math.inf, math.inf, math.nan]),
        ("ceil", [3, 2, -2, -2, 0, 0, math.inf, -math.inf, math.nan]),
        ("floor", [2, 2, -3, -2, 0, 0, math.inf, -math.inf, math.nan]),
        ("round", [3, 2, -2, -2, 0, 0, math.inf, -math.inf, math.nan]),
        ("sgn", [1, 1, -1, -1, 0, 0, 1, -1, math.nan]),
    ],
)
def test_rounding_family(name, expected):
    got = typed(call(name, [0], DATA))
    assert list(got) == TYPES
    assert all(same(got[t], e) for t, e in zip(TYPES, expected, strict=True))


def test_round_to_nearest():
    vec = vector_of(["a", "b", "c"], [[0.0005 * 100], [2.1 + 0.0005 * 200], [-5.25]])
    values = call("round", [0], vec, scalar(0.1)).values[:, 0]
    assert values.tolist() == pytest.approx([0.1, 2.2, -5.2])
    assert call("round", [0], vector_of(["a"], [[0.025 * 200]]), scalar(5)).values[0, 0] == 5


def test_exp_ln_and_logs():
    vec = vector_of(['e{l="x"}', 'e{l="y"}'], [[10], [20]])
    assert typed(call("exp", [0], vec)) == pytest.approx(
        {"x": 22026.465794806718, "y": 485165195.4097903}
    )
    assert typed(call("ln", [0], vec)) == pytest.approx(
        {"x": 2.302585092994046, "y": 2.995732273553991}
    )
    assert typed(call("log2", [0], vec)) == pytest.approx(
        {"x": 3.3219280948873626, "y": 4.321928094887363}
    )
    assert typed(call("log10", [0], vec)) == pytest.approx({"x": 1, "y": 1.301029995663981})
    assert typed(call("sqrt", [0], vec)) == pytest.approx(
        {"x": 3.1622776601683795, "y": 4.47213595499958}
    )
    neg = vector_of(['e{l="x"}', 'e{l="z"}'], [[-10], [0]])
    got = typed(call("ln", [0], neg))
    assert math.isnan(got["x"])
    assert got["z"] == -math.inf


def test_trig_family_matches_the_test_data():
    vec = vector_of(['trig{l="x"}', 'trig{l="y"}', 'trig{l="NaN"}'], [[10], [20], [math.nan]])
    cases = {
        "sin": (-0.5440211108893699, 0.9129452507276277),
        "cos": (-0.8390715290764524, 0.40808206181339196),
        "tan": (0.6483608274590867, 2.2371609442247427),
        "atan": (1.4711276743037345, 1.5208379310729538),
        "sinh": (11013.232920103324, 2.4258259770489514e08),
        "cosh": (11013.232920103324, 2.4258259770489514e08),
        "tanh": (0.9999999958776927, 1),
        "asinh": (2.99822295029797, 3.6895038689889055),
        "acosh": (2.993222846126381, 3.6882538673612966),
        "rad": (0.17453292519943295, 0.3490658503988659),
        "deg": (572.9577951308232, 1145.9155902616465),
    }
    for name, (x, y) in cases.items():
        got = typed(call(name, [0], vec))
        assert got["x"] == pytest.approx(x), name
        assert got["y"] == pytest.approx(y), name
        assert math.isnan(got["NaN"]), name
    shifted = vector_of(['trig{l="x"}', 'trig{l="y"}'], [[10 - 10.1], [20 - 10.1]])
    for name, x in (
        ("asin", -0.10016742116155944),
        ("acos", 1.670963747956456),
        ("atanh", -0.10033534773107522),
    ):
        got = typed(call(name, [0], shifted))
        assert got["x"] == pytest.approx(x)
        assert math.isnan(got["y"])
    assert call("pi", [0]).values.tolist() == [math.pi]


def test_clamp_family():
    vec = vector_of([f'test_clamp{{src="clamp-{c}"}}' for c in "abc"], [[-50], [0], [100]])
    assert list(typed(call("clamp_max", [0], vec, scalar(75))).values()) == [-50, 0, 75]
    assert list(typed(call("clamp_min", [0], vec, scalar(-25))).values()) == [-25, 0, 100]
    assert list(typed(call("clamp", [0], vec, scalar(-25), scalar(75))).values()) == [-25, 0, 75]
    assert all(
        math.isnan(v) for v in typed(call("clamp", [0], vec, scalar(0), scalar(math.nan))).values()
    )
    assert all(
        math.isnan(v) for v in typed(call("clamp", [0], vec, scalar(math.nan), scalar(0))).values()
    )
    assert as_dict(call("clamp", [0], vec, scalar(5), scalar(-5))) == {}


def test_math_drops_or_marks_the_name():
    vec = vector_of(['metric_total{env="1"}'], [[120]])
    assert as_dict(call("clamp", [0], vec, scalar(0), scalar(100))) == {'{env="1"}': 100}
    marked = call("round", [0], vec, delayed=True)
    assert as_dict(marked) == {'metric_total{env="1"}': 120}
    assert marked.drop_name.tolist() == [True]


def test_min_of_max_of_propagate_nan():
    assert call("min_of", [0], scalar(3), scalar(5)).values.tolist() == [3]
    assert call("max_of", [0], scalar(-2), scalar(-5)).values.tolist() == [-2]
    assert math.isnan(call("min_of", [0], scalar(math.nan), scalar(3)).values[0])
    assert math.isnan(call("max_of", [0], scalar(3), scalar(math.nan)).values[0])


@pytest.mark.parametrize(
    ("name", "at_zero", "at_2006"),
    [
        ("year", 1970, 2006),
        ("month", 1, 1),
        ("day_of_month", 1, 2),
        ("day_of_year", 1, 2),
        ("day_of_week", 4, 1),
        ("hour", 0, 22),
        ("minute", 0, 4),
        ("days_in_month", 31, 31),
    ],
)
def test_calendar_functions(name, at_zero, at_2006):
    assert as_dict(call(name, [0])) == {"{}": at_zero}
    assert as_dict(call(name, [0], vector_of(["{}"], [[1136239445]]))) == {"{}": at_2006}


@pytest.mark.parametrize(
    ("name", "seconds", "expected"),
    [
        ("year", 1230767999, 2008),
        ("year", 1230768000, 2009),
        ("day_of_year", 1483191420, 366),
        ("day_of_year", 1672493820, 365),
        ("days_in_month", 1454284800, 29),
        ("days_in_month", 1485907200, 28),
        ("month", 1456790399, 2),
        ("day_of_month", 1456790399, 29),
        ("month", 1456790400, 3),
        ("day_of_month", 1456790400, 1),
        ("year", -1, 1969),
        ("hour", -1, 23),
    ],
)
def test_calendar_edges(name, seconds, expected):
    assert as_dict(call(name, [0], vector_of(["{}"], [[seconds]]))) == {"{}": expected}


def test_calendar_over_steps_and_non_finite_inputs():
    steps = [0, 86_400_000 * 31, 86_400_000 * 59]
    assert row(call("month", steps), "{}") == [1, 2, 3]
    out = call("year", [0], vector_of(["a", "b"], [[math.nan], [1e300]]))
    assert np.isnan(out.values).all()


def test_query_bounds():
    steps = list(range(100_000, 131_000, 10_000))
    assert call("start", steps).values.tolist() == [100] * 4
    assert call("end", steps).values.tolist() == [130] * 4
    assert call("range", steps).values.tolist() == [30] * 4
    assert call("step", steps).values.tolist() == [10] * 4
    assert call("step", [100_000]).values.tolist() == [0]
    assert call("range", [100_000]).values.tolist() == [0]
    # inside a subquery the steps are the subquery's; the bounds stay the query's
    inner = replace(context("step", [0]), query_end_ms=60_000, query_step_ms=5000)
    assert FUNCTIONS["step"].impl(inner, []).values.tolist() == [5]
    assert FUNCTIONS["range"].impl(inner, []).values.tolist() == [60]


def test_wrong_argument_kinds_are_execution_errors():
    with pytest.raises(ExecutionError):
        call("abs", [0], scalar(1))
