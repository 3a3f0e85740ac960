"""Tiering, side by side: our Parquet blocks in S3 vs a real Prometheus 2.42's TSDB blocks.

One run, the same data for both: a day of a fleet's metrics (`bench.fleetdata`:
counters, gauges, classic-histogram buckets, summaries; 15 s scrapes; about
10k series by default).

- Prometheus gets it by backfill (`promtool tsdb create-blocks-from
  openmetrics`, two hours per file), starts on it, compacts, and its snapshot
  API (`POST /api/v1/admin/tsdb/snapshot`) gives the compacted blocks to
  measure.
- We get it through the storage's own Appender (WAL, head, two-hour blocks
  cut and uploaded to S3 = moto on loopback), then compacted into one day
  block, as the service does.

Printed: bytes per sample of each (everything in the bucket: Parquet files and
meta.json; everything in Prometheus's blocks: chunks, index, meta), and the
latency of dashboard queries over the 24 h: ours from the blocks in S3 with a
cold cache (a freshly started service) and warm, Prometheus from its local
disk (warm page cache), with the S3 requests and bytes each of our queries
needed (from `stats=all`). Prometheus is timed right before each of our
cold runs, so both see the same (shared) machine. Servers are pinned to CPU 0;
moto and this client to CPU 1.

    .venv/bin/python -m bench.tiering [--targets 102] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

from bench.fleetdata import HOUR_MS, SCRAPE_MS, FleetData, generate
from remote_write.batch import WriteBatch
from storage.db import Storage
from storage.objstore.s3 import S3Config, S3Store
from storage.options import DAY_MS, StorageOptions, TieringOptions
from tests.support.realparts import (
    Process,
    http_get,
    start_aggregator,
    start_moto,
    start_prometheus,
)

SERVER_CPU = 0
COLD_RUNS = 3
CLIENT_CPU = 1
BUCKET = "bench-tiering"
QUERIES = {
    "sum by cluster (rate)": ("sum by (cluster) (rate(http_requests_total[5m]))", 60),
    "histogram_quantile p99": (
        "histogram_quantile(0.99, sum by (le, cluster) "
        "(rate(http_request_duration_seconds_bucket[5m])))",
        60,
    ),
    "topk cpu by instance": (
        'topk(5, sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m])))',
        300,
    ),
    "avg load by cluster": ("avg by (cluster) (node_load1)", 60),
    "max rss over 1h": ("max_over_time(process_resident_memory_bytes[1h])", 300),
}


# -- Prometheus ---------------------------------------------------------------


def openmetrics(data: FleetData, path: Path, start_ms: int, end_ms: int) -> int:
    """Samples of [start_ms, end_ms) as an OpenMetrics file (families contiguous)."""
    order = sorted(range(len(data.labels)), key=lambda i: data.labels[i]["__name__"])
    written = 0
    with open(path, "w") as f:
        for i in order:
            labels, ts, values = data.series(i)
            keep = (ts >= start_ms) & (ts < end_ms)
            if not keep.any():
                continue
            name = labels["__name__"]
            rest = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
            head = f"{name}{{{rest}}} "
            vals = [repr(v) if v == v else "NaN" for v in values[keep].tolist()]
            times = [f"{t / 1000:.3f}" for t in ts[keep].tolist()]
            f.write("".join(f"{head}{v} {t}\n" for v, t in zip(vals, times, strict=True)))
            written += len(vals)
        f.write("# EOF\n")
    return written


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def prometheus_blocks(data: FleetData, workdir: Path, start_ms: int, hours: int) -> Path:
    """Backfill the data into a TSDB directory, two hours per promtool run."""
    tsdb = workdir / "tsdb"
    tsdb.mkdir(parents=True)
    text = workdir / "slice.om"
    for h in range(0, hours, 2):
        lo = start_ms + h * HOUR_MS
        openmetrics(data, text, lo, lo + 2 * HOUR_MS)
        subprocess.run(
            ["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q", str(text), str(tsdb)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"  backfilled hours {h}-{h + 2}", flush=True)
    text.unlink()
    return tsdb


def metric_value(url: str, name: str) -> float:
    text = http_get(f"{url}/metrics")[1].decode()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_compacted(url: str, tsdb: Path) -> None:
    """Until Prometheus has compacted and nothing changed for 20 s."""
    started = time.monotonic()
    last, stable_since = None, time.monotonic()
    while time.monotonic() - started < 900:
        blocks = sorted(p.name for p in tsdb.iterdir() if len(p.name) == 26)
        done = metric_value(url, "prometheus_tsdb_compactions_total")
        state = (tuple(blocks), done)
        if state != last:
            last, stable_since = state, time.monotonic()
        elif done > 0 and time.monotonic() - stable_since > 20:
            return
        time.sleep(2)


def snapshot_bytes(url: str, tsdb: Path) -> tuple[int, list[str]]:
    request = urllib.request.Request(
        f"{url}/api/v1/admin/tsdb/snapshot?skip_head=true", data=b"", method="POST"
    )
    with urllib.request.urlopen(request, timeout=120) as resp:
        name = json.loads(resp.read())["data"]["name"]
    snap = tsdb / "snapshots" / name
    ranges = []
    for block in sorted(snap.iterdir()):
        meta = json.loads((block / "meta.json").read_text())
        ranges.append(f"{(meta['maxTime'] - meta['minTime']) / HOUR_MS:.0f}h")
    return dir_bytes(snap), ranges


# -- ours ------------------------------------------------------------------------


async def load_ours(data: FleetData, s3: S3Config, workdir: Path, start_ms: int) -> dict:
    """Append the data hour by hour, cut and upload blocks, compact the day, flush."""
    options = StorageOptions(
        late_window_ms=7 * DAY_MS,
        wal_segment_bytes=256 << 20,
        tiering=TieringOptions(compaction_interval_ms=0, late_cut_interval_ms=0),
    )
    storage = await Storage.open(workdir / "load", options, object_store=S3Store(s3))
    series = [tuple(sorted(lbl.items())) for lbl in data.labels]
    counts = np.diff(data.offsets)
    series_of = np.repeat(np.arange(len(series), dtype=np.int32), counts)
    hours = int((data.timestamps.max() - start_ms) // HOUR_MS) + 1
    began = time.perf_counter()
    for h in range(hours):
        lo, hi = start_ms + h * HOUR_MS, start_ms + (h + 1) * HOUR_MS
        rows = np.flatnonzero((data.timestamps >= lo) & (data.timestamps < hi))
        batch = WriteBatch(
            series=series,
            series_idx=series_of[rows],
            timestamps=data.timestamps[rows],
            values=data.values[rows],
        )
        app = storage.appender()
        result = app.append(batch)
        assert not result.rejected, result.rejected[0].message
        await app.commit()
        await storage.run_maintenance()  # cuts closed two-hour ranges
    ingest_s = time.perf_counter() - began
    await storage.flush()
    await storage.tiering.maintain(closed_before=start_ms + DAY_MS)  # one day block
    blocks = [b for b in storage.catalog.blocks]
    await storage.close()
    return {"ingest_s": ingest_s, "blocks": [(b.kind, b.samples, b.size) for b in blocks]}


async def bucket_bytes(s3: S3Config) -> tuple[int, int]:
    store = S3Store(s3)
    total = objects = 0
    async for key in store.list("", recursive=True):
        total += (await store.stat(key)).size
        objects += 1
    return total, objects


# -- queries ----------------------------------------------------------------------


def timed(url: str, query: str, start_s: float, end_s: float, step: int) -> tuple[float, dict]:
    params = {
        "query": query,
        "start": f"{start_s:.3f}",
        "end": f"{end_s:.3f}",
        "step": str(step),
        "stats": "all",
    }
    began = time.perf_counter()
    with urllib.request.urlopen(
        f"{url}/api/v1/query_range?{urllib.parse.urlencode(params)}", timeout=600
    ) as resp:
        body = json.loads(resp.read())
    elapsed = time.perf_counter() - began
    assert body["status"] == "success", body
    return elapsed, body["data"]


def service_config(s3: S3Config, moto_url: str) -> str:
    return f"""
