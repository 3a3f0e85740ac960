"""double_exponential_smoothing: the test-data results and the argument checks."""

from __future__ import annotations

import numpy as np
import pytest

from promql.errors import ExecutionError
from tests.promql.functions.helpers import as_dict, call, ms, range_of, scalar, series


def smooth(data, at: str, window: str, sf: float, tf: float, steps=None):
    steps = steps or [ms(at)]
    rng = range_of(data, steps, ms(window))
    return call(
        "double_exponential_smoothing", steps, rng, scalar(sf, len(steps)), scalar(tf, len(steps))
    )


def test_linear_trends_are_followed_exactly():
    data = [
        series('http_requests{instance="0"}', "0+10x1000 100+30x1000", "10s"),
        series('http_requests{instance="1"}', "0+20x1000 200+30x1000", "10s"),
        series('http_requests{instance="2"}', "0+40x2000", "10s"),
    ]
    got = as_dict(smooth(data, "8000s", "1m", 0.01, 0.1))
    assert got == pytest.approx(
        {'{instance="0"}': 8000, '{instance="1"}': 16000, '{instance="2"}': 32000}
    )
    falling = [series('http_requests{instance="0"}', "8000-10x1000", "10s")]
    assert as_dict(smooth(falling, "8000s", "1m", 0.01, 0.1)) == pytest.approx(
        {'{instance="0"}': 0}, abs=1e-9
    )


def reference(values: list[float], sf: float, tf: float) -> float:
    """Holt's linear method as the Prometheus docs describe it."""
    level, trend = values[0], values[1] - values[0]
    prev_level = 0.0
    for i, v in enumerate(values[1:], start=1):
        if i > 1:
            trend = tf * (level - prev_level) + (1 - tf) * trend
        prev_level, level = level, sf * v + (1 - sf) * (level + trend)
    return level


def test_matches_the_recurrence_over_a_range_query():
    rng_ = np.random.default_rng(2)
    vals = rng_.normal(50, 10, 200)
    data = [series("g", " ".join(f"{v:.5f}" for v in vals), "15s")]
    steps = [ms("10m") + i * ms("1m") for i in range(30)]
    rng = range_of(data, steps, ms("3m"))
    out = call("double_exponential_smoothing", steps, rng, scalar(0.3, 30), scalar(0.6, 30))
    for j in range(len(steps)):
        window = rng.values[rng.lo[0, j] : rng.hi[0, j]].tolist()
        assert out.values[0, j] == pytest.approx(reference(window, 0.3, 0.6), rel=1e-12)


def test_needs_two_samples():
    data = [series("g", "1 _ _ _ 5", "10s")]
    assert as_dict(smooth(data, "45s", "30s", 0.5, 0.5)) == {}


@pytest.mark.parametrize(
    ("sf", "tf", "message"),
    [
        (0, 0.5, "invalid smoothing factor. Expected: 0 < sf < 1, got: 0.000000"),
        (1, 0.5, "invalid smoothing factor. Expected: 0 < sf < 1, got: 1.000000"),
        (0.5, 1.5, "invalid trend factor. Expected: 0 < tf < 1, got: 1.500000"),
    ],
)
def test_factors_outside_the_open_unit_interval_fail(sf, tf, message):
    data = [series("g", "1 2 3", "10s")]
    with pytest.raises(ExecutionError, match=message.replace(".", r"\.")):
        smooth(data, "20s", "1m", sf, tf)


def test_factors_are_not_checked_without_data():
    assert as_dict(smooth([series("g", "1", "10s")], "10m", "1m", 5, 5)) == {}
