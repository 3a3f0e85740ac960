"""`/api/v1/query_exemplars` against a real Prometheus 2.42 holding the same exemplars.

Both receive the same remote-write 1.0 requests (Prometheus 2.42 has no 2.0
receiver; its exemplar storage is behind `--enable-feature=exemplar-storage`):
exemplars on several series, a retry of the newest one (a duplicate), one
older than its series' newest (out of order), one with labels over 128
characters. Then both answer the same queries, and the bodies must be equal
byte for byte: which exemplars were kept, series order, labels, value and
timestamp formatting.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator

import pytest
import snappy

from remote_write.prompb import remote_pb2
from tests.support.realparts import (
    http_get,
    post_write,
    start_aggregator,
    start_prometheus,
)

NOW = (int(time.time()) - 600) * 1000  # inside both heads' accepted range

Exemplar = tuple[dict[str, str], float, int]


def request(series: list[tuple[dict[str, str], list[tuple[int, float]], list[Exemplar]]]) -> bytes:
    """A 1.0 WriteRequest with these (labels, samples, exemplars)."""
    req = remote_pb2.WriteRequest()
    for labels, samples, exemplars in series:
        ts = req.timeseries.add()
        for name in sorted(labels):
            ts.labels.add(name=name, value=labels[name])
        for t, v in samples:
            ts.samples.add(timestamp=t, value=v)
        for ex_labels, value, t in exemplars:
            ex = ts.exemplars.add(value=value, timestamp=t)
            for name in sorted(ex_labels):
                ex.labels.add(name=name, value=ex_labels[name])
    return snappy.compress(req.SerializeToString())


REQ_A = {"__name__": "http_requests_total", "job": "api", "code": "200"}
REQ_B = {"__name__": "http_requests_total", "job": "api", "code": "500"}
LAT = {"__name__": "rpc_seconds_bucket", "job": "db", "le": "0.5"}

BODIES = [
    request(
        [
            (REQ_A, [(NOW, 1.0)], [({"trace_id": "aaa1"}, 1.0, NOW - 100)]),
            (REQ_B, [(NOW, 2.0)], [({"trace_id": "bbb1", "span_id": "s1"}, 0.001, NOW - 50)]),
            (LAT, [(NOW, 5.0)], [({"trace_id": "ccc1"}, 0.42, NOW - 10)]),
        ]
    ),
    request(
        [
            # The newest again (a retry: skipped), then a newer one.
            (
                REQ_A,
                [(NOW + 15_000, 3.0)],
                [({"trace_id": "aaa1"}, 1.0, NOW - 100), ({"trace_id": "aaa2"}, 3.0, NOW + 14_000)],
            ),
            # Older than the series' newest exemplar: out of order, dropped.
            (REQ_B, [(NOW + 15_000, 4.0)], [({"trace_id": "bbb0"}, 9.0, NOW - 60)]),
            # Labels over 128 characters together: dropped.
            (LAT, [(NOW + 15_000, 6.0)], [({"trace_id": "x" * 130}, 1.5, NOW + 14_500)]),
        ]
    ),
    request([(LAT, [(NOW + 30_000, 7.0)], [({"trace_id": "ccc2"}, 1e-7, NOW + 29_999)])]),
]

QUERIES = [
    {"query": "http_requests_total"},
    {"query": 'rate(http_requests_total{code="500"}[5m]) + on() group_left rpc_seconds_bucket'},
    {"query": "rpc_seconds_bucket", "start": str(NOW / 1000), "end": str((NOW + 20_000) / 1000)},
    {"query": '{job=~"api|db"}', "start": str((NOW + 1) / 1000)},
    {"query": "nothing_here"},
]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    workdir = tmp_path_factory.mktemp("exemplars")
    prom, prom_url = start_prometheus(
        workdir / "prom",
        "global:\n  scrape_interval: 1m\n",
        extra_args=["--web.enable-remote-write-receiver", "--enable-feature=exemplar-storage"],
    )
    try:
        agg, agg_url = start_aggregator(workdir / "agg")
    except BaseException:
        prom.stop()
        raise
    try:
        for body in BODIES:
            assert post_write(prom_url, body) == 204
            assert post_write(agg_url, body) == 204
        yield prom_url, agg_url
    finally:
        agg.stop()
        prom.stop()


@pytest.mark.parametrize("params", QUERIES, ids=lambda p: p["query"][:40])
def test_query_exemplars_is_identical(servers: tuple[str, str], params: dict[str, str]) -> None:
    prom_url, agg_url = servers
    path = f"/api/v1/query_exemplars?{urllib.parse.urlencode(params)}"
    expected = http_get(prom_url + path)
    assert expected[0] == 200, expected
    assert http_get(agg_url + path) == expected


def test_the_comparison_is_not_vacuous(servers: tuple[str, str]) -> None:
    """Prometheus kept exemplars at all (the feature flag took), so equality means something."""
    prom_url, _ = servers
    status, body = http_get(f"{prom_url}/api/v1/query_exemplars?query=http_requests_total")
    assert status == 200
    assert b"aaa2" in body
    assert b"bbb1" in body
    assert b"bbb0" not in body
