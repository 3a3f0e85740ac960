"""A real Prometheus 2.42 with native histograms scrapes a protobuf target and
remote-writes the histograms to the service: both answer the same queries alike.

The target (`tests.support.nhexposition`, a small protobuf exposition server:
prometheus-client cannot expose native histograms) adds 1 observation to the
zero bucket, 8 to one bucket and 1 to the next per scrape, so the 0.9 quantile
sits on a bucket boundary: Prometheus 2.42 interpolates linearly inside a
bucket and 3.x exponentially, and only at a boundary do both agree exactly.
The evaluation time sits half a scrape interval away from the samples, so no
sample is on a window boundary (2.x ranges are left-closed, 3.x left-open).
"""

from __future__ import annotations

import json
import math
import time
import urllib.parse

from tests.support.nhexposition import HistogramTarget
from tests.support.realparts import http_get, start_aggregator, start_prometheus

QUERIES = [
    "histogram_quantile(0.9, rate(req_latency[1m]))",
    "histogram_count(rate(req_latency[1m]))",
    "histogram_sum(rate(req_latency[1m]))",
    "histogram_count(req_latency)",
    "histogram_quantile(0.1, req_latency)",  # inside the zero bucket: linear in both
]


def _query(url: str, expr: str, t: float) -> dict[tuple[tuple[str, str], ...], float]:
    q = urllib.parse.urlencode({"query": expr, "time": f"{t:.3f}"})
    status, body = http_get(f"{url}/api/v1/query?{q}")
    assert status == 200, body
    out = {}
    for item in json.loads(body)["data"]["result"]:
        labels = tuple(sorted((k, v) for k, v in item["metric"].items() if k != "cluster"))
        out[labels] = float(item["value"][1])
    return out


def _sample_times(url: str) -> list[float]:
    q = urllib.parse.urlencode({"query": "req_latency[5m]", "time": f"{time.time():.3f}"})
    status, body = http_get(f"{url}/api/v1/query?{q}")
    assert status == 200, body
    result = json.loads(body)["data"]["result"]
    if not result:
        return []
    return [p[0] for p in result[0].get("histograms", [])]


def test_native_histograms_agree_with_prometheus(tmp_path, prometheus_binary):
    service, url = start_aggregator(tmp_path / "agg")
    prom = None
    with HistogramTarget("req_latency", {10: 8, 11: 1}) as target:
        try:
            prom, prom_url = start_prometheus(
                tmp_path / "prom",
                f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: nh
    static_configs:
      - targets: ["127.0.0.1:{target.port}"]
remote_write:
  - url: {url}/api/v1/write
    send_native_histograms: true
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
""",
                extra_args=["--enable-feature=native-histograms"],
            )
            deadline = time.monotonic() + 90
            times: list[float] = []
            while time.monotonic() < deadline:
                times = _sample_times(url)
                if len(times) >= 12:
                    break
                time.sleep(1)
            assert len(times) >= 12, (
                f"histograms did not arrive; log:\n{service.log_text()[-3000:]}"
            )
            # Half-way between two samples, a few samples back from the newest.
            t = (times[-4] + times[-3]) / 2
            for expr in QUERIES:
                ours = _query(url, expr, t)
                theirs = _query(prom_url, expr, t)
                assert ours, f"{expr}: no result from the service"
                assert set(ours) == set(theirs), (expr, ours, theirs)
                for k, v in theirs.items():
                    assert math.isclose(ours[k], v, rel_tol=1e-9), (expr, k, ours[k], v)
        finally:
            if prom is not None:
                prom.stop(timeout=60)
            service.stop()
