"""The vectorized range functions against plain per-window loops (reference.py).

Random series with irregular spacing, counter resets, NaN/±Inf sprinkled in,
values over many orders of magnitude, and a range query whose windows
overlap: every (series, step) result must match the sequential Prometheus
algorithm (bit-identical where both are exact, else within 1e-9 relative).
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from promql.value import StepRange
from storage.labels import Labels
from tests.promql.functions import reference as ref
from tests.promql.functions.helpers import call, scalar


def random_range(
    seed: int, *, nseries: int = 12, specials: bool = True
) -> tuple[StepRange, list[int]]:
    rng = np.random.default_rng(seed)
    labels, ts_all, vs_all, offsets = [], [], [], [0]
    for i in range(nseries):
        n = int(rng.integers(0, 90))
        gaps = rng.integers(5_000, 40_000, n)
        ts = np.cumsum(gaps) + int(rng.integers(0, 60_000))
        kind = i % 4
        if kind == 0:  # counter with resets
            vs = np.cumsum(rng.exponential(10.0, n))
            for r in rng.integers(0, max(n, 1), 2):
                vs[r:] -= vs[r] if r < n else 0
        elif kind == 1:  # gauge around a large offset
            vs = 1e9 + rng.normal(0, 50, n)
        elif kind == 2:  # wild magnitudes and signs
            vs = rng.normal(0, 1, n) * 10.0 ** rng.integers(-8, 200, n)
        else:  # small integers, often constant
            vs = rng.integers(0, 3, n).astype(float)
        if specials and n:
            for _ in range(int(rng.integers(0, 3))):
                vs[rng.integers(0, n)] = rng.choice([math.nan, math.inf, -math.inf])
        labels.append(Labels.from_dict({"__name__": "m_total", "i": str(i)}))
        ts_all.append(ts.astype(np.int64))
        vs_all.append(vs.astype(np.float64))
        offsets.append(offsets[-1] + n)
    timestamps = np.concatenate(ts_all) if ts_all else np.zeros(0, np.int64)
    values = np.concatenate(vs_all) if vs_all else np.zeros(0)
    steps = list(range(0, 3_600_000, 45_000))
    range_ms = 180_000
    ends = np.asarray(steps, dtype=np.int64)
    lo = np.zeros((nseries, len(steps)), dtype=np.int64)
    hi = np.zeros_like(lo)
    for i in range(nseries):
        ts = ts_all[i]
        lo[i] = offsets[i] + np.searchsorted(ts, ends - range_ms, side="right")
        hi[i] = offsets[i] + np.searchsorted(ts, ends, side="right")
    offs = np.asarray(offsets, dtype=np.int64)
    return StepRange(labels, offs, timestamps, values, lo, hi, ends, range_ms), steps


def windows(rng: StepRange):
    for i in range(rng.num_series):
        for j in range(rng.lo.shape[1]):
            lo, hi = rng.lo[i, j], rng.hi[i, j]
            yield i, j, rng.timestamps[lo:hi].tolist(), rng.values[lo:hi].tolist()


def close(got: float, want: float, rel: float = 1e-9) -> bool:
    if math.isnan(want) or math.isnan(got):
        return math.isnan(want) and math.isnan(got)
    if math.isinf(want) or math.isinf(got):
        return got == want
    return got == pytest.approx(want, rel=rel, abs=1e-300)


def check(
    name: str,
    seed: int,
    reference,
    *extra,
    rel: float = 1e-9,
    min_len: int = 1,
    range_first: bool = False,
    exact=None,
):
    """Compare every window with `reference`; `exact`, if given, is an accepted
    alternative (the mathematically exact answer, where Prometheus's own
    float arithmetic is the less accurate of the two)."""
    rng, steps = random_range(seed)
    args = (rng, *extra) if range_first else (*extra, rng)
    out = call(name, steps, *args)
    by_label = {lbl: k for k, lbl in enumerate(out.labels)}
    checked = 0
    for i, j, ts, vs in windows(rng):
        k = by_label.get(rng.labels[i].without_metric_name(), by_label.get(rng.labels[i]))
        want = reference(ts, vs, steps[j]) if len(vs) >= min_len else None
        present = k is not None and out.present[k, j]
        if want is None:
            assert not present, (name, i, j)
            continue
        assert present, (name, i, j)
        got = float(out.values[k, j])
        ok = close(got, want, rel) or (
            exact is not None and close(got, exact(ts, vs, steps[j]), rel)
        )
        assert ok, (name, i, j, got, want, vs)
        checked += 1
    assert checked > 100


SEEDS = [1, 2, 3, 4]


@pytest.mark.parametrize("seed", SEEDS)
def test_sum_and_avg_over_time(seed):
    check("sum_over_time", seed, lambda ts, vs, t: ref.sum_over_time(vs))
    check("avg_over_time", seed, lambda ts, vs, t: ref.avg_over_time(vs))
    check("count_over_time", seed, lambda ts, vs, t: float(len(vs)))


@pytest.mark.parametrize("seed", SEEDS)
def test_stdvar_over_time(seed):
    # variance of values with huge spread loses digits in any summation order
    def want(ts, vs, t):
        return ref.stdvar_over_time(vs)

    rng, steps = random_range(seed)
    out = call("stdvar_over_time", steps, rng)
    row_of = {lbl: k for k, lbl in enumerate(out.labels)}
    for i, j, _, vs in windows(rng):
        if not vs:
            continue
        expected = want(None, vs, None)
        k = row_of[rng.labels[i].without_metric_name()]
        got = float(out.values[k, j])
        finite = [v for v in vs if math.isfinite(v)]
        spread = max((abs(v) for v in finite), default=0.0)
        tol = 1e-9 * max(abs(expected), 1e-16 * spread * spread)
        if math.isfinite(expected):
            assert abs(got - expected) <= tol, (i, j, got, expected)
        else:
            assert close(got, expected)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    ("name", "counter", "per_second"),
    [("rate", True, True), ("increase", True, False), ("delta", False, False)],
)
def test_extrapolated_rates(seed, name, counter, per_second):
    def want(ts, vs, t):
        return ref.extrapolated_rate(
            ts, vs, t - 180_000, t, 180_000, is_counter=counter, is_rate=per_second
        )

    check(name, seed, want, min_len=2)


def exact_regression(ts: list[int], vs: list[float], at: int) -> tuple[float, float]:
    """Least squares in rational arithmetic (finite values only)."""
    if not all(math.isfinite(v) for v in vs):
        return math.nan, math.nan
    xs = [Fraction(t - at, 1000) for t in ts]
    ys = [Fraction(v) for v in vs]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var
    return float(slope), float(my - slope * mx)


@pytest.mark.parametrize("seed", SEEDS)
def test_deriv_and_predict_linear(seed):
    check(
        "deriv",
        seed,
        lambda ts, vs, t: ref.linear_regression(ts, vs, ts[0])[0],
        min_len=2,
        exact=lambda ts, vs, t: exact_regression(ts, vs, ts[0])[0],
    )

    def predict(fit):
        def at(ts, vs, t):
            slope, intercept = fit(ts, vs, t)
            return slope * 600 + intercept

        return at

    _rng, steps = random_range(seed)
    check(
        "predict_linear",
        seed,
        predict(ref.linear_regression),
        scalar(600, len(steps)),
        min_len=2,
        range_first=True,
        exact=predict(exact_regression),
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_min_max_last_first_quantile(seed):
    def fmax(ts, vs, t):
        real = [v for v in vs if not math.isnan(v)]
        return max(real) if real else math.nan

    def fmin(ts, vs, t):
        real = [v for v in vs if not math.isnan(v)]
        return min(real) if real else math.nan

    check("max_over_time", seed, fmax)
    check("min_over_time", seed, fmin)
    check("last_over_time", seed, lambda ts, vs, t: vs[-1])
    check("first_over_time", seed, lambda ts, vs, t: vs[0])
    _rng, steps = random_range(seed)
    for q in (0.0, 0.3, 0.5, 0.99, 1.0):
        check(
            "quantile_over_time",
            seed,
            lambda ts, vs, t, q=q: ref.quantile(q, vs),
            scalar(q, len(steps)),
        )


@pytest.mark.parametrize("seed", SEEDS)
def test_resets_changes_irate_idelta(seed):
    def resets(ts, vs, t):
        return float(sum(1 for a, b in itertools.pairwise(vs) if b < a))

    def changes(ts, vs, t):
        return float(
            sum(
                1
                for a, b in itertools.pairwise(vs)
                if a != b and not (math.isnan(a) and math.isnan(b))
            )
        )

    def irate(ts, vs, t):
        if len(vs) < 2:
            return None
        a, b = vs[-2], vs[-1]
        return (b if b < a else b - a) / ((ts[-1] - ts[-2]) / 1000)

    def idelta(ts, vs, t):
        return None if len(vs) < 2 else vs[-1] - vs[-2]

    check("resets", seed, resets)
    check("changes", seed, changes)
    check("irate", seed, irate, min_len=2)
    check("idelta", seed, idelta, min_len=2)
