"""Micro-benchmarks of the storage head (no HTTP): append, series creation, select, memory.

    PYTHONPATH=. .venv/bin/python -m bench.storage_head [--series 100000]

Prints, for series of 8 labels like bench/ingest.py's:
- append of a 2000-series batch of known series, 1 sample each (decoded from
  the wire, so it carries series keys), through `Storage.appender().append`
  (checks, head write and queuing the WAL record; not the fsync);
- creation of new series, per series;
- select of 10k series over 1h of 15s samples (and of 1k series);
- RSS after creating the series and writing 1 sample each.

The cycle collector is tuned as in the service (`aggregator.gctune`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import tempfile
import time
from pathlib import Path

import snappy

from aggregator.gctune import tune_collector
from bench.ingest import series_labels
from bench.payloads import _field
from bench.payloads import encode_sample as sample_field
from remote_write.codec import decode_write_request
from storage.db import Storage
from storage.labels import Matcher, MatchType
from storage.options import FsyncPolicy, StorageOptions

STEP = 15_000


def body(indices: range, ts: int, value: float) -> bytes:
    chunks = [_field(1, series_labels(i) + sample_field(ts, value + i)) for i in indices]
    return snappy.compress(b"".join(chunks))


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


async def run(n_series: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        opts = StorageOptions(wal_fsync=FsyncPolicy.NEVER, retention_ms=24 * 3_600_000)
        storage = await Storage.open(Path(tmp), opts)
        now = int(time.time() * 1000)
        t0 = now - now % STEP - 3_600_000

        # Series creation, in requests of 2000 series.
        bodies = [
            body(range(s, min(s + 2000, n_series)), t0, 0.0) for s in range(0, n_series, 2000)
        ]
        gc.collect()
        rss0 = rss_mib()
        app = storage.appender()
        create_s = 0.0
        for raw in bodies:  # decoded one by one, as requests arrive
            b = decode_write_request(raw).batch
            started = time.perf_counter()
            res = app.append(b)
            create_s += time.perf_counter() - started
            assert not res.rejected, res.rejected[:1]
        await app.commit()
        del bodies, b
        gc.collect()
        rss_created = rss_mib()
        print(f"create {n_series} series: {create_s * 1e6 / n_series:.1f} us/series")
        print(
            f"RSS after {n_series} series x 1 sample: {rss_created:.0f} MiB "
            f"(+{rss_created - rss0:.0f} MiB over the empty storage)"
        )

        # Append of a 2000-series batch of known series, 1 sample each.
        known = [
            decode_write_request(body(range(0, 2000), t0 + k * STEP, 1.0)).batch
            for k in range(1, 40)
        ]
        it = iter(known)
        per = timed(lambda: app.append(next(it)), 30)
        await app.commit()
        print(
            f"append 2000 known series x 1 sample: {per * 1e3:.3f} ms "
            f"({2000 / per / 1e6:.2f} M samples/s)"
        )
        five = decode_write_request(
            snappy.compress(
                b"".join(
                    _field(
                        1,
                        series_labels(i)
                        + b"".join(sample_field(t0 + (50 + k) * STEP, 2.0) for k in range(5)),
                    )
                    for i in range(400)
                )
            )
        ).batch
        per5 = timed(lambda: app.append(five), 1)
        print(f"append 400 known series x 5 samples: {per5 * 1e3:.3f} ms")

        # 10k series of one metric over 1h of 15s samples.
        def sel_body(lo: int, k: int) -> bytes:
            chunks = []
            for i in range(lo, lo + 2000):
                labels = b"".join(
                    _field(1, _field(1, n.encode()) + _field(2, v.encode()))
                    for n, v in (
                        ("__name__", "select_metric_x"),
                        ("cluster", "bench"),
                        ("instance", f"10.1.{i >> 8 & 255}.{i & 255}:9100"),
                        ("job", "node-exporter"),
                        ("mode", f"mode{i % 8}"),
                        ("namespace", f"ns-{i % 50}"),
                        ("pod", f"pod-{i}"),
                        ("zone", f"zone-{i % 3}"),
                    )
                )
                chunks.append(_field(1, labels + sample_field(t0 + k * STEP, float(k))))
            return snappy.compress(b"".join(chunks))

        for k in range(60, 60 + 240):
            for lo in range(0, 10_000, 2000):
                app.append(decode_write_request(sel_body(lo, k)).batch)
        await app.commit()
        await asyncio.sleep(1.0)  # let merges run
        print(f"head: {storage.stats()}")
        start, end = t0 + 60 * STEP, t0 + 299 * STEP
        queries = {
            "10k series, 1h": [Matcher(MatchType.RE, "__name__", "select_metric_x.*")],
            "150 series (3 matchers), 1h": [
                Matcher(MatchType.RE, "__name__", "select_metric_x.*"),
                Matcher(MatchType.EQ, "mode", "mode3"),
                Matcher(MatchType.RE, "namespace", "ns-(1|2|3|4|5)"),
            ],
            "regex over 100k pod values": [
                Matcher(MatchType.RE, "__name__", "select_metric_x.*"),
                Matcher(MatchType.RE, "pod", "pod-[0-9]{1,3}"),
            ],
        }
        async with storage.querier(start, end) as q:
            for name, matchers in queries.items():
                await q.select(matchers, start, end)
                best = float("inf")
                for _ in range(5):
                    started = time.perf_counter()
                    ss = await q.select(matchers, start, end)
                    best = min(best, time.perf_counter() - started)
                print(
                    f"select {name}: {len(ss)} series, {ss.num_samples} samples: "
                    f"{best * 1e3:.2f} ms"
                )
        await storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=100_000)
    args = parser.parse_args()
    tune_collector()
    asyncio.run(run(args.series))


if __name__ == "__main__":
    main()
