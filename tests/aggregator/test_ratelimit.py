"""Per-cluster ingest rate limits: token buckets, and the 429 a sender sees."""

from __future__ import annotations

import time

import pytest

from aggregator.config import Config, LimitsConfig, PushCluster
from aggregator.errors import RateLimited
from aggregator.ratelimit import IngestLimiter
from tests.aggregator.conftest import MakeService, encode


def test_rate_burst_debt_and_per_cluster_overrides() -> None:
    now = [0.0]
    limiter = IngestLimiter(
        LimitsConfig(ingest_rate=100, ingest_burst=200),
        [PushCluster("a", "ta"), PushCluster("big", "tb", ingest_rate=1000)],
        clock=lambda: now[0],
    )
    limiter.admit("a", 150)
    limiter.admit("a", 150)  # 50 left: let through, the bucket goes 100 into debt
    with pytest.raises(RateLimited) as info:
        limiter.admit("a", 1)
    assert info.value.retry_after_s == 1
    assert "limits.ingest_rate" in str(info.value)
    limiter.admit("big", 1000)  # its own bucket: 1000/s, burst one second's worth
    now[0] = 1.5  # 150 tokens later: out of debt again
    limiter.admit("a", 10)
    limiter.admit("big", 1000)  # refilled to its burst, now 1 short
    with pytest.raises(RateLimited, match=r"clusters\[1\].ingest_rate \(big\)"):
        limiter.admit("big", 1)


def test_no_rate_means_no_limit() -> None:
    limiter = IngestLimiter(LimitsConfig(), [PushCluster("a", "ta")])
    for _ in range(100):
        limiter.admit("a", 1_000_000)


async def test_a_cluster_over_its_rate_gets_429_with_retry_after_and_others_go_on(
    make_service: MakeService,
) -> None:
    config = Config(
        clusters=(PushCluster("a", "token-a"), PushCluster("b", "token-b")),
        limits=LimitsConfig(ingest_rate=10, ingest_burst=20),
    )
    svc = await make_service(config)
    now = int(time.time() * 1000)
    body = encode([([("__name__", "m"), ("i", str(i))], [now], [1.0]) for i in range(30)])
    a = {"Authorization": "Bearer token-a"}
    assert (await svc.write(body, headers=a))[0] == 204  # 20 in the bucket: taken into debt
    resp = await svc.client.post(
        "/api/v1/write",
        data=body,
        headers={"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf", **a},
    )
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1
    text = await resp.text()
    assert text.startswith("cluster 'a' is over its ingest rate limit of 10 samples/s")
    assert "limits.ingest_rate" in text
    assert (await svc.write(body, headers={"Authorization": "Bearer token-b"}))[0] == 204
