"""Remote-write ingest, side by side: this service vs a real Prometheus 2.42 receiver.

Both receivers get the same pre-encoded payloads (about 8 labels per series,
2000 samples per request) in two shapes: 1 sample per series per request (what
Prometheus sends from scrapes) and 5. Each receiver runs pinned to CPU 0, this
generator to CPU 1. Printed per shape: samples/s of each once the series exist
(and while creating them), the ratio, and each one's RSS after 10k and 100k
series.

The same samples are also sent to this service as remote write 2.0 (a symbols
table per request, metadata with every series, as Prometheus 3 sends them):
the "RW 2.0" lines put that rate beside Prometheus 2.42's 1.0 rate (it has no
2.0 receiver) and, last column, beside this service's own 1.0 rate.

    .venv/bin/python -m bench.ingest [--rounds-10k 20] [--rounds-100k 6] [--fsync batch]
                                     [--protocols 1,2] [--shapes 1,5]
                                     [--histogram-series 10000] [--histogram-rounds 11]

A last section does the same with native histograms (`bench.nhpayloads`: one
schema-3 histogram with 12 buckets per series per request, 500 per request);
Prometheus receives them with `--enable-feature=native-histograms`.
`--histogram-rounds 0` skips it; `--shapes ""` runs only it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench import nhpayloads
from bench.payloads import (
    HEADERS,
    HEADERS_V2,
    SAMPLES_PER_REQUEST,
    bodies_of,
    bodies_of_v2,
    encode_labels,
    encode_series,
)
from tests.support.realparts import Process, start_aggregator, start_prometheus

SCRAPE_INTERVAL_MS = 15_000


def series_labels(i: int) -> bytes:
    """Serialized Label fields of bench series `i` (8 labels, sorted by name)."""
    return encode_labels(series_pairs(i))


def series_pairs(i: int) -> list[tuple[str, str]]:
    """The labels of bench series `i` (8, sorted by name)."""
    return [
        ("__name__", f"bench_metric_{i % 100}"),
        ("cluster", "bench"),
        ("container", "app"),
        ("instance", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}:9100"),
        ("job", "node-exporter"),
        ("mode", f"mode{i % 8}"),
        ("namespace", f"ns-{i % 50}"),
        ("pod", f"pod-{i}"),
    ]


def build_round(
    labels: Sequence[bytes], first_ts: int, per_series: int, value_base: float
) -> list[bytes]:
    """One round: every series gets `per_series` samples; bodies of 2000 samples each."""
    if labels and isinstance(labels[0], list):  # label pairs: remote write 2.0
        series = [
            (
                pairs,
                [
                    (first_ts + k * SCRAPE_INTERVAL_MS, value_base + i + k)
                    for k in range(per_series)
                ],
            )
            for i, pairs in enumerate(labels)
        ]
        return bodies_of_v2(series, SAMPLES_PER_REQUEST // per_series)
    fields = [
        encode_series(
            lbl,
            [(first_ts + k * SCRAPE_INTERVAL_MS, value_base + i + k) for k in range(per_series)],
        )
        for i, lbl in enumerate(labels)
    ]
    return bodies_of(fields, SAMPLES_PER_REQUEST // per_series)


@dataclass
class Phase:
    """The payloads of one phase: a first round creating series, then steady rounds."""

    series: int
    first: list[bytes]
    steady: list[list[bytes]]

    @property
    def steady_samples(self) -> int:
        return len(self.steady) * self.series * self._per_series

    _per_series: int = 1


def build_phases(
    per_series: int, rounds_10k: int, rounds_100k: int, protocol: int = 1
) -> list[Phase]:
    """The payloads of both phases, as remote write `protocol` (1 or 2) requests."""
    labels: list = [series_labels(i) if protocol == 1 else series_pairs(i) for i in range(100_000)]
    now = int(time.time() * 1000)
    ts = now - now % SCRAPE_INTERVAL_MS - 40 * 60_000
    phases = []
    for count, rounds in ((10_000, rounds_10k), (100_000, rounds_100k)):
        built = []
        for r in range(rounds):
            built.append(build_round(labels[:count], ts, per_series, float(r)))
            ts += per_series * SCRAPE_INTERVAL_MS
        phases.append(Phase(count, built[0], built[1:], per_series))
    return phases


async def push(
    url: str,
    bodies: Sequence[bytes],
    concurrency: int,
    per_round: int,
    headers: dict[str, str] = HEADERS,
) -> float:
    """POST every body with `concurrency` senders; returns the seconds taken.

    `bodies` are rounds of `per_round` requests, request `k` of every round
    carrying the same series. Like Prometheus's shards, each sender owns a
    fixed set of those positions and sends them in order, so no series ever
    has two requests in flight and samples arrive in order per series.
    """
    shards = [
        [body for i, body in enumerate(bodies) if (i % per_round) % concurrency == w]
        for w in range(concurrency)
    ]
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def sender(own: list[bytes]) -> None:
            for body in own:
                async with session.post(url, data=body, headers=headers) as resp:
                    if resp.status // 100 != 2:
                        text = await resp.text()
                        raise RuntimeError(f"{url}: HTTP {resp.status}: {text[:500]}")
                    await resp.read()

        started = time.perf_counter()
        await asyncio.gather(*(sender(own) for own in shards))
        return time.perf_counter() - started


@dataclass
class Measured:
    create_rate: list[float]
    steady_rate: list[float]
    rss: list[int]


def run_receiver(
    name: str,
    start: Callable[[Path], tuple[Process, str]],
    phases: Sequence[Phase],
    per_series: int,
    concurrency: int,
    headers: dict[str, str] = HEADERS,
) -> Measured:
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        proc, base = start(Path(tmp))
        url = f"{base}/api/v1/write"
        out = Measured([], [], [])
        try:
            for phase in phases:
                created = phase.series * per_series
                per_round = len(phase.first)
                secs = asyncio.run(push(url, phase.first, concurrency, per_round, headers))
                out.create_rate.append(created / secs)
                flat = [b for rnd in phase.steady for b in rnd]
                secs = asyncio.run(push(url, flat, concurrency, per_round, headers))
                out.steady_rate.append(phase.steady_samples / secs)
                time.sleep(1.0)  # let background work settle before reading RSS
                out.rss.append(proc.rss_bytes())
        finally:
            proc.stop(timeout=60)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds-10k", type=int, default=21)
    parser.add_argument("--rounds-100k", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--fsync", default="batch", help="WAL fsync policy of the service")
    parser.add_argument("--shapes", default="1,5", help="samples per series per request")
    parser.add_argument("--protocols", default="1,2", help="remote write versions sent to us")
    parser.add_argument("--histogram-series", type=int, default=10_000)
    parser.add_argument("--histogram-rounds", type=int, default=11)
    args = parser.parse_args()

    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(0, {1})
    service_config = f"storage:\n  wal_fsync: {args.fsync}\n"

    def start_service(tmp: Path) -> tuple[Process, str]:
        return start_aggregator(tmp, config=service_config, cpu=0)

    def start_prom(tmp: Path) -> tuple[Process, str]:
        return start_prometheus(
            tmp, "global: {}\n", extra_args=["--web.enable-remote-write-receiver"], cpu=0
        )

    protocols = [int(p) for p in args.protocols.split(",")]
    for per_series in (int(s) for s in args.shapes.split(",") if s):
        phases = build_phases(per_series, args.rounds_10k, args.rounds_100k)
        ours = run_receiver("aggregator", start_service, phases, per_series, args.concurrency)
        ours_v2 = None
        if 2 in protocols:
            phases_v2 = build_phases(per_series, args.rounds_10k, args.rounds_100k, protocol=2)
            ours_v2 = run_receiver(
                "aggregator-rw2", start_service, phases_v2, per_series, args.concurrency, HEADERS_V2
            )
        prom = run_receiver("prometheus", start_prom, phases, per_series, args.concurrency)
        print(
            f"\n== {per_series} sample(s) per series per request, "
            f"{SAMPLES_PER_REQUEST} samples per request, fsync={args.fsync}"
        )
        print(f"{'':32}{'aggregator':>14}{'prometheus':>14}{'ratio':>8}{'vs RW 1.0':>10}")
        for i, phase in enumerate(phases):
            k = phase.series // 1000
            rows = [
                (f"samples/s {k}k steady", ours.steady_rate[i], prom.steady_rate[i], None),
                (f"samples/s {k}k creating", ours.create_rate[i], prom.create_rate[i], None),
            ]
            if ours_v2 is not None:
                rows += [
                    (
                        f"samples/s {k}k steady RW 2.0",
                        ours_v2.steady_rate[i],
                        prom.steady_rate[i],
                        ours.steady_rate[i],
                    ),
                    (
                        f"samples/s {k}k creating RW 2.0",
                        ours_v2.create_rate[i],
                        prom.create_rate[i],
                        ours.create_rate[i],
                    ),
                ]
            for label, a, p, own in rows:
                extra = f"{a / own:10.2f}" if own else ""
                print(f"{label:32}{a:14,.0f}{p:14,.0f}{a / p:8.2f}{extra}")
            a, p = ours.rss[i] / 2**20, prom.rss[i] / 2**20
            print(f"{f'RSS MiB after {k}k series':32}{a:14.1f}{p:14.1f}{a / p:8.2f}")
            if ours_v2 is not None:
                a = ours_v2.rss[i] / 2**20
                print(f"{f'RSS MiB after {k}k series RW 2.0':32}{a:14.1f}{p:14.1f}{a / p:8.2f}")
    if args.histogram_rounds > 1:
        bench_histograms(args, start_service)


def bench_histograms(args: argparse.Namespace, start_service: Callable) -> None:
    """Native histogram samples/s, the service vs Prometheus (native histograms on)."""
    n = args.histogram_series
    now = int(time.time() * 1000)
    ts = now - now % SCRAPE_INTERVAL_MS - 40 * 60_000
    rounds = nhpayloads.build_rounds(n, args.histogram_rounds, ts, SCRAPE_INTERVAL_MS)
    phases = [Phase(n, rounds[0], rounds[1:], 1)]

    def start_prom(tmp: Path) -> tuple[Process, str]:
        return start_prometheus(
            tmp,
            "global: {}\n",
            extra_args=["--web.enable-remote-write-receiver", "--enable-feature=native-histograms"],
            cpu=0,
        )

    ours = run_receiver("aggregator", start_service, phases, 1, args.concurrency)
    prom = run_receiver("prometheus", start_prom, phases, 1, args.concurrency)
    print(
        f"\n== native histograms: 1 per series per request, "
        f"{nhpayloads.HISTOGRAMS_PER_REQUEST} per request, fsync={args.fsync}"
    )
    print(f"{'':28}{'aggregator':>14}{'prometheus':>14}{'ratio':>8}")
    k = n // 1000
    for label, a, p in (
        (f"histograms/s {k}k steady", ours.steady_rate[0], prom.steady_rate[0]),
        (f"histograms/s {k}k creating", ours.create_rate[0], prom.create_rate[0]),
    ):
        print(f"{label:28}{a:14,.0f}{p:14,.0f}{a / p:8.2f}")
    a, p = ours.rss[0] / 2**20, prom.rss[0] / 2**20
    print(f"{f'RSS MiB after {k}k series':28}{a:14.1f}{p:14.1f}{a / p:8.2f}")


if __name__ == "__main__":
    main()
