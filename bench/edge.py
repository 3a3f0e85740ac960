"""Edge agent vs Prometheus 2.42 remote-writing everything: bytes upstream, agent RSS and CPU.

Both scrape the same two targets every 15 s for the same fixed time: a real
node-exporter (Debian package) and a synthetic target of about 1k series
(500 counters, 500 gauges, new values every scrape). Both send to the same
host (`aggregator serve`) as two clusters: Prometheus remote-writes every
sample; the agent runs a typical edge rule set the host assigns (per-instance
CPU, memory, load and network recordings and two synthetic aggregates every
minute, three alerts, one threshold filter) and forwards only their results.

Bytes upstream are counted where they arrive: the host's
`aggregator_received_bytes_total{cluster}` (compressed remote-write bodies),
plus, for the agent, its alert records (`aggregator_edge_sent_bytes_total`
covers both; the larger of the two is reported). The agent's CPU is its
utime+stime over the measured period; RSS is VmRSS at the end (and its peak,
VmHWM), with its private part (RssAnon) and mapped library pages (RssFile).
Prometheus's own RSS and CPU are printed beside them.

    .venv/bin/python -m bench.edge [--duration 300] [--warmup 45]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.edgeparts import agent_metrics, start_agent, start_node_exporter
from tests.support.realparts import Process, start_aggregator, start_prometheus

TOKEN_AGENT = "bench-edge-token"
TOKEN_PROM = "bench-prom-token"
CLK_TCK = os.sysconf("SC_CLK_TCK")

HOST = f"""
clusters:
  - {{name: edge, token: {TOKEN_AGENT}}}
  - {{name: prom, token: {TOKEN_PROM}}}
edge:
  rule_files: [edge-rules.yml]
"""

RULES = """
groups:
  - name: recordings
    cluster: edge
    interval: 1m
    rules:
      - record: instance:node_cpu_utilisation:rate1m
        expr: 1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[1m]))
      - record: instance:node_memory_utilisation:ratio
        expr: 1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes
      - record: instance:node_load1:per_cpu
        expr: node_load1 / on (instance) count by (instance) (node_cpu_seconds_total{mode="idle"})
      - record: instance:node_network_receive_bytes:rate1m
        expr: sum by (instance) (rate(node_network_receive_bytes_total[1m]))
      - record: job:synthetic_requests:rate1m
        expr: sum by (job, code) (rate(synthetic_requests_total[1m]))
      - record: job:synthetic_gauge:avg
        expr: avg by (job) (synthetic_gauge)
  - name: alerts
    cluster: edge
    interval: 15s
    rules:
      - alert: NodeFilesystemAlmostFull
        expr: node_filesystem_avail_bytes / node_filesystem_size_bytes < 0.05
        for: 5m
      - alert: TargetDown
        expr: up == 0
        for: 1m
      - alert: HighCPU
        expr: instance:node_cpu_utilisation:rate1m > 0.95
        for: 5m
      - filter: synthetic_gauge_breach
        expr: synthetic_gauge > 999
        before: 1m
        after: 1m
"""

AGENT = """
global: {scrape_interval: 15s, evaluation_interval: 1m}
scrape_configs:
  - job_name: node
    static_configs: [{targets: ["%(node)s"]}]
  - job_name: synthetic
    static_configs: [{targets: ["%(synthetic)s"]}]
edge: {queue_dir: "@QUEUE@", listen: "@LISTEN@", flush_interval: 15s}
"""

PROMETHEUS = """
global: {scrape_interval: 15s}
scrape_configs:
  - job_name: node
    static_configs: [{targets: ["%(node)s"]}]
  - job_name: synthetic
    static_configs: [{targets: ["%(synthetic)s"]}]
remote_write:
  - url: %(host)s/api/v1/write
    authorization: {credentials: %(token)s}
    queue_config: {batch_send_deadline: 5s}
