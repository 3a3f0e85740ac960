"""Where the time of `bench/query.py`'s queries goes, in-process, stage by stage.

Loads the same data set as `bench.query` (10k counters, ~2k histogram buckets,
a 1k-series gauge; 1h at 15s) into a real `Storage` through its appender, then
times for each query and shape: the storage selects, the whole engine query
(selects + evaluation), JSON encoding, and the full HTTP answer of the app
served in this process (aiohttp's test server; the client runs in this
process too, so HTTP figures include client parsing). Medians of `--runs`.

    PYTHONPATH=. .venv/bin/python -m bench.query_stages [--runs 7] [--only selector]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aggregator.malloc import keep_freed_memory
from bench.query import POINTS, QUERIES, STEP_MS, build_load
from promql.engine import Engine
from promql.parser import parse_expr
from promql.plan import plan_query
from remote_write.codec import decode_write_request
from storage.db import Storage
from storage.options import FsyncPolicy, StorageOptions


async def median_ms(fn: Callable[[], Awaitable[Any]], runs: int) -> float:
    await fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def run(runs: int, only: str | None, http: bool) -> None:
    from aggregator.api.promjson import encode_value

    now_ms = int(time.time() * 1000)
    first_ts = now_ms - now_ms % STEP_MS - (POINTS - 1) * STEP_MS - 60_000
    end_ms = first_ts + (POINTS - 1) * STEP_MS + 7_500
    bodies, _ = build_load(first_ts)
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp:
        opts = StorageOptions(wal_fsync=FsyncPolicy.NEVER, retention_ms=24 * 3_600_000)
        storage = await Storage.open(Path(tmp), opts)
        app = storage.appender()
        started = time.perf_counter()
        for raw in bodies:
            app.append(decode_write_request(raw).batch)
        await app.commit()
        await asyncio.sleep(2.0)  # let background merges settle
        await storage.run_maintenance()
        await asyncio.sleep(1.0)
        print(f"loaded in {time.perf_counter() - started:.1f}s: {storage.stats()}")
        engine = Engine()
        shapes = {
            "instant": (end_ms, end_ms, 0),
            "range 15s": (end_ms - 3_600_000, end_ms, 15_000),
            "range 60s": (end_ms - 3_600_000, end_ms, 60_000),
        }
        client = None
        if http:
            client = await _http_client(storage)
        print(f"{'query':28}{'shape':11}{'select':>9}{'engine':>9}{'encode':>9}{'http':>9}")
        for name, query in QUERIES.items():
            if only and only not in name:
                continue
            for shape, (start, end, step) in shapes.items():
                plan = plan_query(parse_expr(query), start, end, step or 1, lookback_ms=300_000)

                async def selects(plan=plan) -> None:
                    async with storage.querier(plan.start_ms, plan.end_ms) as q:
                        for s in plan.selects:
                            await q.select(s.matchers, s.start_ms, s.end_ms, hints=s.hints)

                async def query_once(query=query, start=start, end=end, step=step) -> Any:
                    if step:
                        return await engine.range_query(storage, query, start, end, step)
                    return await engine.instant_query(storage, query, end)

                result = await query_once()
                grid = (start, step) if step else None

                async def encode(result=result, grid=grid) -> bytes:
                    return encode_value(result.value, grid)

                sel = await median_ms(selects, runs)
                eng = await median_ms(query_once, runs)
                enc = await median_ms(encode, runs)
                web = float("nan")
                if client is not None:
                    if step:
                        params = {
                            "query": query,
                            "start": str(start / 1000),
                            "end": str(end / 1000),
                            "step": str(step / 1000),
                        }
                        path = "/api/v1/query_range"
                    else:
                        params = {"query": query, "time": str(end / 1000)}
                        path = "/api/v1/query"

                    async def get(path=path, params=params) -> None:
                        async with client.get(path, params=params) as resp:
                            await resp.read()

                    web = await median_ms(get, runs)
                print(f"{name:28}{shape:11}{sel:9.1f}{eng:9.1f}{enc:9.1f}{web:9.1f}")
        if client is not None:
            await client.close()
        await storage.close()


async def _http_client(storage: Storage) -> Any:
    from aiohttp.test_utils import TestClient, TestServer

    from aggregator.app import BACKEND, build_app
    from aggregator.config import Config

    async def opener(data_dir: Path, options: StorageOptions) -> Storage:
        return storage

    app = build_app(Config(), open_storage=opener)  # type: ignore[arg-type]
    client = TestClient(TestServer(app))
    await client.start_server()
    await app[BACKEND].wait_open()
    return client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--only", help="run queries whose name contains this")
    parser.add_argument("--http", action="store_true", help="also time the in-process HTTP API")
    args = parser.parse_args()
    keep_freed_memory()  # as `aggregator serve` does
    asyncio.run(run(args.runs, args.only, args.http))


if __name__ == "__main__":
    main()
