"""The service as a process on a real S3 endpoint (moto on loopback).

- Restart from the bucket: ingest hours of samples, flush, stop, delete the
  data directory, start a new service on the same bucket: every query over
  the whole range answers byte for byte the same.
- The endpoint goes away while blocks are uploading (a TCP proxy in front of
  moto is stopped): ingest and queries go on, the backlog shows in the
  status and the metrics, and once the endpoint returns the backlog uploads;
  every acknowledged sample is there exactly once.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path

from remote_write.batch import WriteBatch
from remote_write.codec import encode_write_request
from storage.objstore.s3 import S3Config
from tests.support.realparts import http_get, post_write, start_aggregator
from tests.support.tcpproxy import TcpProxy

STEP_MS = 15_000
JOBS = ("api", "db", "web")


def config_yaml(s3: S3Config, endpoint: str, prefix: str) -> str:
    return f"""
storage:
  block_duration: 15m
  object_store:
    type: s3
    bucket: {s3.bucket}
    prefix: {prefix}
    endpoint: {endpoint}
    region: us-east-1
"""


def scrape_bodies(start_ms: int, points: int, per_request: int = 20) -> tuple[list[bytes], int]:
    """Remote-write bodies of `points` scrapes of 30 series, in time order; and the samples."""
    bodies = []
    samples = 0
    for first in range(0, points, per_request):
        series = []
        ks = range(first, min(first + per_request, points))
        ts = [start_ms + k * STEP_MS for k in ks]
        for i in range(10):
            for j, job in enumerate(JOBS):
                counter = [float((k + 1) * (i + 1) * (j + 2)) for k in ks]
                series.append(
                    (
                        (("__name__", "http_requests_total"), ("instance", f"i{i}"), ("job", job)),
                        ts,
                        counter,
                    )
                )
        series.append(
            ((("__name__", "temperature"), ("room", "a")), ts, [20 + (k % 17) * 0.25 for k in ks])
        )
        samples += sum(len(s[1]) for s in series)
        bodies.append(encode_write_request(WriteBatch.from_series(series)))
    return bodies, samples


def get(url: str, path: str, params: dict[str, str]) -> bytes:
    status, body = http_get(f"{url}{path}?{urllib.parse.urlencode(params)}", timeout=60)
    assert status == 200, body
    return body


def post(url: str, path: str) -> dict:
    request = urllib.request.Request(f"{url}{path}", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=120) as resp:
        return json.loads(resp.read())


def answers(url: str, start_s: float, end_s: float) -> dict[str, bytes]:
    rng = {"start": f"{start_s:.3f}", "end": f"{end_s:.3f}"}
    out = {}
    for name, query, step in [
        ("rate", "sum by (job) (rate(http_requests_total[5m]))", "60"),
        ("max", "max_over_time(temperature[30m])", "300"),
        ("raw", 'http_requests_total{instance="i3"}', "15"),
        ("count", "count_over_time(http_requests_total[10m])", "600"),
    ]:
        out[name] = get(url, "/api/v1/query_range", {"query": query, "step": step, **rng})
    total = f"count_over_time({{__name__=~'.+'}}[{int(end_s - start_s) + 60}s])"
    out["total"] = get(url, "/api/v1/query", {"query": f"sum({total})", "time": f"{end_s:.3f}"})
    out["series"] = get(url, "/api/v1/series", {"match[]": '{__name__=~".+"}', **rng})
    out["labels"] = get(url, "/api/v1/label/job/values", rng)
    return out


def test_a_new_service_on_the_same_bucket_answers_the_same(tmp_path: Path, s3_config, moto_url):
    hours = 3
    points = hours * 240
    now = int(time.time() * 1000)
    start_ms = now - now % 60_000 - points * STEP_MS
    bodies, samples = scrape_bodies(start_ms, points)
    config = config_yaml(s3_config, moto_url, "fleet")
    data_dir = tmp_path / "data"
    proc, url = start_aggregator(tmp_path / "first", config=config, data_dir=data_dir)
    try:
        for body in bodies:
            assert post_write(url, body) == 204
        end_s = (start_ms + (points - 1) * STEP_MS) / 1000
        before = answers(url, start_ms / 1000, end_s)
        flushed = post(url, "/api/v1/admin/flush")["data"]
        assert flushed["blocks"] >= 1
        status = json.loads(get(url, "/api/v1/status/blocks", {}))["data"]
        assert status["head"]["samples"] == 0
        assert sum(b["samples"] for b in status["blocks"]) == samples
        assert len(status["blocks"]) >= hours * 4 - 1  # one block per closed quarter hour
        assert answers(url, start_ms / 1000, end_s) == before
    finally:
        assert proc.stop() == 0
    shutil.rmtree(data_dir)

    proc, url = start_aggregator(tmp_path / "second", config=config, data_dir=tmp_path / "fresh")
    try:
        after = answers(url, start_ms / 1000, end_s)
        for name in before:
            assert after[name] == before[name], name
        total = json.loads(after["total"])["data"]["result"][0]["value"][1]
        assert int(total) == samples
    finally:
        proc.stop()


def metric(url: str, name: str) -> float:
    text = http_get(f"{url}/metrics")[1].decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exposed")


def wait_for(check, what: str, timeout: float = 90.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_uploads_wait_out_an_endpoint_outage(tmp_path: Path, s3_config, moto_url):
    proxy = TcpProxy(int(moto_url.rsplit(":", 1)[1]))
    proxy.start()
    config = config_yaml(s3_config, proxy.url, "outage")
    points = 4 * 240  # four hours of scrapes, in three parts
    now = int(time.time() * 1000)
    start_ms = now - now % 60_000 - points * STEP_MS
    bodies, samples = scrape_bodies(start_ms, points)
    third = len(bodies) // 3
    proc, url = start_aggregator(tmp_path / "svc", config=config)
    end_s = (start_ms + (points - 1) * STEP_MS) / 1000
    try:
        for body in bodies[:third]:
            assert post_write(url, body) == 204
        wait_for(lambda: metric(url, "aggregator_tiering_blocks_uploaded_total") >= 3, "uploads")

        proxy.stop()  # the endpoint goes away
        for body in bodies[third : 2 * third]:
            assert post_write(url, body) == 204  # ingest goes on
        # Blocks pile up on local disk; the status and the metrics show it.
        wait_for(lambda: metric(url, "aggregator_tiering_pending_blocks") >= 2, "a backlog")

        def failed_status():  # type: ignore[no-untyped-def]
            data = json.loads(get(url, "/api/v1/status/blocks", {}))["data"]
            return data if data["pending"] and data["pending"][0]["lastError"] else None

        status = wait_for(failed_status, "a failed upload in the status")
        assert status["backlog"]["blocks"] >= 2
        assert status["pending"][0]["attempts"] >= 1
        assert metric(url, "aggregator_tiering_upload_failures_total") >= 1
        # Queries of the data the head still holds go on.
        written_s = (start_ms + (2 * third * 20 - 1) * STEP_MS) / 1000  # the newest sample
        recent = get(
            url,
            "/api/v1/query",
            {"query": "count(http_requests_total)", "time": f"{written_s:.3f}"},
        )
        assert json.loads(recent)["data"]["result"][0]["value"][1] == "30"

        proxy.start()  # it comes back
        for body in bodies[2 * third :]:
            assert post_write(url, body) == 204
        wait_for(lambda: metric(url, "aggregator_tiering_pending_blocks") == 0, "the backlog")
        post(url, "/api/v1/admin/flush")
        status = json.loads(get(url, "/api/v1/status/blocks", {}))["data"]
        assert status["backlog"]["blocks"] == 0
        assert sum(b["samples"] for b in status["blocks"]) == samples
    finally:
        proc.stop()
        proxy.stop()

    # A fresh service on the bucket alone: every acknowledged sample, exactly once.
    proxy.start()
    try:
        proc, url = start_aggregator(tmp_path / "check", config=config)
        try:
            query = f"count_over_time({{__name__=~'.+'}}[{points * 15 + 60}s])"
            body = json.loads(get(url, "/api/v1/query", {"query": query, "time": f"{end_s:.3f}"}))
            counts = [int(r["value"][1]) for r in body["data"]["result"]]
            assert len(counts) == 31
            assert set(counts) == {points}  # no sample lost, none twice
            # And the values are the ones written (a counter that never resets).
            last = json.loads(
                get(
                    url,
                    "/api/v1/query",
                    {
                        "query": 'http_requests_total{instance="i9",job="web"}',
                        "time": f"{end_s:.3f}",
                    },
                )
            )
            assert last["data"]["result"][0]["value"][1] == str(points * 10 * 4)
        finally:
            proc.stop()
    finally:
        proxy.stop()
