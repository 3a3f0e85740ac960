"""Window sums from prefix sums that carry their own rounding errors.

`CompensatedPrefix` recovers each cumsum step's rounding error exactly
(Knuth's TwoSum on the prefix values), so a window sum is accurate to a few
ulps of the window's own magnitude. `checked_window_sums` adds the test for
windows this cannot serve the way Prometheus's sequential Kahan loop does
(non-finite values, overflow risk, heavy cancellation, windows tiny next to
the block's largest values); callers replay those with `scans`.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
BOOL = NDArray[np.bool_]
ScalarT = TypeVar("ScalarT", bound=np.generic)

U = 2.0**-53
"""Unit roundoff of float64."""


def padded_int(x: I64) -> I64:
    """`x` plus a trailing 0, so that `x[lo + 1]` is safe for windows at the end."""
    out = np.empty(len(x) + 1, dtype=x.dtype)
    out[:-1] = x
    out[-1] = 0
    return out


class CompensatedPrefix:
    """Prefix sums of a finite array plus the exact rounding error of each step.

    `P[k] + E[k]` is `sum(x[:k])` to second order: each cumsum step's
    rounding error is recovered exactly with Knuth's TwoSum from the prefix
    values themselves. The errors are tiny next to the prefix, so they are
    summed in int64 fixed point (numpy's integer cumsum is several times
    faster than its float one) at a resolution far below their own size;
    when no step rounded at all (integer data, say), there is nothing to add.
    """

    __slots__ = ("E", "P", "scale")

    def __init__(self, x: F64) -> None:
        n = len(x)
        p = np.empty(n + 1)
        p[0] = 0.0
        np.cumsum(x, out=p[1:])
        prev = p[:-1]
        cur = p[1:]
        bb = cur - prev
        err = cur - bb
        np.subtract(prev, err, out=err)
        np.subtract(x, bb, out=bb)
        err += bb
        self.P = p
        self.E: I64 | None = None
        self.scale = 1.0
        biggest = float(np.abs(err).max()) if n else 0.0
        if biggest == 0.0 or not np.isfinite(biggest):
            return
        # fixed point: the sum of all |err| stays below 2**62
        shift = 62 - int(np.ceil(np.log2(biggest * (n + 1))))
        np.multiply(err, 2.0**shift, out=err)
        np.rint(err, out=err)
        e = np.empty(n + 1, dtype=np.int64)
        e[0] = 0
        np.cumsum(err.astype(np.int64), out=e[1:])
        self.E = e
        self.scale = 2.0**-shift

    def window(self, lo: I64, hi: I64) -> F64:
        s = np.take(self.P, hi)
        s -= np.take(self.P, lo)
        if self.E is not None:
            c = np.take(self.E, hi)
            c -= np.take(self.E, lo)
            s += c * self.scale
        return s


def plain_prefix(x: NDArray[ScalarT]) -> NDArray[ScalarT]:
    """`[0, x0, x0+x1, ...]` (exact for integer dtypes)."""
    out = np.empty(len(x) + 1, dtype=x.dtype)
    out[0] = 0
    np.cumsum(x, out=out[1:])
    return out


def second_order_floor(total_abs: float, nsamples: int) -> float:
    """Window sums below this magnitude may carry more than ~1e-13 relative error.

    The error of the compensated prefix is bounded by roughly
    `u^2 * n^2 * sum|x|` (the plain cumsum of the rounding errors); windows
    far smaller than their block's total need the exact scan instead.
    """
    return U * U * float(nsamples) * float(nsamples) * total_abs * 1e13


COND_LIMIT = 1e12
"""Windows whose |sum| is this many times smaller than their sum of |x| replay the exact loop."""
OVERFLOW_RISK = 1e300


def nonfinite_windows(x: F64, lo: I64, hi: I64) -> BOOL:
    """Windows holding a NaN or ±Inf."""
    bad = padded_int(plain_prefix((~np.isfinite(x)).astype(np.int64)))
    return (bad[hi] - bad[lo]) > 0


def checked_window_sums(x: F64, lo: I64, hi: I64, n: I64) -> tuple[F64, BOOL]:
    """Fast window sums of `x[lo:hi]`, and the windows they may not serve faithfully.

    Flagged windows (to replay with an exact sequential loop): a NaN or
    ±Inf inside; a sum of |x| that could overflow; heavy cancellation (|sum|
    over 1e12 times smaller than the sum of |x|, where even Prometheus's
    Kahan sum is inexact and only the same loop gives the same answer); and
    non-zero windows so small next to the block's largest values that the
    compensated prefix's second-order error could show.
    """
    finite = np.isfinite(x)
    all_finite = bool(finite.all())
    xf = x if all_finite else np.where(finite, x, 0.0)
    sums = CompensatedPrefix(xf).window(lo, hi)
    if not len(x):
        return sums, np.zeros(lo.shape, dtype=np.bool_)
    abs_sum = np.abs(sums)
    lo_x = float(xf.min())
    hi_x = float(xf.max())
    if lo_x >= 0 or hi_x <= 0:
        # one sign only: no cancellation, the window's |sum| is its sum of |x|
        total = max(abs(lo_x), abs(hi_x)) * len(x)
        window_abs = abs_sum
        fallback = np.zeros(abs_sum.shape, dtype=np.bool_)
    else:
        absx = np.abs(xf)
        total = float(absx.sum())
        window_abs = CompensatedPrefix(absx).window(lo, hi)
        fallback = abs_sum * COND_LIMIT < window_abs
    floor = second_order_floor(total, len(x))
    small = abs_sum < floor
    if small.any():
        nonzero = padded_int(plain_prefix((xf != 0).astype(np.int64)))
        small &= (nonzero[hi] - nonzero[lo]) > 0  # exactly-zero windows are exact
        fallback |= small
    if total >= OVERFLOW_RISK or not np.isfinite(total):
        fallback |= window_abs >= OVERFLOW_RISK
        fallback |= ~np.isfinite(sums)
    if not all_finite:
        fallback |= nonfinite_windows(x, lo, hi)
    fallback &= n > 0
    return sums, fallback
