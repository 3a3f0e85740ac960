"""Plain-Python, one-window-at-a-time versions of Prometheus's range functions.

Written straight from the algorithms in Prometheus's `promql/functions.go`
(sequential loops, Kahan-Neumaier sums), as an independent yardstick for the
vectorized implementations. Slow on purpose; tests use small inputs.
"""

from __future__ import annotations

import itertools
import math

Window = tuple[list[int], list[float]]  # timestamps (ms), values


def kahan_inc(inc: float, s: float, c: float) -> tuple[float, float]:
    t = s + inc
    if math.isinf(t):
        c = 0.0
    elif abs(s) >= abs(inc):
        c += (s - t) + inc
    else:
        c += (inc - t) + s
    return t, c


def sum_over_time(vs: list[float]) -> float:
    s = c = 0.0
    for v in vs:
        s, c = kahan_inc(v, s, c)
    return s if math.isinf(s) else s + c


def avg_over_time(vs: list[float]) -> float:
    s, count, mean, c, incremental = vs[0], 1.0, 0.0, 0.0, False
    for i, v in enumerate(vs[1:]):
        count = float(i + 2)
        if not incremental:
            ns, nc = kahan_inc(v, s, c)
            if not math.isinf(ns):
                s, c = ns, nc
                continue
            incremental = True
            mean = s / (count - 1)
            c /= count - 1
        q = (count - 1) / count
        mean, c = kahan_inc(v / count, q * mean, q * c)
    return mean + c if incremental else s / count + c / count


def stdvar_over_time(vs: list[float]) -> float:
    count = mean = cmean = aux = caux = 0.0
    for v in vs:
        count += 1
        delta = v - (mean + cmean)
        mean, cmean = kahan_inc(delta / count, mean, cmean)
        aux, caux = kahan_inc(delta * (v - (mean + cmean)), aux, caux)
    return (aux + caux) / count


def linear_regression(ts: list[int], vs: list[float], intercept_ms: int) -> tuple[float, float]:
    n = sx = cx = sy = cy = sxy = cxy = sx2 = cx2 = 0.0
    const = True
    for i, (t, v) in enumerate(zip(ts, vs, strict=True)):
        if const and i > 0 and v != vs[0]:
            const = False
        n += 1
        x = (t - intercept_ms) / 1e3
        sx, cx = kahan_inc(x, sx, cx)
        sy, cy = kahan_inc(v, sy, cy)
        sxy, cxy = kahan_inc(x * v, sxy, cxy)
        sx2, cx2 = kahan_inc(x * x, sx2, cx2)
    if const:
        if math.isinf(vs[0]):
            return math.nan, math.nan
        return 0.0, vs[0]
    sx, sy, sxy, sx2 = sx + cx, sy + cy, sxy + cxy, sx2 + cx2
    cov = sxy - sx * sy / n
    var = sx2 - sx * sx / n
    slope = cov / var
    return slope, sy / n - slope * sx / n


def extrapolated_rate(
    ts: list[int],
    vs: list[float],
    range_start: int,
    range_end: int,
    range_ms: int,
    *,
    is_counter: bool,
    is_rate: bool,
) -> float | None:
    if len(vs) < 2:
        return None
    result = vs[-1] - vs[0]
    if is_counter:
        for prev, cur in itertools.pairwise(vs):
            if cur < prev:
                result += prev
    to_start = (ts[0] - range_start) / 1000
    to_end = (range_end - ts[-1]) / 1000
    sampled = (ts[-1] - ts[0]) / 1000
    avg = sampled / (len(vs) - 1)
    threshold = avg * 1.1
    if to_start >= threshold:
        to_start = avg / 2
    if is_counter and result > 0 and vs[0] >= 0:
        to_zero = sampled * (vs[0] / result)
        if to_zero < to_start:
            to_start = to_zero
    if to_end >= threshold:
        to_end = avg / 2
    factor = (sampled + to_start + to_end) / sampled
    if is_rate:
        factor /= range_ms / 1000
    return result * factor


def quantile(q: float, vs: list[float]) -> float:
    if not vs or math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = [v for v in vs if math.isnan(v)] + sorted(v for v in vs if not math.isnan(v))
    n = len(ordered)
    rank = q * (n - 1)
    lower = max(0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[lower] * (1 - weight) + ordered[upper] * weight
