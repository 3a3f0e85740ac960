"""Admission of reads: slots, the bounded queue, timeouts, shutdown and memory accounts."""

from __future__ import annotations

import asyncio
import time

import pytest

from aggregator.app import GATE
from aggregator.config import Config, QueryConfig
from aggregator.errors import NotReady, Overloaded
from aggregator.querygate import MemoryPool, QueryGate
from promql.errors import QueryTimeout
from storage.errors import MemoryBusy, MemoryLimitExceeded
from tests.aggregator.conftest import MakeService, encode

GiB = 1 << 30


def gate(slots: int, queued: int) -> QueryGate:
    return QueryGate(slots, queued, MemoryPool(4 * GiB, GiB, resident=lambda: 0))


async def test_slots_then_queue_then_refusal_with_retry_after() -> None:
    g = gate(1, 1)
    release = asyncio.Event()
    order: list[str] = []

    async def read(name: str) -> None:
        async with g.admit(5):
            order.append(name)
            await release.wait()

    first = asyncio.create_task(read("first"))
    await asyncio.sleep(0)
    second = asyncio.create_task(read("second"))
    await asyncio.sleep(0)
    assert (g.running, g.queued) == (1, 1)
    with pytest.raises(Overloaded) as info:
        async with g.admit(5):
            pass
    assert info.value.retry_after_s > 0
    assert "query.max_concurrency (1)" in str(info.value)
    assert "query.max_queued (1)" in str(info.value)
    release.set()
    await asyncio.gather(first, second)
    assert order == ["first", "second"]
    assert (g.running, g.queued) == (0, 0)


async def test_waiting_past_the_timeout_is_a_timeout_naming_the_limit() -> None:
    g = gate(1, 5)
    hold = asyncio.Event()

    async def holder() -> None:
        async with g.admit(5):
            await hold.wait()

    task = asyncio.create_task(holder())
    await asyncio.sleep(0)
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match=r"waiting for one of query.max_concurrency \(1\)"):
        async with g.admit(0.05):
            pass
    assert time.monotonic() - started < 1
    assert g.queued == 0
    hold.set()
    await task
    async with g.admit(1):  # the slot is free again
        assert g.running == 1


async def test_close_refuses_queued_reads_and_cancels_running_ones() -> None:
    g = gate(1, 5)

    async def read() -> str:
        async with g.admit(5):
            await asyncio.sleep(30)
        return "finished"

    running = asyncio.create_task(read())
    await asyncio.sleep(0)
    queued = asyncio.create_task(read())
    await asyncio.sleep(0)
    assert g.close() == 1
    for task in (running, queued):
        with pytest.raises(NotReady, match="shutting down"):
            await task
    with pytest.raises(NotReady):
        async with g.admit(1):
            pass


def test_memory_accounts_name_the_limit_they_pass() -> None:
    resident = [100 * (1 << 20)]
    pool = MemoryPool(1 * GiB, 256 * (1 << 20), resident=lambda: resident[0])
    a = pool.open()
    a.reserve(200 * (1 << 20))
    with pytest.raises(MemoryLimitExceeded, match=r"query.max_query_memory \(256MiB\)") as info:
        a.reserve(100 * (1 << 20))
    assert not isinstance(info.value, MemoryBusy)
    b, c, d = pool.open(), pool.open(), pool.open()
    b.reserve(250 * (1 << 20))
    c.reserve(250 * (1 << 20))
    with pytest.raises(MemoryBusy, match=r"query.max_memory \(1GiB\)"):
        d.reserve(250 * (1 << 20))  # 100 resident + 700 reserved + 250 > 1 GiB
    for account in (a, b, c):
        account.close()
    d.reserve(250 * (1 << 20))
    resident[0] = GiB  # the process grew (the head, other work): nothing more fits
    with pytest.raises(MemoryBusy):
        d.reserve(1)
    d.close()
    assert pool.reserved == 0


async def test_a_query_past_its_memory_bound_is_422_naming_the_key(
    make_service: MakeService,
) -> None:
    config = Config(query=QueryConfig(max_memory=GiB, max_query_memory=64 * 1024))
    svc = await make_service(config)
    now = int(time.time() * 1000)
    series = [
        (
            [("__name__", "m"), ("i", str(i))],
            [now - k * 15_000 for k in range(40, 0, -1)],
            [1.0] * 40,
        )
        for i in range(300)
    ]
    assert (await svc.write(encode(series)))[0] == 204
    status, body = await svc.get_json(
        "/api/v1/query_range",
        params={"query": "rate(m[1m])", "start": now / 1000 - 600, "end": now / 1000, "step": 15},
    )
    assert status == 422
    assert body["errorType"] == "execution"
    assert "query.max_query_memory (64KiB)" in body["error"]


async def test_a_full_queue_answers_503_with_retry_after(make_service: MakeService) -> None:
    svc = await make_service(Config(query=QueryConfig(max_concurrency=1, max_queued=0)))
    async with svc.app[GATE].admit(5):  # another read holds the only slot
        metrics = await (await svc.client.get("/metrics")).text()
        assert "aggregator_reads_running 1.0" in metrics
        assert "aggregator_reads_queued 0.0" in metrics
        resp = await svc.client.get("/api/v1/query", params={"query": "1"})
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "5"
        body = await resp.json()
        assert body["errorType"] == "unavailable"
        assert "query.max_concurrency (1)" in body["error"]
    resp = await svc.client.get("/api/v1/query", params={"query": "1"})
    assert resp.status == 200
