"""Overload: 50 concurrent heavy queries against 100k series while a member keeps writing.

The service runs as its own process with a memory total and the default
concurrency (one read per CPU). Throughout the storm a readiness probe asks
`/-/ready` every 100 ms and a member writes 1000 series every 250 ms; RSS is
sampled every 100 ms. Every write must be acknowledged or told to retry (429
or 503 with Retry-After; nothing else), `/-/ready` and writes must answer
within a second at the 99th percentile, RSS must stay under `query.max_memory`,
and every query must get a Prometheus answer: data, or an error naming the
limit it hit.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import aiohttp
import pytest

from tests.support.fleetload import (
    WRITE_HEADERS,
    Probe,
    fleet_labels,
    history_bodies,
    push_all,
    round_bodies,
)
from tests.support.realparts import start_aggregator

pytestmark = pytest.mark.integration

SERIES = 100_000
STEP_MS = 60_000
POINTS = 16  # a quarter of an hour
MAX_MEMORY = 2 << 30
QUERY = 'sum by (cluster) (rate({__name__=~"metric_.*"}[5m]))'


def test_fifty_heavy_queries_do_not_stall_probes_or_writes(tmp_path: Path) -> None:
    proc, base = start_aggregator(
        tmp_path,
        config=(
            "query:\n  timeout: 10s\n  max_queued: 10\n"
            f"  max_memory: {MAX_MEMORY}\n  max_query_memory: 768MiB\n"
        ),
    )
    try:
        now_ms = int(time.time() * 1000)
        first_ts = now_ms - now_ms % STEP_MS - POINTS * STEP_MS
        bodies = history_bodies(fleet_labels(SERIES), first_ts, POINTS, STEP_MS)
        live = fleet_labels(1000, cluster_prefix="live-")
        end_s = (first_ts + (POINTS - 1) * STEP_MS) / 1000
        peak = [0]
        sampling = threading.Event()

        def sample_rss() -> None:
            while not sampling.wait(0.1):
                peak[0] = max(peak[0], proc.rss_bytes())

        async def main() -> tuple[Probe, Probe, dict[str, int], list[str]]:
            timeout = aiohttp.ClientTimeout(total=120)
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
                await push_all(session, base, bodies, concurrency=4)
                stop = asyncio.Event()
                ready, writes = Probe("ready", 0.1), Probe("write", 0.25)
                seq = [0]

                async def get_ready() -> str:
                    async with session.get(f"{base}/-/ready") as r:
                        await r.read()
                        return str(r.status)

                async def write() -> str:
                    seq[0] += 1
                    body = round_bodies(live, int(time.time() * 1000), float(seq[0]))[0]
                    async with session.post(
                        f"{base}/api/v1/write", data=body, headers=WRITE_HEADERS
                    ) as r:
                        await r.read()
                        if r.status in (429, 503):
                            assert r.headers.get("Retry-After"), "told to retry, but when?"
                        return str(r.status)

                statuses: dict[str, int] = {}
                errors: list[str] = []

                async def heavy() -> None:
                    params = {
                        "query": QUERY,
                        "start": f"{end_s - 900:.3f}",
                        "end": f"{end_s:.3f}",
                        "step": "15",
                    }
                    async with session.get(f"{base}/api/v1/query_range", params=params) as r:
                        body = await r.json()
                    statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
                    if r.status != 200:
                        errors.append(body["error"])

                probes = [
                    asyncio.create_task(ready.run(get_ready, stop)),
                    asyncio.create_task(writes.run(write, stop)),
                ]
                await asyncio.sleep(0.5)
                await asyncio.gather(*(heavy() for _ in range(50)))
                await asyncio.sleep(0.5)
                stop.set()
                await asyncio.gather(*probes)
                return ready, writes, statuses, errors

        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        try:
            ready, writes, statuses, errors = asyncio.run(main())
        finally:
            sampling.set()
            sampler.join()
    finally:
        proc.stop()

    summary = f"{ready.summary()}; {writes.summary()}; queries {statuses}; peak RSS {peak[0]}"
    assert set(ready.statuses) == {"200"}, summary
    assert set(writes.statuses) <= {"204", "429", "503"}, summary
    assert writes.statuses.get("204", 0) >= 0.9 * len(writes.latencies), summary
    assert ready.quantile(0.99) < 1.0, summary
    assert writes.quantile(0.99) < 1.0, summary
    assert peak[0] < MAX_MEMORY, summary
    assert statuses.get("200", 0) >= 2, summary  # the storm was real: queries ran
    assert sum(statuses.values()) == 50, summary
    for error in errors:  # every refusal names its limit
        assert any(k in error for k in ("query.max_concurrency", "query.max_memory",
                                        "query.max_query_memory")), error  # fmt: skip
