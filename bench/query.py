"""Dashboard queries, side by side: this service vs a real Prometheus 2.42.

Both get the same data through remote write (10k counter series over 3
clusters, ~2k classic-histogram bucket series and a 1k-series gauge, 1h at
15s), then answer the same queries as instant queries and as 1h range queries
at 15s and 60s steps. Servers run pinned to CPU 0, this client to CPU 1; each
query is timed end to end (HTTP, evaluation, JSON) and the median of several
runs is printed with the speedup (Prometheus time / our time; > 1 is faster).

    .venv/bin/python -m bench.query [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bench.ingest import push
from bench.payloads import bodies_of, encode_labels, encode_series
from tests.support.realparts import Process, start_aggregator, start_prometheus

STEP_MS = 15_000
POINTS = 241  # 1h at 15s, both ends included
CLUSTERS = ("eu-west", "us-east", "ap-south")
BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf")

QUERIES = {
    "sum by (cluster) (rate)": "sum by (cluster) (rate(bench_requests_total[5m]))",
    "histogram_quantile 0.99": (
        "histogram_quantile(0.99, sum by (le, cluster) (rate(bench_latency_seconds_bucket[5m])))"
    ),
    "topk(10, rate)": "topk(10, rate(bench_requests_total[5m]))",
    "1k-series selector": "bench_gauge",
}


def series_set() -> list[tuple[bytes, Callable[[int], float]]]:
    """(encoded labels, value at point k) for every series of the data set."""
    out: list[tuple[bytes, Callable[[int], float]]] = []
    for i in range(10_000):
        labels = [
            ("__name__", "bench_requests_total"),
            ("cluster", CLUSTERS[i % 3]),
            ("instance", f"10.0.{i // 250}.{i % 250}:8080"),
            ("job", "api"),
            ("namespace", f"ns-{i % 20}"),
            ("pod", f"api-{i}"),
        ]
        rate = 1 + i % 7
        out.append((encode_labels(labels), lambda k, r=rate: float(k * 15 * r)))
    for c, cluster in enumerate(CLUSTERS):
        for inst in range(60):
            for b, le in enumerate(BUCKETS):
                labels = [
                    ("__name__", "bench_latency_seconds_bucket"),
                    ("cluster", cluster),
                    ("instance", f"10.1.{c}.{inst}:8080"),
                    ("job", "api"),
                    ("le", le),
                ]
                share = (b + 1) / len(BUCKETS)
                out.append(
                    (encode_labels(labels), lambda k, s=share, n=inst: float(int(k * (10 + n) * s)))
                )
    for i in range(1_000):
        labels = [
            ("__name__", "bench_gauge"),
            ("cluster", CLUSTERS[i % 3]),
            ("instance", f"10.2.{i // 250}.{i % 250}:9100"),
            ("job", "node"),
        ]
        out.append((encode_labels(labels), lambda k, j=i: float((k * 7 + j) % 100) / 4))
    return out


def build_load(first_ts: int) -> tuple[list[bytes], int]:
    """Bodies in time order (every series' sample at point 0, then at point 1, ...)
    and the number of bodies per point."""
    series = series_set()
    bodies: list[bytes] = []
    for k in range(POINTS):
        ts = first_ts + k * STEP_MS
        fields = [encode_series(lbl, [(ts, value(k))]) for lbl, value in series]
        per_point = bodies_of(fields, 2000)
        bodies.extend(per_point)
    return bodies, len(per_point)


def timed_get(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=300) as resp:
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{url}: HTTP {resp.status}")
    return time.perf_counter() - started, len(body)


def measure(base: str, end_s: float, runs: int) -> dict[tuple[str, str], tuple[float, int]]:
    """Median seconds and response size per (query, shape)."""
    results = {}
    for name, query in QUERIES.items():
        shapes = {
            "instant": ("query", {"query": query, "time": f"{end_s:.3f}"}),
            "range 15s": (
                "query_range",
                {
                    "query": query,
                    "start": f"{end_s - 3600:.3f}",
                    "end": f"{end_s:.3f}",
                    "step": "15",
                },
            ),
            "range 60s": (
                "query_range",
                {
                    "query": query,
                    "start": f"{end_s - 3600:.3f}",
                    "end": f"{end_s:.3f}",
                    "step": "60",
                },
            ),
        }
        for shape, (path, params) in shapes.items():
            url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
            timed_get(url)  # warm-up
            times = []
            size = 0
            for _ in range(runs):
                secs, size = timed_get(url)
                times.append(secs)
            results[(name, shape)] = (statistics.median(times), size)
    return results


def run(
    name: str,
    start: Callable[[Path], tuple[Process, str]],
    bodies: list[bytes],
    per_point: int,
    end_s: float,
    runs: int,
) -> dict[tuple[str, str], tuple[float, int]]:
    with tempfile.TemporaryDirectory(prefix=f"bench-query-{name}-") as tmp:
        proc, base = start(Path(tmp))
        try:
            load_s = asyncio.run(push(f"{base}/api/v1/write", bodies, 4, per_point))
            print(f"{name}: loaded {len(bodies)} requests in {load_s:.1f}s", flush=True)
            return measure(base, end_s, runs)
        finally:
            proc.stop(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})

    now_ms = int(time.time() * 1000)
    first_ts = now_ms - now_ms % STEP_MS - (POINTS - 1) * STEP_MS - 60_000
    end_s = (first_ts + (POINTS - 1) * STEP_MS) / 1000 + 7.5  # off the sample grid
    bodies, per_point = build_load(first_ts)

    ours = run(
        "aggregator", lambda tmp: start_aggregator(tmp, cpu=0), bodies, per_point, end_s, args.runs
    )
    prom = run(
        "prometheus",
        lambda tmp: start_prometheus(
            tmp, "global: {}\n", extra_args=["--web.enable-remote-write-receiver"], cpu=0
        ),
        bodies,
        per_point,
        end_s,
        args.runs,
    )
    print(f"\n{'query':28}{'shape':11}{'ours ms':>9}{'prom ms':>9}{'speedup':>9}{'KiB':>9}")
    for key, (secs, size) in ours.items():
        p_secs, _ = prom[key]
        print(
            f"{key[0]:28}{key[1]:11}{secs * 1000:9.1f}{p_secs * 1000:9.1f}"
            f"{p_secs / secs:9.2f}{size / 1024:9.0f}"
        )


if __name__ == "__main__":
    main()
