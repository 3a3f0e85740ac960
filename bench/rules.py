"""Rule evaluation, side by side: this service vs a real Prometheus 2.42.

Both get the same data through remote write (bench.query's data set: 10k
counter series over 3 clusters and 20 namespaces, ~2k classic-histogram
bucket series and a 1k-series gauge; 1h at 15s) and the same rule file: 500
rules of dashboard shape (per-namespace and per-cluster rates, ratios,
histogram quantiles, topk, gauges, absent; half recording, half alerting with
templated annotations), in one group, so that one evaluation of all 500 is
one group evaluation in both (groups run concurrently, which would blur the
per-group durations on one core). The data stays live during the
measurement: the next point of every series arrives every 15 s, as scrapes
would. Each server runs pinned to CPU 0, this client to CPU 1. Printed: the
time one evaluation of the 500 rules takes in each
(`<prefix>_rule_group_last_duration_seconds`, median over several intervals
after two of warm-up) and the speedup (Prometheus time / ours; > 1 is
faster), plus each process's CPU seconds per interval (which includes
taking in the 13k samples each 15 s brings; tiny beside the rules), the
better measure on a shared machine.

    .venv/bin/python -m bench.rules [--intervals 6] [--interval 10s]
    .venv/bin/python -m bench.rules --in-process   # ours only, no servers (profiling)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import statistics
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

from bench.ingest import push
from bench.payloads import HEADERS, bodies_of, encode_series
from bench.query import CLUSTERS, POINTS, STEP_MS, build_load, series_set
from tests.support.realparts import Process, start_aggregator, start_prometheus

GROUPS = 5  # teams, each looking after 4 namespaces (and one cluster's rules)


def rule_groups() -> list[dict[str, object]]:
    """500 rules as 5 teams would write them: 4 namespaces each, a cluster each."""
    groups: list[dict[str, object]] = []
    for g in range(GROUPS):
        rules: list[dict[str, object]] = []
        for k in range(g * 4, g * 4 + 4):
            ns = f'namespace="ns-{k}"'
            sel = f"bench_requests_total{{{ns}}}"
            rules += [
                {
                    "record": "ns:requests:rate5m",
                    "expr": f"sum by (cluster, namespace) (rate({sel}[5m]))",
                },
                {
                    "record": "ns:requests:rate1m",
                    "expr": f"sum by (cluster, namespace) (rate({sel}[1m]))",
                },
                {
                    "record": "ns:requests_by_job:rate5m",
                    "expr": f"sum by (job, namespace) (rate({sel}[5m]))",
                },
                {
                    "record": "ns:requests:increase10m",
                    "expr": f"sum by (cluster, namespace) (increase({sel}[10m]))",
                },
                {"record": "ns:pods:count", "expr": f"count by (cluster, namespace) ({sel})"},
                {
                    "record": "ns:top_pods:rate5m",
                    "expr": f"topk(10, sum by (namespace, pod) (rate({sel}[5m])))",
                },
                {
                    "record": "ns:requests:share",
                    "expr": (
                        f"sum by (cluster, namespace) (rate({sel}[5m]))"
                        " / ignoring (namespace) group_left "
                        "sum by (cluster) (rate(bench_requests_total[5m]))"
                    ),
                },
                {
                    "record": "ns:instances:rate5m",
                    "expr": f"sum by (instance, namespace) (rate({sel}[5m]))",
                },
                {
                    "record": "ns:requests:deriv",
                    "expr": f"sum by (cluster, namespace) (deriv({sel}[10m]))",
                },
                {
                    "record": "ns:requests:max_rate",
                    "expr": f"max by (cluster, namespace) (irate({sel}[5m]))",
                },
            ]
            for t, threshold in enumerate((50, 100, 200, 400, 800)):
                rules.append(
                    {
                        "alert": f"NamespaceRequestRateHigh{t}",
                        "expr": f"sum by (cluster, namespace) (rate({sel}[5m])) > {threshold}",
                        "for": "5m",
                        "labels": {"severity": "warning" if t < 3 else "critical"},
                        "annotations": {
                            "summary": "{{ $labels.namespace }} in {{ $labels.cluster }}: "
                            "{{ humanize $value }} req/s",
                        },
                    }
                )
            rules += [
                {
                    "alert": "NamespaceAbsent",
                    "expr": f'absent({sel[:-1]}, job="api"}})',
                    "for": "10m",
                },
                {
                    "alert": "NamespaceShareHigh",
                    "expr": (
                        f"sum by (cluster) (rate({sel}[5m])) / ignoring (namespace) group_left "
                        "sum by (cluster) (rate(bench_requests_total[5m])) > 0.08"
                    ),
                    "annotations": {"summary": "{{ humanizePercentage $value }} of the cluster"},
                },
                {
                    "alert": "NamespaceRateDropped",
                    "expr": (
                        f"sum by (cluster) (rate({sel}[5m])) < 0.5 * "
                        f"sum by (cluster) (rate({sel}[10m] offset 30m))"
                    ),
                },
                {"alert": "PodHot", "expr": f"topk(3, rate({sel}[5m])) > 6", "for": "2m"},
                {"alert": "NamespaceCountLow", "expr": f"count by (cluster) ({sel}) < 100"},
            ]
        for c, cluster in enumerate(CLUSTERS):
            if c != g:  # each cluster's rules live in one group
                continue
            cl = f'cluster="{cluster}"'
            bucket = f"bench_latency_seconds_bucket{{{cl}}}"
            for q in ("0.5", "0.9", "0.99"):
                rules.append(
                    {
                        "record": f"cluster:latency:p{q[2:]}",
                        "expr": (
                            f"histogram_quantile({q}, sum by (le, cluster) (rate({bucket}[5m])))"
                        ),
                    }
                )
                rules.append(
                    {
                        "alert": f"LatencyHigh{q[2:]}",
                        "expr": (
                            f"histogram_quantile({q}, sum by (le, cluster) "
                            f"(rate({bucket}[5m]))) > 0.2"
                        ),
                        "annotations": {
                            "summary": "p{{ $labels.cluster }} {{ humanizeDuration $value }}"
                        },
                    }
                )
            rules += [
                {"record": "cluster:gauge:avg", "expr": f"avg by (cluster) (bench_gauge{{{cl}}})"},
                {
                    "record": "cluster:gauge:max",
                    "expr": f"max by (cluster) (max_over_time(bench_gauge{{{cl}}}[10m]))",
                },
                {
                    "record": "cluster:gauge:p90",
                    "expr": f"quantile by (cluster) (0.9, bench_gauge{{{cl}}})",
                },
                {
                    "alert": "GaugeHigh",
                    "expr": f"bench_gauge{{{cl}}} > 24.5",
                    "annotations": {"summary": "{{ $labels.instance }} at {{ $value }}"},
                },
                {
                    "alert": "GaugeAvgLow",
                    "expr": f"avg by (cluster) (avg_over_time(bench_gauge{{{cl}}}[5m])) < 1",
                },
            ]
        groups.append({"name": f"team-{g}", "rules": _distinct_alerts(rules)})
    # Top up to exactly 500 with cluster-wide dashboard rules.
    total = sum(len(g["rules"]) for g in groups)  # type: ignore[arg-type]
    extra = 0
    while total < 500:
        cluster = CLUSTERS[extra % len(CLUSTERS)]
        window = ("5m", "10m", "15m")[extra // len(CLUSTERS) % 3]
        rule = {
            "record": f"cluster:requests:rate{window}",
            "expr": (
                f"sum by (cluster, namespace) "
                f'(rate(bench_requests_total{{cluster="{cluster}"}}[{window}]))'
            ),
        }
        groups[extra % GROUPS]["rules"].append(rule)  # type: ignore[attr-defined]
        extra += 1
        total += 1
    return groups


def _distinct_alerts(rules: list[dict[str, object]]) -> list[dict[str, object]]:
    """Label each alerting rule with what it watches, as teams do (and so that promtool's
    duplicate-rule lint has nothing to say)."""
    for rule in rules:
        if "alert" in rule:
            expr = str(rule["expr"])
            watched = re.search(r'(namespace|cluster)="([^"]+)"', expr)
            labels = dict(rule.get("labels") or {})  # type: ignore[call-overload]
            if watched:
                labels.setdefault(f"watched_{watched.group(1)}", watched.group(2))
            rule["labels"] = labels
    return rules


def rule_file_text(interval: str) -> str:
    """The 500 rules as one group (teams' parts one after the other)."""
    rules = [r for g in rule_groups() for r in g["rules"]]  # type: ignore[attr-defined]
    assert len(rules) == 500, len(rules)
    group = {"name": "dashboards", "interval": interval, "rules": rules}
    return yaml.safe_dump({"groups": [group]}, sort_keys=False, width=200)


def scrape(base: str, prefix: str) -> tuple[float, float, float]:
    """(last duration s, last evaluation timestamp s, process CPU seconds) of the group."""
    text = urllib.request.urlopen(f"{base}/metrics", timeout=30).read().decode()

    def value(name: str) -> float:
        m = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
        return float(m.group(1)) if m else math.nan

    return (
        value(f"{prefix}_last_duration_seconds"),
        value(f"{prefix}_last_evaluation_timestamp_seconds"),
        value("process_cpu_seconds_total"),
    )


def measure(base: str, prefix: str, interval_s: float, intervals: int) -> tuple[list[float], float]:
    """The group's duration at each of `intervals` evaluations after two of warm-up,
    and the process's CPU seconds per interval over them."""
    durations: list[float] = []
    last_stamp = 0.0
    warmup = 2
    cpu_start = cpu_end = math.nan
    evaluations = 0
    deadline = time.monotonic() + interval_s * (intervals + warmup + 6) + 120
    while len(durations) < intervals and time.monotonic() < deadline:
        time.sleep(interval_s / 4)
        duration, stamp, cpu = scrape(base, prefix)
        if math.isnan(stamp) or stamp == last_stamp:
            continue
        last_stamp = stamp
        evaluations += 1
        if evaluations == warmup:
            cpu_start = cpu
        elif evaluations > warmup:
            durations.append(duration)
            cpu_end = cpu
    return durations, (cpu_end - cpu_start) / max(len(durations), 1)


def outputs(base: str) -> dict[str, float]:
    """How many series each rule kind wrote, as a check that both did the same work."""
    out = {}
    for label, query in (
        ("recorded series", 'count({__name__=~"ns:.+|cluster:.+"})'),
        ("ALERTS series", "count(ALERTS)"),
    ):
        url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
        body = json.loads(urllib.request.urlopen(url, timeout=60).read())
        result = body["data"]["result"]
        out[label] = float(result[0]["value"][1]) if result else 0.0
    return out


def fresh_load() -> tuple[list[bytes], int, int]:
    """The data set's history, ending now (bodies, bodies per point, first timestamp):
    built right before each server's load."""
    now_ms = int(time.time() * 1000)
    first_ts = now_ms - now_ms % STEP_MS - (POINTS - 1) * STEP_MS
    bodies, per_point = build_load(first_ts)
    return bodies, per_point, first_ts


class Scraper(threading.Thread):
    """Keeps the data live: the next point of every series every 15 s, as scrapes
    would, so that rules see fresh samples however long the measurement takes."""

    def __init__(self, url: str, first_ts: int) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.first_ts = first_ts
        self.stop = threading.Event()
        self.series = series_set()

    def run(self) -> None:
        k = POINTS
        while not self.stop.is_set():
            ts = self.first_ts + k * STEP_MS
            if self.stop.wait(max(0.0, ts / 1000 - time.time())):
                return
            fields = [encode_series(lbl, [(ts, value(k))]) for lbl, value in self.series]
            for body in bodies_of(fields, 2000):
                request = urllib.request.Request(self.url, data=body, headers=HEADERS)
                urllib.request.urlopen(request, timeout=60).read()
            k += 1


def run(
    name: str,
    start: Callable[[Path, Path], tuple[Process, str]],
    prefix: str,
    interval_s: float,
    intervals: int,
) -> tuple[list[float], float, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix=f"bench-rules-{name}-") as tmp:
        rules = Path(tmp) / "rules.yml"
        rules.write_text(rule_file_text(f"{interval_s:g}s"))
        bodies, per_point, first_ts = fresh_load()
        proc, base = start(Path(tmp), rules)
        scraper = Scraper(f"{base}/api/v1/write", first_ts)
        try:
            load_s = asyncio.run(push(f"{base}/api/v1/write", bodies, 4, per_point))
            print(f"{name}: loaded {len(bodies)} requests in {load_s:.1f}s", flush=True)
            scraper.start()
            durations, cpu = measure(base, prefix, interval_s, intervals)
            return durations, cpu, outputs(base)
        finally:
            scraper.stop.set()
            proc.stop(timeout=60)


async def in_process(bodies: list[bytes], per_point: int, rounds: int) -> None:
    """Evaluate the 500 rules over the data in this process (for profiling)."""
    from prometheus_client import CollectorRegistry

    from alerting.clock import SystemClock
    from alerting.group import RuleOptions
    from alerting.manager import RuleManager
    from alerting.metrics import RuleMetrics
    from alerting.rulefile import parse_groups
    from promql.engine import Engine
    from remote_write.codec import decode_write_request
    from storage.db import Storage

    with tempfile.TemporaryDirectory(prefix="bench-rules-inproc-") as tmp:
        storage = await Storage.open(Path(tmp))
        try:
            for body in bodies:
                app = storage.appender()
                app.append(decode_write_request(body, max_decoded_bytes=1 << 30).batch)
            await storage.run_maintenance()
            manager = RuleManager(
                engine=Engine(),
                queryable=storage,
                appendable=storage,
                notify=lambda a: None,
                metrics=RuleMetrics(CollectorRegistry()),
                options=RuleOptions(),
                clock=SystemClock(),
            )
            await manager.update(parse_groups(rule_file_text("10s"), file="rules.yml"), run=False)
            now = int(time.time() * 1000)
            [group] = manager.groups()
            for r in range(rounds):
                started, cpu = time.perf_counter(), time.process_time()
                await group.eval(now + r * 10_000)
                print(
                    f"round {r}: {time.perf_counter() - started:.3f}s, "
                    f"CPU {time.process_time() - cpu:.3f}s",
                    flush=True,
                )
        finally:
            await storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals", type=int, default=6)
    parser.add_argument("--interval", type=float, default=15.0, help="group interval, seconds")
    parser.add_argument("--in-process", action="store_true")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1 and not args.in_process:
        os.sched_setaffinity(0, {1})

    if args.in_process:
        bodies, per_point, _ = fresh_load()
        asyncio.run(in_process(bodies, per_point, args.intervals))
        return

    def ours(tmp: Path, rules: Path) -> tuple[Process, str]:
        config = f"rules:\n  files: ['{rules}']\n"
        return start_aggregator(tmp / "agg", config=config, cpu=0)

    def prometheus(tmp: Path, rules: Path) -> tuple[Process, str]:
        return start_prometheus(
            tmp / "prom",
            f"global: {{}}\nrule_files: ['{rules}']\n",
            extra_args=["--web.enable-remote-write-receiver"],
            cpu=0,
        )

    mine, mine_cpu, mine_out = run(
        "aggregator",
        ours,
        "aggregator_rule_group",
        args.interval,
        args.intervals,
    )
    theirs, theirs_cpu, theirs_out = run(
        "prometheus",
        prometheus,
        "prometheus_rule_group",
        args.interval,
        args.intervals,
    )
    ours_s, prom_s = statistics.median(mine), statistics.median(theirs)
    print(f"\n{'500 rules, one evaluation':32}{'ours ms':>9}{'prom ms':>9}{'speedup':>9}")
    print(
        f"{'rule_group_last_duration':32}{ours_s * 1000:9.1f}{prom_s * 1000:9.1f}"
        f"{prom_s / ours_s:9.2f}"
    )
    print(
        f"{'process CPU per interval':32}{mine_cpu * 1000:9.1f}{theirs_cpu * 1000:9.1f}"
        f"{theirs_cpu / mine_cpu:9.2f}"
    )
    print(
        f"(each evaluation, ms: ours {[round(x * 1000) for x in mine]}, "
        f"prometheus {[round(x * 1000) for x in theirs]})"
    )
    print(f"series written: ours {mine_out}, prometheus {theirs_out}")


if __name__ == "__main__":
    main()
