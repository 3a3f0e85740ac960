"""Time the PromQL function library on dashboard-sized inputs (not a test).

Builds, as the evaluator would hand them over, a StepRange of N counter
series (default 10k) sampled every 15s over 1h05m with 5m windows, for a
range query (1h at 15s: 240 steps) and an instant query (1 step), and a
StepVector of N classic-histogram bucket series (N/10 histograms x 10
buckets) for histogram_quantile. Prints the median of several runs per
function.

    PYTHONPATH=. python bench/functions.py [--series 10000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

import promql.eval.functions  # noqa: F401  (fills the registry)
from promql.eval.functions.registry import FUNCTIONS, FunctionContext
from promql.parser import parse_expr
from promql.value import EvalValue, StepRange, StepScalar, StepVector
from storage.annotations import Annotations
from storage.labels import Labels

SCRAPE_MS = 15_000
WINDOW_MS = 300_000
HOUR_MS = 3_600_000


def build_range(nseries: int, steps: np.ndarray, rng: np.random.Generator) -> StepRange:
    start = int(steps[0]) - WINDOW_MS
    end = int(steps[-1])
    # per-series scrape phase, so windows do not all align
    phase = rng.integers(0, SCRAPE_MS, nseries)
    nsamples = (end - start) // SCRAPE_MS + 1
    ts = start + phase[:, None] + SCRAPE_MS * np.arange(nsamples)[None, :]
    keep = ts <= end
    incr = rng.gamma(2.0, 50.0, (nseries, nsamples))
    vals = np.cumsum(incr, axis=1) + rng.uniform(0, 1e6, (nseries, 1))
    lengths = keep.sum(axis=1)
    offsets = np.zeros(nseries + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lengths)
    timestamps = ts[keep].astype(np.int64)
    values = vals[keep]
    lo = np.empty((nseries, len(steps)), dtype=np.int64)
    hi = np.empty_like(lo)
    # windows (t - 5m, t]: with a fixed phase per series this is arithmetic
    first_in = np.ceil((steps[None, :] - WINDOW_MS + 1 - start - phase[:, None]) / SCRAPE_MS)
    last_in = np.floor((steps[None, :] - start - phase[:, None]) / SCRAPE_MS)
    lo[:] = offsets[:-1, None] + np.clip(first_in, 0, lengths[:, None]).astype(np.int64)
    hi[:] = offsets[:-1, None] + np.clip(last_in + 1, 0, lengths[:, None]).astype(np.int64)
    labels = [
        Labels.from_dict(
            {"__name__": "http_requests_total", "cluster": f"c{i % 3}", "pod": f"pod-{i}"}
        )
        for i in range(nseries)
    ]
    return StepRange(labels, offsets, timestamps, values, lo, hi, steps.astype(np.int64), WINDOW_MS)


def build_buckets(nseries: int, nsteps: int, rng: np.random.Generator) -> StepVector:
    bounds = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"]
    groups = nseries // len(bounds)
    per_bucket = rng.gamma(2.0, 1.0, (groups, len(bounds), nsteps))
    cumulative = np.cumsum(per_bucket, axis=1)
    labels = [
        Labels.from_dict(
            {"__name__": "req_seconds_bucket", "cluster": f"c{g % 3}", "pod": f"p{g}", "le": le}
        )
        for g in range(groups)
        for le in bounds
    ]
    values = cumulative.reshape(groups * len(bounds), nsteps)
    return StepVector(labels, values, np.ones(values.shape, dtype=np.bool_))


def context(name: str, steps: np.ndarray) -> FunctionContext:
    """As the evaluator builds it: delayed name removal on, argument expressions known."""
    call = parse_expr(QUERIES[name])
    return FunctionContext(
        name=name,
        steps=steps,
        annotations=Annotations(),
        delayed_name_removal=True,
        query_start_ms=int(steps[0]),
        query_end_ms=int(steps[-1]),
        query_step_ms=int(steps[1] - steps[0]) if len(steps) > 1 else 0,
        arg_exprs=call.args,
    )


QUERIES = {
    "rate": "rate(http_requests_total[5m])",
    "increase": "increase(http_requests_total[5m])",
    "avg_over_time": "avg_over_time(http_requests_total[5m])",
    "max_over_time": "max_over_time(http_requests_total[5m])",
    "quantile_over_time": "quantile_over_time(0.9, http_requests_total[5m])",
    "histogram_quantile": "histogram_quantile(0.9, req_seconds_bucket)",
    "stddev_over_time": "stddev_over_time(http_requests_total[5m])",
    "deriv": "deriv(http_requests_total[5m])",
    "changes": "changes(http_requests_total[5m])",
    "irate": "irate(http_requests_total[5m])",
}


def timed(fn: Callable[[], EvalValue], repeat: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds (CPU time is steadier on a shared machine)."""
    fn()  # warm up
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--all", action="store_true", help="also irate, changes, deriv, stddev")
    opts = parser.parse_args()
    rng = np.random.default_rng(42)
    end = 10 * HOUR_MS
    shapes = {
        "range 1h@15s": np.arange(end - HOUR_MS + SCRAPE_MS, end + 1, SCRAPE_MS, dtype=np.int64),
        "instant": np.array([end], dtype=np.int64),
    }
    print(
        f"{opts.series} series, 15s scrape, [5m] windows; "
        f"median of {opts.repeat} runs, wall / cpu ms"
    )
    for shape, steps in shapes.items():
        srange = build_range(opts.series, steps, rng)
        q90 = StepScalar(np.full(len(steps), 0.9))
        buckets = build_buckets(opts.series, len(steps), rng)
        cases: list[tuple[str, tuple[EvalValue, ...]]] = [
            ("rate", (srange,)),
            ("increase", (srange,)),
            ("avg_over_time", (srange,)),
            ("max_over_time", (srange,)),
            ("quantile_over_time", (q90, srange)),
            ("histogram_quantile", (q90, buckets)),
        ]
        if opts.all:
            cases += [
                ("irate", (srange,)),
                ("changes", (srange,)),
                ("deriv", (srange,)),
                ("stddev_over_time", (srange,)),
            ]
        print(f"-- {shape}: {len(steps)} steps, {len(srange.values)} samples")
        for name, args in cases:
            impl = FUNCTIONS[name].impl
            wall, cpu = timed(
                lambda impl=impl, name=name, args=args, steps=steps: impl(
                    context(name, steps), args
                ),
                opts.repeat,
            )
            print(f"   {name:<20} {wall:9.2f} {cpu:9.2f}")


if __name__ == "__main__":
    main()
