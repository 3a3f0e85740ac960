"""histogram_quantile(s) and histogram_fraction on classic buckets (histograms.test)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from promql.value import StepScalar, StepVector
from tests.promql.functions.helpers import (
    as_dict,
    call,
    call_ctx,
    parse_labels,
    scalar,
    string,
    vector_of,
)


def buckets(name: str, rows: dict[str, float], **labels: str):
    extra = "".join(f', {k}="{v}"' for k, v in labels.items())
    return [(parse_labels(f'{name}{{le="{le}"{extra}}}'), v) for le, v in rows.items()]


def vec(*groups):
    flat = [item for g in groups for item in g]
    return vector_of([lbl for lbl, _ in flat], [[v] for _, v in flat])


# testhistogram3 at 50m (0+Nx10 -> 10 * N)
H3 = vec(
    buckets(
        "testhistogram3_bucket",
        {"0": 0, "0.1": 50, ".2": 70, "1e0": 110, "+Inf": 110},
        start="positive",
    ),
    buckets(
        "testhistogram3_bucket",
        {"-.25": 0, "-.2": 10, "-0.1": 20, "0.3": 20, "+Inf": 20},
        start="negative",
    ),
)


@pytest.mark.parametrize(
    ("q", "positive", "negative"),
    [(0, 0, -0.25), (0.25, 0.055, -0.225), (0.5, 0.125, -0.2), (0.75, 0.45, -0.15), (1, 1, -0.1)],
)
def test_histogram_quantile(q, positive, negative):
    out, ctx = call_ctx("histogram_quantile", [0], scalar(q), H3)
    assert as_dict(out) == pytest.approx(
        {'{start="positive"}': positive, '{start="negative"}': negative}
    )
    assert not ctx.annotations


def test_histogram_quantiles_adds_the_quantile_label():
    out = call("histogram_quantiles", [0], H3, string("q"), *(scalar(q) for q in (0, 0.25, 1)))
    assert as_dict(out) == pytest.approx(
        {
            '{q="0.0", start="positive"}': 0,
            '{q="0.0", start="negative"}': -0.25,
            '{q="0.25", start="positive"}': 0.055,
            '{q="0.25", start="negative"}': -0.225,
            '{q="1.0", start="positive"}': 1,
            '{q="1.0", start="negative"}': -0.1,
        }
    )


def test_out_of_range_quantiles_warn_and_give_infinities():
    for q, want in ((-0.1, -math.inf), (1.01, math.inf)):
        out, ctx = call_ctx(
            "histogram_quantile", [0], scalar(q), H3, positions=["(1:20)", "(1:25)"]
        )
        assert list(as_dict(out).values()) == [want, want]
        assert ctx.annotations.warning_list() == [
            f"PromQL warning: quantile value should be between 0 and 1, got {q} (1:20)"
        ]
    empty = StepVector([], np.empty((0, 1)), np.empty((0, 1), dtype=bool))
    out, ctx = call_ctx("histogram_quantile", [0], scalar(math.nan), empty)
    assert as_dict(out) == {}
    assert ctx.annotations.warning_list() == [
        "PromQL warning: quantile value should be between 0 and 1, got NaN"
    ]


def test_quantile_in_lowest_and_highest_bucket():
    h = vec(
        buckets(
            "testhistogram_bucket", {"0.1": 50, ".2": 70, "1e0": 110, "+Inf": 120}, start="positive"
        ),
        buckets(
            "testhistogram_bucket", {"-.2": 10, "-0.1": 20, "0.3": 20, "+Inf": 30}, start="negative"
        ),
    )
    assert as_dict(call("histogram_quantile", [0], scalar(0), h)) == {
        '{start="positive"}': 0,
        '{start="negative"}': -0.2,
    }
    assert as_dict(call("histogram_quantile", [0], scalar(1), h)) == {
        '{start="positive"}': 1,
        '{start="negative"}': 0.3,
    }


def test_nonmonotonic_buckets_are_fixed_with_one_info():
    h = vec(
        buckets(
            "nonmonotonic_bucket",
            {"0.1": 20, "1": 10, "10": 50, "100": 40, "1000": 90, "+Inf": 80},
        )
    )
    for q, want in ((0.01, 0.0045), (0.5, 8.5), (0.99, 979.75)):
        out, ctx = call_ctx(
            "histogram_quantile", [3_000_000], scalar(q), h, positions=["(1:20)", "(1:26)"]
        )
        assert as_dict(out) == pytest.approx({"{}": want})
        infos = ctx.annotations.info_list()
        assert len(infos) == 1
        assert infos[0].startswith(
            "PromQL info: input to histogram_quantile needed to be fixed for monotonicity"
        )
        assert infos[0].endswith("(1:26)")
        assert "over 1 samples from 1970-01-01T00:50:00Z to 1970-01-01T00:50:00Z" in infos[0]


def test_le_representations_are_coalesced_and_missing_inf_is_nan():
    h = vec(
        buckets(
            "mixed_bucket",
            {"0.1": 1, "0.2": 1, "2e-1": 1, "2.0e-1": 1, "+Inf": 4},
            job="job1",
            instance="ins1",
        ),
        buckets("mixed_bucket", {"+inf": 0, "+Inf": 0}, job="job1", instance="ins2"),
    )
    got = as_dict(call("histogram_quantile", [0], scalar(0.5), h))
    assert got['{instance="ins1", job="job1"}'] == pytest.approx(0.15)
    assert math.isnan(got['{instance="ins2", job="job1"}'])
    no_inf = vec(buckets("b", {"1": 1, "2": 2}))
    assert math.isnan(as_dict(call("histogram_quantile", [0], scalar(0.5), no_inf))["{}"])
    zero = vec(buckets("b", {"0.1": 0, "0.2": 0, "+Inf": 0}))
    assert math.isnan(as_dict(call("histogram_quantile", [0], scalar(0.2), zero))["{}"])


def test_bad_le_warns_and_is_skipped():
    h = vector_of(['series{ale="0.1"}', 'series{le="Hello World"}'], [[2], [2]])
    out, ctx = call_ctx("histogram_quantile", [0], scalar(0.8), h, positions=["(1:20)", "(1:25)"])
    assert as_dict(out) == {}
    assert ctx.annotations.warning_list() == [
        'PromQL warning: bucket label "le" is missing or has a malformed value of "" '
        'for metric name "series" (1:25)',
        'PromQL warning: bucket label "le" is missing or has a malformed value of '
        '"Hello World" for metric name "series" (1:25)',
    ]


def test_histograms_with_different_names_stay_apart():
    h = vec(
        buckets("request_duration_seconds_bucket", {"0.1": 10, "+Inf": 40}, job="job1"),
        buckets("request_duration_seconds2_bucket", {"0.1": 10, "+Inf": 40}, job="job1"),
    )
    out = call("histogram_quantile", [0], scalar(0.99), h)
    # two results with the same labels once the names are gone: the evaluator rejects that
    assert [str(lbl) for lbl in out.labels] == ['{job="job1"}', '{job="job1"}']


def test_buckets_absent_at_a_step_are_left_out():
    labels = [parse_labels(f'h_bucket{{le="{le}"}}') for le in ("1", "2", "4", "+Inf")]
    v = vector_of(labels, [[5, 5], [None, 7], [10, 10], [12, 12]])
    out = call("histogram_quantile", [0, 1], scalar(7 / 12, 2), v)
    # step 0 uses buckets 1, 4, +Inf: rank 7 lies in (1, 4]: 1 + 3 * (2 / 5)
    assert out.values[0].tolist() == pytest.approx([2.2, 2.0])


def test_phi_may_vary_by_step():
    h = vector_of(
        [parse_labels(f'h_bucket{{le="{le}"}}') for le in ("2", "4", "+Inf")],
        [[1, 1], [2, 2], [2, 2]],
    )
    out = call("histogram_quantile", [0, 1], StepScalar(np.array([0.25, 0.75])), h)
    assert out.values[0].tolist() == pytest.approx([1.0, 3.0])


def fraction(lower, upper, rows, name="h_bucket"):
    return as_dict(
        call("histogram_fraction", [0], scalar(lower), scalar(upper), vec(buckets(name, rows)))
    )["{}"]


@pytest.mark.parametrize(
    ("lower", "upper", "rows", "expected"),
    [
        (0, 4, {"0": 0, "2": 10, "4": 20, "6": 30, "+Inf": 30}, 2 / 3),
        (0, 3.5, {"0": 0, "2": 10, "4": 20, "6": 30, "+Inf": 30}, 0.5833333333333334),
        (0, 1.5, {"1": 1, "2": 3, "3": 6, "+Inf": 100}, 0.02),
        (-4, -2, {"-3": 10, "-2": 12, "-1": 15, "+Inf": 100}, 0.02),
        (-math.inf, -1.5, {"-3": 10, "-2": 12, "-1": 15, "+Inf": 100}, 0.135),
        (-math.inf, math.inf, {"1": 1, "2": 3, "3": 6, "+Inf": 100}, 1.0),
        (4, 5, {"1": 1, "2": 3, "3": 6, "+Inf": 100}, 0.0),
        (0, 1, {"-3": 10, "-2": 12, "-1": 15, "+Inf": 100}, 0.0),
        (2, 5, {"1": 1, "2": 3, "3": 6, "+Inf": 100}, 0.03),
        (400, math.inf, {"1": 1, "2": 3, "3": 6, "+Inf": 100}, 0.94),
        (2, 2, {"1": 1, "2": 3, "3": 6, "+Inf": 100}, 0.0),
        (3, 2, {"1": 1, "2": 3, "3": 6, "+Inf": 100}, 0.0),
        (0, 1, {"+Inf": 100}, 0.0),
        (0, 5, {"1": 0, "2": 0, "3": 0, "+Inf": 0}, math.nan),
        (2, 3.5, {"1": 1, "2": 3, "3": 6, "+Inf": 100}, 0.03),
        (0.5, 2, {"1": 1, "2": 3, "3": 6, "+Inf": 100}, 0.025),
        (1, 3, {"1": 1, "2": 3, "3": 6, "+Inf": 100}, 0.05),
        (0.1, 0.75, {"0.5": 2.5, "1": 7.5, "+Inf": 100}, 0.045),
        (-1, 1, {"-2": 5, "-1": 10, "0": 15, "1": 20, "+Inf": 100}, 0.1),
        (math.nan, 1, {"1": 1, "+Inf": 100}, math.nan),
        (0, math.nan, {"1": 1, "+Inf": 100}, math.nan),
        (-10, -5, {"1": 1, "2": 3, "+Inf": 10}, 0.0),
        (5, 10, {"1": 1, "2": 3, "+Inf": 10}, 0.0),
    ],
)
def test_histogram_fraction_cases(lower, upper, rows, expected):
    got = fraction(lower, upper, rows)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected)


def test_native_only_functions_have_no_float_result():
    for name in (
        "histogram_count",
        "histogram_sum",
        "histogram_avg",
        "histogram_stddev",
        "histogram_stdvar",
    ):
        assert as_dict(call(name, [0], H3)) == {}