storage:
  block_cache_size: 2GiB
  object_store:
    type: s3
    bucket: {s3.bucket}
    endpoint: {moto_url}
    region: us-east-1
query:
  max_object_store_bytes: 0
  max_object_store_requests: 0
"""


def wait_metadata(url: str) -> None:
    """Until the service has loaded the blocks' series tables and footers (it does at start)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        blocks = json.loads(http_get(f"{url}/api/v1/status/blocks")[1])["data"]["blocks"]
        if blocks and all(b["metadataLoaded"] for b in blocks):
            return
        time.sleep(0.1)
    raise RuntimeError("block metadata not loaded after 120 s")


def measure(
    prom_url: str,
    s3: S3Config,
    moto_url: str,
    workdir: Path,
    start_s: float,
    end_s: float,
    runs: int,
) -> dict[str, tuple[float, float, float, int, int, int]]:
    """Per query: Prometheus warm, our cold and warm seconds (medians), and the S3
    requests, S3 bytes and samples of one of our cold runs.

    Prometheus is timed right before each of our cold runs, so both see the same
    machine (it is shared). Cold: a service just started on the bucket. It loads
    the blocks' series tables and footers at start (as it always does); the query
    then finds no sample data
    cached and fetches it from S3 (the same query over a day without data runs
    first, so that the engine's and the encoder's code paths are warm: the figure
    is the cost of cold data, not of a cold interpreter). Warm: the same query
    again on that service.
    """
    out = {}
    config = service_config(s3, moto_url)
    for name, (query, step) in QUERIES.items():
        timed(prom_url, query, start_s, end_s, step)  # Prometheus warm-up: page cache
        proms: list[float] = []
        colds: list[float] = []
        warms: list[float] = []
        for trial in range(COLD_RUNS):
            proms += [timed(prom_url, query, start_s, end_s, step)[0] for _ in range(runs)]
            run_dir = workdir / f"svc-{len(out)}-{trial}"
            proc, url = start_aggregator(run_dir, config=config, cpu=SERVER_CPU)
            try:
                wait_metadata(url)
                # The same query over a day without data: the code paths warm up
                # (engine, JSON), no block data is read.
                timed(url, query, start_s - 2 * 86_400, end_s - 2 * 86_400, step)
                cold, data = timed(url, query, start_s, end_s, step)
                colds.append(cold)
                warms += [timed(url, query, start_s, end_s, step)[0] for _ in range(runs)]
                if trial == 0:
                    store = data["stats"]["objectStore"]
                    samples = data["stats"]["samples"]["totalQueryableSamples"]
            finally:
                proc.stop()
                shutil.rmtree(run_dir, ignore_errors=True)
        out[name] = (
            statistics.median(proms),
            statistics.median(colds),
            statistics.median(warms),
            store["requests"],
            store["bytes"],
            samples,
        )
        print(f"  measured {name}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=102, help="about 99 series each")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {CLIENT_CPU})
    now = int(time.time() * 1000)
    day = now // DAY_MS * DAY_MS - DAY_MS  # yesterday, a whole UTC day
    data = generate(args.targets, 24, start_ms=day)
    n = data.num_samples
    print(f"data: {len(data.labels)} series, {n} samples, 24h at {SCRAPE_MS // 1000}s", flush=True)
    start_s, end_s = (day + 300_000) / 1000, (day + DAY_MS - SCRAPE_MS) / 1000

    with tempfile.TemporaryDirectory(prefix="bench-tiering-") as tmp:
        work = Path(tmp)
        print("prometheus: backfilling", flush=True)
        tsdb = prometheus_blocks(data, work / "prom", day, 24)
        prom, prom_url = start_prometheus(
            work / "prom",
            "global: {}\n",
            extra_args=["--web.enable-admin-api", "--storage.tsdb.retention.time=10y"],
            cpu=SERVER_CPU,
        )
        moto: Process | None = None
        try:
            print("prometheus: compacting", flush=True)
            wait_compacted(prom_url, tsdb)
            prom_bytes, prom_ranges = snapshot_bytes(prom_url, tsdb)
            print(f"prometheus: blocks {prom_ranges}", flush=True)
            moto, moto_url = start_moto(work / "moto")
            if shutil.which("taskset"):
                subprocess.run(
                    ["taskset", "-pc", str(CLIENT_CPU), str(moto.pid)],
                    check=False,
                    stdout=subprocess.DEVNULL,
                )
            os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
            s3 = S3Config(bucket=BUCKET, endpoint=moto_url, region="us-east-1")
            asyncio.run(S3Store(s3).create_bucket())
            print("ours: ingesting", flush=True)
            loaded = asyncio.run(load_ours(data, s3, work, day))
            ours_bytes, objects = asyncio.run(bucket_bytes(s3))
            rate = n / loaded["ingest_s"]
            print(f"ours: ingested in {loaded['ingest_s']:.0f}s ({rate:,.0f} samples/s)")
            print(f"ours: blocks {loaded['blocks']}", flush=True)
            del data
            print("queries", flush=True)
            results = measure(prom_url, s3, moto_url, work, start_s, end_s, args.runs)
        finally:
            if moto is not None:
                moto.stop()
            prom.stop(timeout=60)

    print(f"\nbytes per sample ({n} samples)")
    print(f"  prometheus (compacted blocks {', '.join(prom_ranges)}): {prom_bytes / n:.3f}")
    print(f"  ours (one day block, {objects} objects in S3):        {ours_bytes / n:.3f}")
    print(f"  ours / prometheus: {ours_bytes / prom_bytes:.2f}")
    print(
        f"\n{'query over 24h':26}{'step':>6}{'prom ms':>9}{'cold ms':>9}{'warm ms':>9}"
        f"{'cold/p':>8}{'p/warm':>8}{'S3 req':>8}{'S3 MiB':>8}{'samples':>11}"
    )
    for name, (_, step) in QUERIES.items():
        p, cold, warm, requests, nbytes, samples = results[name]
        print(
            f"{name:26}{step:>6}{p * 1000:9.0f}{cold * 1000:9.0f}{warm * 1000:9.0f}"
            f"{cold / p:8.2f}{p / warm:8.2f}{requests:8d}{nbytes / 2**20:8.1f}{samples:11d}"
        )


if __name__ == "__main__":
    main()
