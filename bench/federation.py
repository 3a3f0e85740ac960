"""Global queries over 3 pulled members vs one Prometheus holding all the data.

Three real Prometheus 2.42 members each hold one cluster's series (2k
counters, 1k gauges, a 12-bucket histogram over 100 instances; 1h at 15 s);
a fourth holds all three clusters' series with their `cluster` labels. The
service pulls the three members. Every query runs as a 1h range query at a
60 s step against the single Prometheus and against the service with
pushdown off (raw samples by remote read) and on; it prints the median
latency of each, the ratio to the single Prometheus, and the bytes the
service received from the members per query (from its own
`aggregator_federation_received_bytes_total`).

    .venv/bin/python -m bench.federation [--runs 5]
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

from remote_write.batch import WriteBatch
from remote_write.codec import encode_write_request
from tests.support.realparts import Process, post_write, start_aggregator, start_prometheus

STEP_MS = 15_000
POINTS = 241
CLUSTERS = ("eu-west", "us-east", "ap-south")
BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf")

QUERIES = {
    "sum by (cluster) (rate)": "sum by (cluster) (rate(bench_requests_total[5m]))",
    "sum (gauge)": "sum(bench_gauge)",
    "count by (cluster)": "count by (cluster) (bench_requests_total)",
    "max by (cluster, job)": "max by (cluster, job) (bench_gauge)",
    "avg (gauge)": "avg(bench_gauge)",
    "topk(5, rate)": "topk(5, rate(bench_requests_total[5m]))",
    "histogram_quantile by cluster": (
        "histogram_quantile(0.99, sum by (le, cluster) (rate(bench_latency_seconds_bucket[5m])))"
    ),
}
SUM_BY = ("sum by (cluster) (rate)", "sum (gauge)")


def cluster_batches(cluster: str, t0: int, *, labelled: bool) -> list[WriteBatch]:
    """One cluster's series, in batches of about 500 series."""
    ts = t0 + np.arange(POINTS, dtype=np.int64) * STEP_MS
    k = CLUSTERS.index(cluster) + 1
    extra = [("cluster", cluster)] if labelled else []
    series = []
    for i in range(2000):
        lbl = [("__name__", "bench_requests_total"), ("instance", f"i{i}"), ("job", f"j{i % 10}")]
        series.append(([*lbl, *extra], ts, np.arange(POINTS) * 15.0 * (1 + (i + k) % 7)))
    for i in range(1000):
        lbl = [("__name__", "bench_gauge"), ("instance", f"i{i}"), ("job", f"j{i % 10}")]
        series.append(([*lbl, *extra], ts, 1e6 * k + 1e3 * i + np.sin(np.arange(POINTS) + i)))
    for i in range(100):
        for j, le in enumerate(BUCKETS):
            lbl = [("__name__", "bench_latency_seconds_bucket"), ("instance", f"i{i}"), ("le", le)]
            series.append(([*lbl, *extra], ts, np.arange(POINTS) * (j + 1.0) * k))
    return [
        WriteBatch.from_series([(tuple(lbl), t, v) for lbl, t, v in series[a : a + 500]])
        for a in range(0, len(series), 500)
    ]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as resp:
        return resp.read()


def received_bytes(agg_url: str) -> float:
    text = _get(f"{agg_url}/metrics").decode()
    pattern = (
        r"^aggregator_federation_received_bytes_total\{[^}]*kind=\"(?:read|query)\"[^}]*\} (\S+)"
    )
    return sum(float(m) for m in re.findall(pattern, text, re.M))


def timed(url: str, query: str, window: dict[str, object], extra: str = "") -> float:
    params = urllib.parse.urlencode({"query": query, **window})
    started = time.perf_counter()
    _get(f"{url}/api/v1/query_range?{params}{extra}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    procs: list[Process] = []
    with tempfile.TemporaryDirectory(prefix="bench-federation-") as tmp:
        base = Path(tmp)
        try:
            t0 = (int(time.time() * 1000) - POINTS * STEP_MS) // STEP_MS * STEP_MS
            receiver = ["--web.enable-remote-write-receiver"]
            single, single_url = start_prometheus(
                base / "single", "global: {scrape_interval: 1m}\n", extra_args=receiver
            )
            procs.append(single)
            members = {}
            for c in CLUSTERS:
                proc, url = start_prometheus(
                    base / c, "global: {scrape_interval: 1m}\n", extra_args=receiver
                )
                procs.append(proc)
                members[c] = url
                for b in cluster_batches(c, t0, labelled=False):
                    post_write(url, encode_write_request(b))
                for b in cluster_batches(c, t0, labelled=True):
                    post_write(single_url, encode_write_request(b))
            pulls = "".join(
                f"  - {{name: {c}, url: '{u}', health_check_interval: 2s}}\n"
                for c, u in members.items()
            )
            agg, agg_url = start_aggregator(base / "agg", config=f"clusters:\n{pulls}")
            procs.append(agg)
            time.sleep(3)  # first health checks: versions and external labels known
            window = {
                "start": (t0 + 5 * 60_000 + 7_500) / 1000,
                "end": (t0 + (POINTS - 1) * STEP_MS) / 1000,
                "step": "60s",
            }
            print(
                f"{'query':32} {'single':>9} {'raw':>9} {'x':>6} {'push':>9} {'x':>6}"
                f" {'raw bytes':>11} {'push bytes':>11} {'less':>7}"
            )
            for name, query in QUERIES.items():
                row = {}
                moved = {}
                for mode, url, extra in (
                    ("single", single_url, ""),
                    ("raw", agg_url, "&pushdown=false"),
                    ("push", agg_url, "&pushdown=true"),
                ):
                    timed(url, query, window, extra)  # warm up
                    before = received_bytes(agg_url)
                    times = [timed(url, query, window, extra) for _ in range(args.runs)]
                    moved[mode] = (received_bytes(agg_url) - before) / args.runs
                    row[mode] = statistics.median(times)
                ratio_raw = row["raw"] / row["single"]
                ratio_push = row["push"] / row["single"]
                less = moved["raw"] / moved["push"] if moved["push"] else float("inf")
                print(
                    f"{name:32} {row['single'] * 1000:8.1f}ms {row['raw'] * 1000:8.1f}ms "
                    f"{ratio_raw:5.2f}x {row['push'] * 1000:8.1f}ms {ratio_push:5.2f}x "
                    f"{moved['raw']:11.0f} {moved['push']:11.0f} {less:6.1f}x"
                )
        finally:
            for p in reversed(procs):
                p.stop()


if __name__ == "__main__":
    main()