"""


class SyntheticTarget:
    """About 1k series: 500 counters and 500 gauges, new values on every scrape."""

    def __init__(self, counters: int = 500, gauges: int = 500) -> None:
        state = {"n": 0}
        rng = random.Random(7)

        def body() -> bytes:
            state["n"] += 1
            n = state["n"]
            lines = ["# TYPE synthetic_requests_total counter"]
            for i in range(counters):
                lines.append(
                    f'synthetic_requests_total{{path="/api/{i // 5}",code="{200 + i % 5}"}} '
                    f"{n * (i % 13 + 1) + rng.random():.3f}"
                )
            lines.append("# TYPE synthetic_gauge gauge")
            for i in range(gauges):
                lines.append(f'synthetic_gauge{{shard="{i}"}} {rng.uniform(0, 1000):.3f}')
            return ("\n".join(lines) + "\n").encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = body()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def received_bytes(host: str, cluster: str) -> float:
    with urllib.request.urlopen(f"{host}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    m = re.search(rf'^aggregator_received_bytes_total{{cluster="{cluster}"}} (\S+)', text, re.M)
    return float(m.group(1)) if m else 0.0


def prom_pid(proc: Process) -> int:
    return proc.pid


def run(duration_s: float, warmup_s: float) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as tmp:
        work = Path(tmp)
        synthetic = SyntheticTarget()
        node_proc, node = start_node_exporter(work / "node")
        (work / "host").mkdir()
        (work / "host" / "edge-rules.yml").write_text(RULES)
        host_proc, host = start_aggregator(work / "host", config=HOST)
        targets = {"node": node, "synthetic": synthetic.address}
        agent, metrics_url = start_agent(
            work / "agent", host=host, cluster="edge", token=TOKEN_AGENT, config=AGENT % targets
        )
        prom, _ = start_prometheus(
            work / "prom", PROMETHEUS % {**targets, "host": host, "token": TOKEN_PROM}
        )
        try:
            print(f"warming up {warmup_s:.0f}s, then measuring {duration_s:.0f}s ...", flush=True)
            time.sleep(warmup_s)
            t0 = time.monotonic()
            a_cpu0, p_cpu0 = cpu_seconds(agent.pid), cpu_seconds(prom.pid)
            a_sent0 = agent_metrics(metrics_url)["aggregator_edge_sent_bytes_total"]
            a_recv0, p_recv0 = received_bytes(host, "edge"), received_bytes(host, "prom")
            rss_peak = 0
            while time.monotonic() - t0 < duration_s:
                time.sleep(5)
                rss_peak = max(rss_peak, status_kb(agent.pid, "VmRSS"))
            elapsed = time.monotonic() - t0
            a_cpu = cpu_seconds(agent.pid) - a_cpu0
            p_cpu = cpu_seconds(prom.pid) - p_cpu0
            m = agent_metrics(metrics_url)
            a_sent = m["aggregator_edge_sent_bytes_total"] - a_sent0
            a_recv = received_bytes(host, "edge") - a_recv0
            p_recv = received_bytes(host, "prom") - p_recv0
            agent_bytes = max(a_sent, a_recv)
            series = m["aggregator_edge_window_series"]
            rss_mb = status_kb(agent.pid, "VmRSS") / 1024
            hwm_mb = status_kb(agent.pid, "VmHWM") / 1024
            anon_mb = status_kb(agent.pid, "RssAnon") / 1024
            file_mb = status_kb(agent.pid, "RssFile") / 1024
            p_rss_mb = status_kb(prom.pid, "VmRSS") / 1024
            core = 100 * a_cpu / elapsed
            k = series / 1000
            print(f"scraped series (agent window): {series:.0f}; measured {elapsed:.0f}s")
            print(f"bytes upstream   Prometheus 2.42 remote_write: {p_recv:,.0f}")
            print(f"bytes upstream   edge agent (rules, alerts, filter): {agent_bytes:,.0f}")
            ratio = p_recv / agent_bytes if agent_bytes else float("inf")
            print(f"ratio            {ratio:.1f}x fewer bytes (target >= 50x)")
            print(
                f"agent RSS        {rss_mb:.1f} MB now, peak {hwm_mb:.1f} MB "
                f"({rss_mb / k:.1f} MB per 1k series; target < 50 MB)"
            )
            print(
                f"                 of which private (RssAnon) {anon_mb:.1f} MB, "
                f"shared library pages (RssFile) {file_mb:.1f} MB"
            )
            print(
                f"agent CPU        {core:.2f}% of one core ({core / k:.2f}% per 1k series; "
                "target < 2%)"
            )
            print(
                f"Prometheus       RSS {p_rss_mb:.1f} MB, "
                f"CPU {100 * p_cpu / elapsed:.2f}% of one core"
            )
            print(
                f"forwarded        {m['aggregator_edge_forwarded_samples_total']:.0f} samples, "
                f"{m['aggregator_edge_forwarded_alerts_total']:.0f} alerts in total"
            )
        finally:
            prom.stop()
            agent.stop()
            host_proc.stop()
            node_proc.stop()
            synthetic.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=300.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=45.0, help="seconds before measuring")
    args = parser.parse_args()
    run(args.duration, args.warmup)


if __name__ == "__main__":
    main()
