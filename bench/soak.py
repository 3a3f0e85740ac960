"""A fleet's day in miniature, side by side: this service vs a real Prometheus 2.42.

20 member clusters x 5k series remote-write one sample per series every 15 s
(each cluster at its own offset, retrying what is refused, as Prometheus's
queue does), while a Grafana-like dashboard (six panels over the last hour)
refreshes every 10 s, for `--duration` seconds. Both servers get the same
bodies and queries. Printed per server: write and query latency p50/p99,
errors by kind, RSS over time (and how flat it stayed after the first fifth),
and whether every acknowledged sample is there at the end (a
`count_over_time` of all of them against the count acknowledged).

Targets (issue 13): no acknowledged sample lost, no unexplained error, RSS
flat within 10%, p99 query latency at most Prometheus's.

    .venv/bin/python -m bench.soak [--duration 600] [--only aggregator] [--short]

`--short` is the CI shape: 4 clusters x 500 series for 15 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np

from tests.support.fleetload import WRITE_HEADERS, compress, encode_labels, encode_series, quantile
from tests.support.realparts import Process, start_aggregator, start_prometheus

WRITE_INTERVAL_S = 15.0
REFRESH_INTERVAL_S = 10.0
BUCKETS = ("0.05", "0.1", "0.25", "0.5", "1", "+Inf")

PANELS = {
    "requests by cluster": "sum by (cluster) (rate(soak_requests_total[1m]))",
    "top instances": "topk(5, sum by (cluster, instance) (rate(soak_requests_total[1m])))",
    "p99 latency": (
        "histogram_quantile(0.99, sum by (cluster, le) (rate(soak_latency_seconds_bucket[1m])))"
    ),
    "memory by cluster": "avg by (cluster) (soak_memory_bytes)",
    "instances up": "count by (cluster) (soak_memory_bytes)",
}
STAT = "sum(rate(soak_requests_total[1m]))"


@dataclass
class Shape:
    clusters: int
    series: int  # per cluster
    duration_s: float


@dataclass
class Outcome:
    write_latency: list[float] = field(default_factory=list)
    query_latency: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    rss: list[tuple[float, int]] = field(default_factory=list)
    acked_samples: int = 0
    stored_samples: int = -1
    writes: int = 0
    queries: int = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    @property
    def rss_growth(self) -> float:
        """How much RSS grew after warm-up: the median of the last fifth of the run over
        the median of the second fifth, minus one. Query working memory comes and
        goes within a fifth; what stays and accumulates (a leak) shows here."""
        if len(self.rss) < 5:
            return float("nan")
        end = self.rss[-1][0]

        def median(lo: float, hi: float) -> float:
            values = sorted(r for t, r in self.rss if lo * end <= t <= hi * end)
            return float(values[len(values) // 2]) if values else float("nan")

        return median(0.8, 1.0) / median(0.2, 0.4) - 1


def cluster_labels(cluster: int, series: int) -> list[bytes]:
    """The series of one cluster: request counters, latency buckets, a memory gauge."""
    name = f"soak-{cluster:02d}"
    out = []
    buckets = series // 5  # instances with a histogram
    gauges = series // 10
    counters = series - buckets // len(BUCKETS) * len(BUCKETS) - gauges
    for i in range(counters):
        out.append(
            encode_labels(
                [
                    ("__name__", "soak_requests_total"),
                    ("cluster", name),
                    ("code", ("200", "500", "404")[i % 3]),
                    ("instance", f"10.{cluster}.{i // 250}.{i % 250}:8080"),
                    ("job", "api"),
                ]
            )
        )
    for i in range(buckets // len(BUCKETS)):
        for le in BUCKETS:
            out.append(
                encode_labels(
                    [
                        ("__name__", "soak_latency_seconds_bucket"),
                        ("cluster", name),
                        ("instance", f"10.{cluster}.200.{i}:8080"),
                        ("job", "api"),
                        ("le", le),
                    ]
                )
            )
    for i in range(gauges):
        out.append(
            encode_labels(
                [
                    ("__name__", "soak_memory_bytes"),
                    ("cluster", name),
                    ("instance", f"10.{cluster}.100.{i}:9100"),
                    ("job", "node"),
                ]
            )
        )
    return out


def body_at(labels: list[bytes], ts_ms: int, tick: int) -> bytes:
    ts = np.array([ts_ms], dtype=np.int64)
    fields = [
        encode_series(lbl, ts, np.array([float(tick * (1 + i % 5))], dtype=np.float64))
        for i, lbl in enumerate(labels)
    ]
    return compress(fields)


async def soak(base: str, proc: Process, shape: Shape) -> Outcome:
    out = Outcome()
    labels = [cluster_labels(c, shape.series) for c in range(shape.clusters)]
    started = time.monotonic()
    start_ms = int(time.time() * 1000)
    deadline = started + shape.duration_s
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def writer(c: int) -> None:
            await asyncio.sleep(c * WRITE_INTERVAL_S / shape.clusters)
            tick = 0
            while time.monotonic() < deadline:
                tick += 1
                body = body_at(labels[c], int(time.time() * 1000), tick)
                due = time.monotonic() + WRITE_INTERVAL_S
                for attempt in range(5):  # retry what is refused, as a sender's queue does
                    t0 = time.perf_counter()
                    try:
                        async with session.post(
                            f"{base}/api/v1/write", data=body, headers=WRITE_HEADERS
                        ) as r:
                            await r.read()
                            status = r.status
                    except (TimeoutError, aiohttp.ClientError) as exc:
                        out.error(f"write {type(exc).__name__}")
                        status = 0
                    out.write_latency.append(time.perf_counter() - t0)
                    out.writes += 1
                    if status // 100 == 2:
                        out.acked_samples += len(labels[c])
                        break
                    if status:
                        out.error(f"write HTTP {status}")
                    await asyncio.sleep(min(2**attempt, 5))
                await asyncio.sleep(max(0.0, min(due, deadline) - time.monotonic()))

        async def panel(path: str, params: dict[str, str]) -> None:
            t0 = time.perf_counter()
            try:
                async with session.get(f"{base}/api/v1/{path}", params=params) as r:
                    await r.read()
                    if r.status != 200:
                        out.error(f"query HTTP {r.status}")
            except (TimeoutError, aiohttp.ClientError) as exc:
                out.error(f"query {type(exc).__name__}")
            out.query_latency.append(time.perf_counter() - t0)
            out.queries += 1

        async def dashboard() -> None:
            await asyncio.sleep(min(20.0, shape.duration_s / 4))  # some data first
            while time.monotonic() < deadline:
                due = time.monotonic() + REFRESH_INTERVAL_S
                now = time.time()
                rng = {"start": f"{now - 3600:.3f}", "end": f"{now:.3f}", "step": "15"}
                await asyncio.gather(
                    *(panel("query_range", {"query": q, **rng}) for q in PANELS.values()),
                    panel("query", {"query": STAT, "time": f"{now:.3f}"}),
                )
                await asyncio.sleep(max(0.0, min(due, deadline) - time.monotonic()))

        async def sample_rss() -> None:
            while time.monotonic() < deadline:
                out.rss.append((time.monotonic() - started, proc.rss_bytes()))
                await asyncio.sleep(min(5.0, max(0.0, deadline - time.monotonic())))

        await asyncio.gather(*(writer(c) for c in range(shape.clusters)), dashboard(), sample_rss())
        await asyncio.sleep(1)
        window_s = int(time.time() - start_ms / 1000) + 60
        query = f'sum(count_over_time({{__name__=~"soak_.*"}}[{window_s}s]))'
        async with session.get(
            f"{base}/api/v1/query", params={"query": query, "time": f"{time.time():.3f}"}
        ) as r:
            body = await r.json()
        result = body["data"]["result"]
        out.stored_samples = int(float(result[0]["value"][1])) if result else 0
    return out


def run(name: str, start: Callable[[Path], tuple[Process, str]], shape: Shape) -> Outcome:
    with tempfile.TemporaryDirectory(prefix=f"bench-soak-{name}-") as tmp:
        proc, base = start(Path(tmp))
        try:
            return asyncio.run(soak(base, proc, shape))
        finally:
            proc.stop(timeout=60)


def start_service(tmp: Path, cpu: int | None = None) -> tuple[Process, str]:
    return start_aggregator(tmp, config="storage:\n  retention: 24h\n", cpu=cpu)


def start_prom(tmp: Path, cpu: int | None = None) -> tuple[Process, str]:
    return start_prometheus(
        tmp, "global: {}\n", extra_args=["--web.enable-remote-write-receiver"], cpu=cpu
    )


def report(results: dict[str, Outcome]) -> None:
    mib = 2**20
    print(f"\n{'':34}" + "".join(f"{n:>14}" for n in results))
    rows: list[tuple[str, Callable[[Outcome], str]]] = [
        ("writes (requests)", lambda o: f"{o.writes}"),
        ("write p50 ms", lambda o: f"{quantile(o.write_latency, 0.5) * 1000:.1f}"),
        ("write p99 ms", lambda o: f"{quantile(o.write_latency, 0.99) * 1000:.1f}"),
        ("queries", lambda o: f"{o.queries}"),
        ("query p50 ms", lambda o: f"{quantile(o.query_latency, 0.5) * 1000:.1f}"),
        ("query p99 ms", lambda o: f"{quantile(o.query_latency, 0.99) * 1000:.1f}"),
        ("acked samples", lambda o: f"{o.acked_samples}"),
        ("stored samples", lambda o: f"{o.stored_samples}"),
        ("RSS first MiB", lambda o: f"{o.rss[0][1] / mib:.0f}" if o.rss else "-"),
        ("RSS last MiB", lambda o: f"{o.rss[-1][1] / mib:.0f}" if o.rss else "-"),
        ("RSS max MiB", lambda o: f"{max(r for _, r in o.rss) / mib:.0f}" if o.rss else "-"),
        ("RSS growth after warm-up", lambda o: f"{o.rss_growth * 100:+.1f}%"),
        ("errors", lambda o: str(o.errors or "none")),
    ]
    for label, cell in rows:
        print(f"{label:34}" + "".join(f"{cell(o):>14}" for o in results.values()))
    for name, o in results.items():
        print(f"\n{name} RSS over time (s: MiB): " + ", ".join(
            f"{t:.0f}: {r / mib:.0f}" for t, r in o.rss[:: max(1, len(o.rss) // 12)]
        ))  # fmt: skip
    ours = results.get("aggregator")
    if ours is not None:
        checks = {
            "no acknowledged sample lost": ours.stored_samples >= ours.acked_samples,
            "no error": not ours.errors,
            "RSS flat within 10%": abs(ours.rss_growth) <= 0.10,
        }
        prom = results.get("prometheus")
        if prom is not None:
            checks["p99 query latency <= Prometheus's"] = quantile(
                ours.query_latency, 0.99
            ) <= quantile(prom.query_latency, 0.99)
        print()
        for label, ok in checks.items():
            print(f"{'PASS' if ok else 'FAIL'}  {label}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds")
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--series", type=int, default=5000, help="per cluster")
    parser.add_argument("--short", action="store_true", help="CI shape: 4 x 500 for 15 s")
    parser.add_argument("--only", choices=["aggregator", "prometheus"])
    args = parser.parse_args()
    shape = Shape(args.clusters, args.series, args.duration)
    if args.short:
        shape = Shape(4, 500, 15.0)
    pin = hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1
    if pin:
        os.sched_setaffinity(0, {1})
    cpu = 0 if pin else None
    results: dict[str, Outcome] = {}
    if args.only in (None, "aggregator"):
        results["aggregator"] = run("aggregator", lambda t: start_service(t, cpu), shape)
    if args.only in (None, "prometheus"):
        results["prometheus"] = run("prometheus", lambda t: start_prom(t, cpu), shape)
    report(results)


if __name__ == "__main__":
    main()
