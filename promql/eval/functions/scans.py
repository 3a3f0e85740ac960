"""Prometheus's sequential per-window loops, replayed exactly.

Kahan-Neumaier sums, the avg_over_time overflow switch, Welford variance,
the linear-regression sums, compare-over-time: each runs as one vectorized
update per sample position over a selection of windows (longest first, so
the active windows are always a prefix of the state arrays). They are the
fallback for windows the fast paths cannot serve faithfully, and the whole
implementation of the rarely used order-dependent functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
BOOL = NDArray[np.bool_]


def kahan_inc(inc: F64, s: F64, c: F64) -> tuple[F64, F64]:
    """Prometheus `kahansum.Inc` on arrays: returns the new (sum, compensation)."""
    t = s + inc
    big = np.abs(s) >= np.abs(inc)
    comp = np.where(big, (s - t) + inc, (inc - t) + s)
    comp += c
    comp[np.isinf(t)] = 0.0
    return t, comp


class _Scan:
    """Iterate the sample positions of selected windows, longest windows first.

    At position k only windows with more than k samples are active; sorting
    windows by length makes them a prefix `[:m]` of the state arrays.
    """

    def __init__(self, lo: I64, n: I64) -> None:
        self.order = np.argsort(-n, kind="stable")
        self.lo = lo[self.order]
        self.n = n[self.order]
        self.size = len(n)
        self.kmax = int(self.n[0]) if len(n) else 0
        self.active = np.searchsorted(-self.n, -np.arange(self.kmax), side="left")

    def positions(self) -> Iterator[tuple[int, int, I64]]:
        for k in range(self.kmax):
            m = int(self.active[k])
            yield k, m, self.lo[:m] + k

    def unsort(self, sorted_values: F64) -> F64:
        out = np.empty_like(sorted_values)
        out[self.order] = sorted_values
        return out


def scan_sum(x: F64, lo: I64, n: I64) -> F64:
    """sum_over_time exactly as Prometheus: Kahan-Neumaier, then sum + c unless sum is ±Inf."""
    sc = _Scan(lo, n)
    s = np.zeros(sc.size)
    c = np.zeros(sc.size)
    with np.errstate(all="ignore"):
        for _, m, pos in sc.positions():
            s[:m], c[:m] = kahan_inc(x[pos], s[:m], c[:m])
        res = np.where(np.isinf(s), s, s + c)
    return sc.unsort(res)


def scan_avg(x: F64, lo: I64, n: I64) -> F64:
    """avg_over_time exactly as Prometheus: direct Kahan mean, incremental mean after overflow."""
    sc = _Scan(lo, n)
    size = sc.size
    s = np.zeros(size)
    c = np.zeros(size)
    mean = np.zeros(size)
    incr = np.zeros(size, dtype=np.bool_)
    with np.errstate(all="ignore"):
        for k, m, pos in sc.positions():
            v = x[pos]
            if k == 0:
                s[:m] = v
                continue
            count = float(k + 1)
            si, ci, mi, ii = s[:m], c[:m], mean[:m], incr[:m]
            ns, nc = kahan_inc(v, si, ci)
            direct_ok = ~ii & ~np.isinf(ns)
            switch = ~ii & ~direct_ok
            si[direct_ok] = ns[direct_ok]
            ci[direct_ok] = nc[direct_ok]
            if switch.any():
                mi[switch] = si[switch] / (count - 1)
                ci[switch] = ci[switch] / (count - 1)
                ii[switch] = True
            upd = ii
            if upd.any():
                q = (count - 1) / count
                nm, nc2 = kahan_inc(v[upd] / count, q * mi[upd], q * ci[upd])
                mi[upd] = nm
                ci[upd] = nc2
        cnt = sc.n.astype(np.float64)
        res = np.where(incr, mean + c, s / cnt + c / cnt)
    return sc.unsort(res)


def scan_variance(x: F64, lo: I64, n: I64) -> F64:
    """stdvar_over_time exactly as Prometheus: Welford with Kahan-compensated mean and aux."""
    sc = _Scan(lo, n)
    size = sc.size
    mean = np.zeros(size)
    cmean = np.zeros(size)
    aux = np.zeros(size)
    caux = np.zeros(size)
    with np.errstate(all="ignore"):
        for k, m, pos in sc.positions():
            v = x[pos]
            count = float(k + 1)
            delta = v - (mean[:m] + cmean[:m])
            mean[:m], cmean[:m] = kahan_inc(delta / count, mean[:m], cmean[:m])
            aux[:m], caux[:m] = kahan_inc(delta * (v - (mean[:m] + cmean[:m])), aux[:m], caux[:m])
        res = (aux + caux) / sc.n.astype(np.float64)
    return sc.unsort(res)


def scan_regression(x: F64, t: I64, lo: I64, n: I64, intercept_ms: I64) -> tuple[F64, F64]:
    """Prometheus `linearRegression` per window: (slope, intercept at `intercept_ms`)."""
    sc = _Scan(lo, n)
    size = sc.size
    t0 = intercept_ms[sc.order]
    sums = [np.zeros(size) for _ in range(8)]  # sumX,cX,sumY,cY,sumXY,cXY,sumX2,cX2
    init_y = np.zeros(size)
    const_y = np.ones(size, dtype=np.bool_)
    with np.errstate(all="ignore"):
        for k, m, pos in sc.positions():
            y = x[pos]
            if k == 0:
                init_y[:m] = y
            else:
                const_y[:m] &= ~(y != init_y[:m])
            xv = (t[pos] - t0[:m]).astype(np.float64) / 1e3
            for j, inc in enumerate((xv, y, xv * y, xv * xv)):
                sums[2 * j][:m], sums[2 * j + 1][:m] = kahan_inc(
                    inc, sums[2 * j][:m], sums[2 * j + 1][:m]
                )
        cnt = sc.n.astype(np.float64)
        sum_x = sums[0] + sums[1]
        sum_y = sums[2] + sums[3]
        sum_xy = sums[4] + sums[5]
        sum_x2 = sums[6] + sums[7]
        cov = sum_xy - sum_x * sum_y / cnt
        var = sum_x2 - sum_x * sum_x / cnt
        slope = cov / var
        intercept = sum_y / cnt - slope * sum_x / cnt
        inf_y = np.isinf(init_y)
        slope = np.where(const_y, np.where(inf_y, np.nan, 0.0), slope)
        intercept = np.where(const_y, np.where(inf_y, np.nan, init_y), intercept)
    return sc.unsort(slope), sc.unsort(intercept)


def scan_compare(x: F64, lo: I64, n: I64, better: Callable[[F64, F64], BOOL]) -> tuple[F64, I64]:
    """Prometheus `compareOverTime`: (best value, flat index of the sample chosen)."""
    sc = _Scan(lo, n)
    best = np.zeros(sc.size)
    where = sc.lo.copy()
    with np.errstate(all="ignore"):
        for k, m, pos in sc.positions():
            v = x[pos]
            if k == 0:
                best[:m] = v
                continue
            take = better(v, best[:m]) | np.isnan(best[:m])
            best[:m] = np.where(take, v, best[:m])
            where[:m] = np.where(take, pos, where[:m])
    out_idx = np.empty_like(where)
    out_idx[sc.order] = where
    return sc.unsort(best), out_idx


def scan_generic(
    x: F64, lo: I64, n: I64, init: Callable[[F64], list[F64]], step: Callable[..., list[F64]]
) -> tuple[list[F64], _Scan]:
    """Run a custom sequential recurrence; returns the final state in sorted window order."""
    sc = _Scan(lo, n)
    state: list[F64] = []
    with np.errstate(all="ignore"):
        for k, m, pos in sc.positions():
            v = x[pos]
            if k == 0:
                state = init(v)
                continue
            new = step(k, v, [s[:m] for s in state])
            for s, ns in zip(state, new, strict=True):
                s[:m] = ns
    return state, sc
