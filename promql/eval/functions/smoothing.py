"""`double_exponential_smoothing(v range-vector, sf scalar, tf scalar)`
(Holt linear smoothing; `holt_winters` before Prometheus 3).

The recurrence is sequential within a window, so it runs as one vectorized
update per sample position over all windows at once (windows sorted by
length, so the active ones are always a prefix of the state arrays).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from promql.errors import ExecutionError
from promql.eval.functions.common import BOOL, F64, make_vector, range_arg, scalar_arg
from promql.eval.functions.registry import FunctionContext, register
from promql.eval.functions.scans import (
    scan_generic,
)
from promql.eval.functions.windows import (
    Block,
    map_blocks,
)
from promql.value import EvalValue


def _check_factor(values: F64, steps_used: BOOL, what: str, short: str) -> None:
    """Prometheus fails the query when a step that has data gets a factor outside (0, 1)."""
    used = values[steps_used]
    bad = ~((used > 0) & (used < 1))
    if bad.any():
        got = float(used[bad][0])
        raise ExecutionError(
            f"invalid {what} factor. Expected: 0 < {short} < 1, got: {got:f}"
            if np.isfinite(got)
            else f"invalid {what} factor. Expected: 0 < {short} < 1, got: {_go_f(got)}"
        )


def _go_f(x: float) -> str:
    if np.isnan(x):
        return "NaN"
    return "+Inf" if x > 0 else "-Inf"


@register("double_exponential_smoothing")
def double_exponential_smoothing(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    rng = range_arg(args, 0)
    nsteps = rng.lo.shape[1]
    sf = scalar_arg(args, 1, nsteps)
    tf = scalar_arg(args, 2, nsteps)
    counts = rng.hi - rng.lo
    steps_used = np.asarray((counts > 0).any(axis=0))
    _check_factor(sf, steps_used, "smoothing", "sf")
    _check_factor(tf, steps_used, "trend", "tf")

    def block(blk: Block) -> tuple[F64, BOOL]:
        ok = blk.n >= 2
        out = np.full(blk.n.shape, np.nan)
        if not ok.any():
            return out, ok
        rows, cols = np.nonzero(ok)
        lo = blk.lo[rows, cols]
        n = blk.n[rows, cols]
        x = blk.x
        sf_w = sf[cols]
        tf_w = tf[cols]

        def init(v: F64) -> list[F64]:
            # s1 = first value; the trend starts as the first difference
            trend = x[lo_sorted + 1] - v
            return [np.zeros_like(v), v.copy(), trend]

        def step(k: int, v: F64, state: list[F64]) -> list[F64]:
            s0, s1, trend = state
            m = len(s1)
            sfk = sf_sorted[:m]
            tfk = tf_sorted[:m]
            if k > 1:
                trend = tfk * (s1 - s0) + (1 - tfk) * trend
            smoothed = sfk * v + (1 - sfk) * (s1 + trend)
            return [s1, smoothed, trend]

        order = np.argsort(-n, kind="stable")
        lo_sorted = lo[order]
        sf_sorted = sf_w[order]
        tf_sorted = tf_w[order]
        state, scan = scan_generic(x, lo, n, init, step)
        out[rows, cols] = scan.unsort(state[1])
        return out, ok

    values, present = map_blocks(rng, block)
    return make_vector(ctx, rng.labels, values, present)
