"""Time the PromQL engine alone on a MemoryStorage (no HTTP, no Prometheus).

Loads 10k counter series (3 clusters) plus classic histogram buckets, 1h at
15s, and times typical dashboard queries as instant queries and as 1h range
queries at a 15s step. Prints the median of several runs per query.

    PYTHONPATH=. python bench/engine_local.py [--series 10000] [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import numpy as np

from promql.engine import Engine
from storage.labels import Labels
from storage.memory import MemoryStorage

HOUR_MS = 3_600_000
STEP_MS = 15_000


def build(series: int, buckets_series: int) -> MemoryStorage:
    st = MemoryStorage()
    ts = np.arange(0, HOUR_MS + 1, STEP_MS, dtype=np.int64)
    rng = np.random.default_rng(1)
    for i in range(series):
        lbl = Labels.from_dict(
            {
                "__name__": "x",
                "cluster": f"c{i % 3}",
                "instance": f"i{i}",
                "job": f"job{i % 20}",
                "pod": f"pod-{i}",
            }
        )
        st.add(lbl, ts, np.cumsum(rng.integers(0, 100, len(ts))).astype(np.float64))
    les = ["0.1", "0.5", "1", "5", "+Inf"]
    for i in range(buckets_series // len(les)):
        base = rng.integers(0, 10, len(ts))
        acc = np.zeros(len(ts))
        for le in les:
            acc = acc + np.cumsum(base)
            lbl = Labels.from_dict(
                {"__name__": "h_bucket", "cluster": f"c{i % 3}", "instance": f"i{i}", "le": le}
            )
            st.add(lbl, ts, acc.copy())
    return st


class CachedQueryable:
    """Memoizes selects of a MemoryStorage, so timings show the engine, not the scan.

    MemoryStorage matches series by scanning every label set per select (it is
    a test store, not the indexed head); `--storage` times that too.
    """

    def __init__(self, inner: MemoryStorage) -> None:
        self.inner = inner
        self.cache: dict[object, object] = {}

    def querier(self, start_ms: int, end_ms: int):  # type: ignore[no-untyped-def]
        outer = self

        class _Q:
            async def __aenter__(self):  # type: ignore[no-untyped-def]
                self.cm = outer.inner.querier(start_ms, end_ms)
                self.q = await self.cm.__aenter__()
                return self

            async def __aexit__(self, *exc):  # type: ignore[no-untyped-def]
                return await self.cm.__aexit__(*exc)

            async def select(self, matchers, s, e, *, hints=None):  # type: ignore[no-untyped-def]
                key = (tuple(str(m) for m in matchers), s, e)
                if key not in outer.cache:
                    outer.cache[key] = await self.q.select(matchers, s, e, hints=hints)
                return outer.cache[key]

        return _Q()


async def timed(engine: Engine, st: MemoryStorage, query: str, *, rng: bool, runs: int) -> float:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        if rng:
            await engine.range_query(st, query, 0, HOUR_MS, STEP_MS)
        else:
            await engine.instant_query(st, query, HOUR_MS)
        out.append(time.perf_counter() - t0)
    return statistics.median(out) * 1000


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--storage", action="store_true", help="include MemoryStorage's scan")
    args = ap.parse_args()
    t0 = time.perf_counter()
    st = build(args.series, args.series)
    print(
        f"loaded {args.series} series + {args.series} bucket series in "
        f"{time.perf_counter() - t0:.1f}s"
    )
    engine = Engine()
    store = st if args.storage else CachedQueryable(st)
    queries = [
        "sum by (cluster) (rate(x[5m]))",
        "histogram_quantile(0.99, sum by (le, cluster) (rate(h_bucket[5m])))",
        "topk(10, rate(x[5m]))",
        'x{job=~"job1|job2"}',
        "sum by (cluster) (x)",
    ]
    print(f"{'query':70s} {'instant ms':>10s} {'range ms':>10s}")
    for q in queries:
        try:
            inst = await timed(engine, store, q, rng=False, runs=args.runs)
            rng = await timed(engine, store, q, rng=True, runs=max(3, args.runs // 2))
            print(f"{q:70s} {inst:10.1f} {rng:10.1f}")
        except Exception as exc:  # report and go on: a missing function is not fatal here
            print(f"{q:70s} error: {exc}")


if __name__ == "__main__":
    asyncio.run(main())
