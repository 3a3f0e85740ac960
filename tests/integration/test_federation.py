"""The fleet against real Prometheus 2.42: one member pushes by remote write with its
token, two are pulled by URL, and a fourth Prometheus holds exactly the same data with
the same `cluster` labels. Global queries through the service must agree with the
fourth, with pushdown on and off; a stopped member is named in warnings and in the
503 of `partial_response=false`, shows unhealthy, and the warning goes when it is back;
and a Prometheus reading the fleet through our `/api/v1/read` gives our answers.

Data and times keep away from where 2.42 and the 3.x semantics differ (left-closed
ranges, rate extrapolation near a series start): samples sit 3.3 s off the 15 s grid,
evaluation times 7.5 s off it, and no window reaches back before the first sample.
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from remote_write.batch import WriteBatch
from remote_write.codec import encode_write_request
from remote_write.read import (
    SAMPLES,
    STREAMED_XOR_CHUNKS,
    ReadQuery,
    decode_read_response,
    encode_read_request,
    read_frames,
)
from tests.support.realparts import (
    Process,
    free_port,
    http_get,
    post_write,
    start_aggregator,
    start_prometheus,
)
from tests.support.xor_reference import decode_xor_chunk

STEP_MS = 15_000
POINTS = 160  # 40 minutes
BUCKETS = ("0.1", "0.5", "1", "+Inf")
MEMBERS = ("push-1", "pull-2", "pull-3")

QUERIES = [
    "sum by (cluster) (rate(http_requests_total[5m]))",
    "sum(rate(http_requests_total[5m]))",
    "count(memory_bytes)",
    "count by (cluster) (http_requests_total)",
    "topk(3, memory_bytes)",
    "bottomk by (cluster) (1, memory_bytes)",
    "rate(http_requests_total[5m])",
    "histogram_quantile(0.9, sum by (cluster, le) (rate(request_duration_seconds_bucket[5m])))",
    "sum by (cluster) (memory_bytes) / on () group_left sum(memory_bytes)",
    'memory_bytes{cluster=~"pull-.*"}',
    'sum by (cluster) (memory_bytes{cluster=~"push-1|pull-3"})',
    "max by (cluster) (memory_bytes)",
    "min(memory_bytes)",
    "avg by (job) (memory_bytes)",
    "group by (cluster) (memory_bytes)",
    "sum without (instance) (memory_bytes)",
]


def member_batch(cluster: str, t0: int, *, with_cluster: bool) -> WriteBatch:
    """The fixed series of one member (a counter, a gauge, a histogram), 3 instances."""
    k = MEMBERS.index(cluster) + 1
    ts = t0 + np.arange(POINTS, dtype=np.int64) * STEP_MS + 3_300
    series = []
    extra = [("cluster", cluster)] if with_cluster else []
    for inst in range(3):
        base = [("instance", f"i{inst}"), ("job", "api" if inst < 2 else "db"), *extra]
        rate = 1.0 + k + 0.5 * inst
        counter = np.cumsum(np.full(POINTS, rate * 15)) + 100 * k
        series.append(([("__name__", "http_requests_total"), *base], ts, counter))
        gauge = 1e8 * k + 1e6 * inst + 5e5 * np.sin(np.arange(POINTS) / (5 + k + inst))
        series.append(([("__name__", "memory_bytes"), *base], ts, gauge))
        for j, le in enumerate(BUCKETS):
            frac = (j + 1) / len(BUCKETS) if le != "+Inf" else 1.0
            bucket = np.cumsum(np.full(POINTS, rate * 10 * frac ** (1 + 0.3 * k)))
            series.append(
                ([("__name__", "request_duration_seconds_bucket"), *base, ("le", le)], ts, bucket)
            )
    return WriteBatch.from_series([(tuple(lbl), t, v) for lbl, t, v in series])


@dataclass
class Fleet:
    agg_url: str
    ref_url: str
    reader_url: str
    members: dict[str, tuple[Process, str, Path]]
    t0: int
    agg: Process
    started: list[Process]


def _receiver(workdir: Path, external: str = "", port: int | None = None) -> tuple[Process, str]:
    config = "global:\n  scrape_interval: 1m\n"
    if external:
        config += f"  external_labels:\n{external}"
    return start_prometheus(
        workdir, config, extra_args=["--web.enable-remote-write-receiver"], port=port
    )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, prometheus_binary) -> Iterator[Fleet]:
    base = tmp_path_factory.mktemp("fleet")
    started: list[Process] = []
    # Prometheus forwards only samples newer than its remote-write queue's start, so
    # the data lies ahead of now (the service is told to accept that much future).
    t0 = (int(time.time() * 1000) + 60_000) // STEP_MS * STEP_MS
    try:
        ref, ref_url = _receiver(base / "ref")
        started.append(ref)
        members: dict[str, tuple[Process, str, Path]] = {}
        # pull-2 names itself in an external label, which the service must override;
        # pull-3 adds a replica label that external_labels_drop removes.
        for name, ext in (
            ("pull-2", "    cluster: not-my-name\n"),
            ("pull-3", "    replica: r0\n"),
        ):
            proc, url = _receiver(base / name, ext)
            started.append(proc)
            members[name] = (proc, url, base / name)
        token = "token-push-1"
        agg, agg_url = start_aggregator(
            base / "agg",
            config=(
                "clusters:\n"
                f"  - {{name: push-1, token: {token}}}\n"
                f"  - {{name: pull-2, url: '{members['pull-2'][1]}', timeout: 5s,"
                " health_check_interval: 1s}\n"
                f"  - {{name: pull-3, url: '{members['pull-3'][1]}', timeout: 5s,"
                " health_check_interval: 1s, external_labels_drop: [replica]}\n"
                "limits:\n  max_future: 1h\n"
            ),
        )
        started.append(agg)
        # The push member forwards what it receives to the service with its token.
        push, push_url = start_prometheus(
            base / "push-1",
            "global:\n  scrape_interval: 1m\n"
            "remote_write:\n"
            f"  - url: {agg_url}/api/v1/write\n"
            f"    authorization: {{credentials: {token}}}\n"
            "    queue_config: {batch_send_deadline: 1s, min_backoff: 100ms}\n",
            extra_args=["--web.enable-remote-write-receiver"],
        )
        started.append(push)
        members["push-1"] = (push, push_url, base / "push-1")
        for name in MEMBERS:
            own = encode_write_request(member_batch(name, t0, with_cluster=False))
            assert post_write(members[name][1], own) == 204
            labelled = encode_write_request(member_batch(name, t0, with_cluster=True))
            assert post_write(ref_url, labelled) == 204
        reader, reader_url = start_prometheus(
            base / "reader",
            "global:\n  scrape_interval: 1m\n"
            "remote_read:\n"
            f"  - url: {agg_url}/api/v1/read\n    read_recent: true\n",
        )
        started.append(reader)
        _wait_for_push(agg_url, t0)
        yield Fleet(agg_url, ref_url, reader_url, members, t0, agg, started)
    finally:
        for proc in reversed(started):
            proc.stop()


def _wait_for_push(agg_url: str, t0: int) -> None:
    expected = POINTS * 3 * (2 + len(BUCKETS))
    end = (t0 + POINTS * STEP_MS) / 1000
    query = 'sum(count_over_time({cluster="push-1"}[1h]))'
    deadline = time.monotonic() + 60
    got = None
    while time.monotonic() < deadline:
        data = _get(agg_url, "/api/v1/query", {"query": query, "time": end})
        result = data["data"]["result"]
        got = float(result[0]["value"][1]) if result else 0
        if got == expected:
            return
        time.sleep(0.5)
    raise AssertionError(f"the push member forwarded {got} of {expected} samples")


def _get(url: str, path: str, params: dict[str, object]) -> dict:
    status, body = http_get(f"{url}{path}?{urllib.parse.urlencode(params)}", timeout=30)
    data = json.loads(body)
    data["_status"] = status
    return data


def _matrix(data: dict) -> dict[tuple, list[tuple[float, float]]]:
    assert data["_status"] == 200, data
    out = {}
    for s in data["data"]["result"]:
        points = s.get("values") or [s["value"]]
        out[tuple(sorted(s["metric"].items()))] = [(t, float(v)) for t, v in points]
    return out


def _same(ours: dict, theirs: dict, query: str) -> None:
    assert ours.keys() == theirs.keys(), f"{query}: series differ"
    for key, points in theirs.items():
        got = ours[key]
        assert [t for t, _ in got] == [t for t, _ in points], f"{query} {key}: timestamps"
        for (_, a), (_, b) in zip(got, points, strict=True):
            assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), f"{query} {key}: {a} != {b}"


def _window(fleet: Fleet) -> dict[str, object]:
    start = (fleet.t0 + 10 * 60_000 + 7_500) / 1000
    end = (fleet.t0 + (POINTS - 2) * STEP_MS + 7_500) / 1000
    return {"start": start, "end": end, "step": "60s"}


@pytest.mark.parametrize("pushdown", ["true", "false"])
@pytest.mark.parametrize("query", QUERIES)
def test_global_queries_agree_with_one_prometheus_holding_everything(fleet, query, pushdown):
    params = {"query": query, **_window(fleet)}
    theirs = _matrix(_get(fleet.ref_url, "/api/v1/query_range", params))
    assert theirs, f"{query}: the reference answers nothing"
    data = _get(fleet.agg_url, "/api/v1/query_range", {**params, "pushdown": pushdown})
    assert "warnings" not in data, data.get("warnings")
    _same(_matrix(data), theirs, query)
    instant = {"query": query, "time": _window(fleet)["end"]}
    _same(
        _matrix(_get(fleet.agg_url, "/api/v1/query", {**instant, "pushdown": pushdown})),
        _matrix(_get(fleet.ref_url, "/api/v1/query", instant)),
        query,
    )


def test_series_and_label_values_span_the_fleet(fleet):
    data = _get(fleet.agg_url, "/api/v1/label/cluster/values", {})
    assert data["data"] == sorted(MEMBERS)
    series = _get(fleet.agg_url, "/api/v1/series", {"match[]": 'memory_bytes{instance="i0"}'})
    assert sorted(s["cluster"] for s in series["data"]) == sorted(MEMBERS)
    assert all("replica" not in s for s in series["data"])


@pytest.mark.parametrize(
    "query", ["sum by (cluster) (memory_bytes)", 'rate(http_requests_total{cluster="pull-2"}[5m])']
)
def test_prometheus_reading_our_remote_read_agrees_with_us(fleet, query):
    params = {"query": query, **_window(fleet)}
    _same(
        _matrix(_get(fleet.reader_url, "/api/v1/query_range", params)),
        _matrix(_get(fleet.agg_url, "/api/v1/query_range", params)),
        query,
    )


def test_stopped_member_is_named_then_forgotten_when_back(fleet):
    proc, url, workdir = fleet.members["pull-3"]
    port = int(url.rsplit(":", 1)[1])
    proc.stop()
    params = {"query": "sum by (cluster) (memory_bytes)", **_window(fleet)}
    data = _get(fleet.agg_url, "/api/v1/query_range", params)
    assert data["_status"] == 200
    assert any('cluster "pull-3"' in w for w in data["warnings"]), data["warnings"]
    clusters = {tuple(s["metric"].items()) for s in data["data"]["result"]}
    assert (("cluster", "pull-3"),) not in clusters
    strict = _get(fleet.agg_url, "/api/v1/query_range", {**params, "partial_response": "false"})
    assert strict["_status"] == 503
    assert 'cluster "pull-3"' in strict["error"]
    listed = {c["name"]: c for c in _get(fleet.agg_url, "/api/v1/clusters", {})["data"]}
    assert listed["pull-3"]["healthy"] is False
    assert listed["pull-3"]["last_error"]
    assert listed["pull-2"]["healthy"] is True
    assert listed["push-1"]["mode"] == "push"
    proc, url = _receiver(workdir, "    replica: r0\n", port=port)
    fleet.started.append(proc)
    fleet.members["pull-3"] = (proc, url, workdir)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        listed = {c["name"]: c for c in _get(fleet.agg_url, "/api/v1/clusters", {})["data"]}
        if listed["pull-3"]["healthy"]:
            break
        time.sleep(0.3)
    data = _get(fleet.agg_url, "/api/v1/query_range", params)
    assert "warnings" not in data
    assert len(data["data"]["result"]) == 3


def test_ha_pair_reads_as_one_series_with_the_gap_filled(tmp_path, prometheus_binary):
    """Two Prometheus scrape the same target every second with a `replica` external label;
    replica a is stopped for a while. Pulled as two entries of one cluster, they read as
    one series whose samples cover a's gap; `dedup=false` shows both, a's with the gap."""
    agg_port = free_port()
    ports = {"a": free_port(), "b": free_port()}

    def replica(name: str) -> Process:
        proc, _ = start_prometheus(
            tmp_path / name,
            "global:\n  scrape_interval: 1s\n"
            f"  external_labels: {{replica: {name}}}\n"
            "scrape_configs:\n"
            f"  - {{job_name: target, static_configs: [{{targets: ['127.0.0.1:{agg_port}']}}]}}\n",
            port=ports[name],
        )
        return proc

    procs = [replica("b"), replica("a")]
    try:
        pulls = "".join(
            f"  - {{name: ha, url: 'http://127.0.0.1:{p}', health_check_interval: 1s}}\n"
            for p in ports.values()
        )
        agg, url = start_aggregator(
            tmp_path / "agg",
            config=f"clusters:\n{pulls}query:\n  replica_labels: [replica]\n",
            port=agg_port,
        )
        procs.append(agg)
        raw_query = {"query": 'up{job="target"}', "dedup": "false"}
        # Prometheus syncs new scrape targets 5 s after start: wait for both replicas.
        _until(lambda: len(_get(url, "/api/v1/query", raw_query)["data"]["result"]) == 2)
        time.sleep(2)
        procs[1].stop()
        stopped = time.time()
        time.sleep(5)
        procs.append(replica("a"))
        a_url = f"http://127.0.0.1:{ports['a']}"
        _until(lambda: _get(a_url, "/api/v1/query", {"query": "up[2s]"})["data"]["result"])
        time.sleep(2)
        at = time.time()
        window = f"{int(at - stopped + 3)}s"
        query = {"query": f'up{{job="target"}}[{window}]', "time": at}
        (series,) = _get(url, "/api/v1/query", query)["data"]["result"]
        assert "replica" not in series["metric"]
        assert series["metric"]["cluster"] == "ha"
        times = [float(t) for t, _ in series["values"]]
        # a's gap (its downtime plus the 5 s its restarted scrapes wait for) is filled
        # from b; a switch may skip one of b's samples (Thanos's penalty), and scrapes
        # run late on a busy machine, hence the slack over the 1 s interval
        assert max(np.diff(times)) < 4.5, times
        raw = _get(url, "/api/v1/query", {**query, "dedup": "false"})
        gaps = {
            s["metric"]["replica"]: max(np.diff([float(t) for t, _ in s["values"]]))
            for s in raw["data"]["result"]
        }
        assert gaps["a"] > 9, gaps
        assert gaps["b"] < 4.5, gaps
    finally:
        for p in reversed(procs):
            p.stop()


def _until(check, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError("condition not met in time")


def test_reference_xor_decoder_reads_prometheus_chunks(fleet):
    """The decoder our XOR encoder is tested against reads real Prometheus chunks right."""
    _, url, _ = fleet.members["pull-2"]
    query = ReadQuery(fleet.t0, fleet.t0 + POINTS * STEP_MS, (("=", "__name__", "memory_bytes"),))
    headers = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}

    def read(accepted: list[int]) -> bytes:
        request = urllib.request.Request(
            f"{url}/api/v1/read",
            data=encode_read_request([query], accepted),
            headers=headers,
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.read()

    (samples,) = decode_read_response(read([SAMPLES]))
    b = samples.batch
    want = {}
    for i in range(len(b.series)):
        sel = b.series_idx == i
        want[dict(b.series[i])["instance"]] = list(
            zip(b.timestamps[sel].tolist(), b.values[sel].tolist(), strict=True)
        )
    got = {}
    for msg in read_frames(read([STREAMED_XOR_CHUNKS])):
        for cs in msg.chunked_series:
            instance = {lb.name: lb.value for lb in cs.labels}["instance"]
            got[instance] = [p for c in cs.chunks for p in decode_xor_chunk(c.data)]
    assert got == want
    assert len(want) == 3


def _member_requests(agg_url: str, kind: str) -> float:
    _, body = http_get(f"{agg_url}/metrics")
    name = "aggregator_federation_requests_total"
    pattern = rf'^{name}\{{[^}}]*kind="{kind}"[^}}]*result="success"[^}}]*\}} (\S+)'
    return sum(float(v) for v in re.findall(pattern, body.decode(), re.M))


def test_pushdown_asks_members_to_aggregate_and_raw_reads_their_samples(fleet):
    params = {"query": "sum by (cluster) (rate(http_requests_total[5m]))", **_window(fleet)}
    before = (_member_requests(fleet.agg_url, "query"), _member_requests(fleet.agg_url, "read"))
    _get(fleet.agg_url, "/api/v1/query_range", params)
    pushed = (_member_requests(fleet.agg_url, "query"), _member_requests(fleet.agg_url, "read"))
    assert pushed[0] - before[0] == 2  # both pulled members aggregated
    assert pushed[1] == before[1]  # and sent no samples
    _get(fleet.agg_url, "/api/v1/query_range", {**params, "pushdown": "false"})
    raw = (_member_requests(fleet.agg_url, "query"), _member_requests(fleet.agg_url, "read"))
    assert raw[0] == pushed[0]
    assert raw[1] - pushed[1] == 2
