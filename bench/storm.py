"""A query storm, side by side: does the server keep answering probes and writes?

Loads `--series` counter series (20 clusters, 10 metric names) with an hour
of history at 15s, then fires `--queries` concurrent heavy range queries
(`sum by (cluster) (rate({__name__=~"metric_.*"}[5m]))` over the hour at
step 15s) while a readiness probe (every 100 ms) and a member's remote write
(1000 series every 250 ms) keep going. Printed per server: the probes' and
writes' p50/p99/max latency during the storm, the queries' latencies and
answers by status, and RSS before and at its peak. This is the measurement
issue 13 starts from (`/-/ready` p99 5.1 s, writes p99 5.9 s).

    .venv/bin/python -m bench.storm [--series 50000] [--queries 20] [--only aggregator]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.support.fleetload import (
    WRITE_HEADERS,
    Probe,
    fleet_labels,
    history_bodies,
    push_all,
    quantile,
    round_bodies,
)
from tests.support.realparts import Process, start_aggregator, start_prometheus

STEP_MS = 15_000
POINTS = 241
QUERY = 'sum by (cluster) (rate({__name__=~"metric_.*"}[5m]))'


@dataclass
class StormResult:
    load_s: float
    storm_s: float
    ready: Probe
    write: Probe
    q_p50: float
    q_max: float
    q_status: dict[str, int]
    rss_before: int
    rss_peak: int


def storm(
    base: str,
    proc: Process,
    *,
    series: int,
    queries: int,
    rounds: int,
    auth: aiohttp.BasicAuth | None = None,
    profile: str = "",
) -> StormResult:
    now_ms = int(time.time() * 1000)
    first_ts = now_ms - now_ms % STEP_MS - POINTS * STEP_MS
    labels = fleet_labels(series)
    bodies = history_bodies(labels, first_ts, POINTS, STEP_MS)
    live = fleet_labels(1000, cluster_prefix="live-")
    end_s = (first_ts + (POINTS - 1) * STEP_MS) / 1000

    async def main() -> StormResult:
        timeout = aiohttp.ClientTimeout(total=600)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            started = time.perf_counter()
            await push_all(session, base, bodies, concurrency=4)
            load_s = time.perf_counter() - started
            await asyncio.sleep(2)
            rss_before = proc.rss_bytes()
            stop = asyncio.Event()
            ready = Probe("ready", 0.1)
            writes = Probe("write", 0.25)
            seq = [0]

            async def get_ready() -> str:
                async with session.get(
                    f"{base}/-/ready", timeout=aiohttp.ClientTimeout(total=60)
                ) as r:
                    await r.read()
                    return str(r.status)

            async def write() -> str:
                seq[0] += 1
                body = round_bodies(live, int(time.time() * 1000), float(seq[0]))[0]
                async with session.post(
                    f"{base}/api/v1/write",
                    data=body,
                    headers=WRITE_HEADERS,
                    timeout=aiohttp.ClientTimeout(total=60),
                ) as r:
                    await r.read()
                    return str(r.status)

            peak = [rss_before]
            sampling = threading.Event()

            def sample_rss() -> None:
                while not sampling.wait(0.2):
                    try:
                        peak[0] = max(peak[0], proc.rss_bytes())
                    except (OSError, RuntimeError):
                        return

            sampler = threading.Thread(target=sample_rss, daemon=True)
            sampler.start()
            probes = [
                asyncio.create_task(ready.run(get_ready, stop)),
                asyncio.create_task(writes.run(write, stop)),
            ]
            await asyncio.sleep(1)
            q_lat: list[float] = []
            q_status: dict[str, int] = {}

            async def one_query() -> None:
                params = {
                    "query": QUERY,
                    "start": f"{end_s - 3600:.3f}",
                    "end": f"{end_s:.3f}",
                    "step": "15",
                }
                t0 = time.perf_counter()
                try:
                    async with session.get(
                        f"{base}/api/v1/query_range", params=params, auth=auth
                    ) as r:
                        await r.read()
                        status = str(r.status)
                except (TimeoutError, aiohttp.ClientError) as exc:
                    status = type(exc).__name__
                q_lat.append(time.perf_counter() - t0)
                q_status[status] = q_status.get(status, 0) + 1

            spy = None
            if profile:
                spy = await asyncio.create_subprocess_exec(
                    "py-spy", "record", "--format", "raw", "--threads", "--idle", "-r", "200",
                    "-o", profile, "-p", str(proc.pid),
                )  # fmt: skip
            storm_started = time.perf_counter()
            for _ in range(rounds):
                await asyncio.gather(*(one_query() for _ in range(queries)))
            storm_s = time.perf_counter() - storm_started
            if spy is not None:
                spy.send_signal(2)
                await spy.wait()
            stop.set()
            await asyncio.gather(*probes)
            sampling.set()
            sampler.join()
            return StormResult(
                load_s,
                storm_s,
                ready,
                writes,
                quantile(q_lat, 0.5),
                max(q_lat),
                q_status,
                rss_before,
                peak[0],
            )

    return asyncio.run(main())


def run(
    name: str, start: Callable[[Path], tuple[Process, str]], args: argparse.Namespace
) -> StormResult:
    with tempfile.TemporaryDirectory(prefix=f"bench-storm-{name}-") as tmp:
        proc, base = start(Path(tmp))
        try:
            out = storm(
                base,
                proc,
                series=args.series,
                queries=args.queries,
                rounds=args.rounds,
                profile=args.profile if name == "aggregator" else "",
            )
        finally:
            proc.stop(timeout=60)
    return out


def report(name: str, r: StormResult) -> None:
    mib = 2**20
    print(
        f"\n== {name}: loaded in {r.load_s:.1f}s; storm {r.storm_s:.1f}s\n"
        f"  {r.ready.summary()}\n  {r.write.summary()}\n"
        f"  queries: p50={r.q_p50:.2f}s max={r.q_max:.2f}s statuses={r.q_status}\n"
        f"  RSS {r.rss_before / mib:.0f} MiB -> peak {r.rss_peak / mib:.0f} MiB",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", choices=["aggregator", "prometheus"])
    parser.add_argument("--config", default="", help="extra YAML for the service's config")
    parser.add_argument("--profile", default="", help="py-spy raw profile of the service")
    parser.add_argument("--pin", action="store_true", help="server on CPU 0, client on CPU 1")
    args = parser.parse_args()
    cpu = 0 if args.pin else None
    if args.pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})
    config = "storage:\n  retention: 24h\n" + args.config
    if args.only in (None, "aggregator"):
        report(
            "aggregator",
            run("aggregator", lambda t: start_aggregator(t, config=config, cpu=cpu), args),
        )
    if args.only in (None, "prometheus"):
        report(
            "prometheus",
            run(
                "prometheus",
                lambda t: start_prometheus(
                    t, "global: {}\n", extra_args=["--web.enable-remote-write-receiver"], cpu=cpu
                ),
                args,
            ),
        )


if __name__ == "__main__":
    main()
