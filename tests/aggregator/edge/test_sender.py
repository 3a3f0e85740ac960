"""The sender drains the disk queue in order, retrying what the host can take later."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from aggregator.edge import uplink
from aggregator.edge.diskqueue import DiskQueue
from aggregator.edge.http import Client
from aggregator.edge.uplink import Sender
from tests.support.waiting import until


async def test_order_retries_and_drops(aiohttp_server: Any, tmp_path: Path, monkeypatch) -> None:
    answers = {b"a": [503, 204], b"b": [401, 204], b"c": [400], b"d": [204]}
    seen: list[tuple[str, str, bytes]] = []

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append((request.path, request.headers["X-Edge-Sequence"], body))
        return web.Response(status=answers[body].pop(0))

    app = web.Application()
    app.router.add_post("/api/v1/write", receive)
    app.router.add_post("/api/v1/edge/alerts", receive)
    server = await aiohttp_server(app)
    monkeypatch.setattr(uplink, "MAX_BACKOFF_S", 0.01)  # keep the test short
    queue = DiskQueue(tmp_path, 1 << 20)
    for kind, body in (("write", b"a"), ("alerts", b"b"), ("write", b"c"), ("write", b"d")):
        queue.put(kind, body)
    async with Client() as session:
        sender = Sender(queue, session, str(server.make_url("")), "tok")
        task = asyncio.create_task(sender.run())
        try:
            await until(lambda: len(queue) == 0, timeout_s=10)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert [(p, s, b) for p, s, b in seen] == [
        ("/api/v1/write", "1", b"a"),
        ("/api/v1/write", "1", b"a"),  # 503: retried
        ("/api/v1/edge/alerts", "2", b"b"),
        ("/api/v1/edge/alerts", "2", b"b"),  # 401: retried, not dropped
        ("/api/v1/write", "3", b"c"),  # 400: dropped
        ("/api/v1/write", "4", b"d"),
    ]
    assert (sender.sent_records, sender.rejected_records) == (3, 1)
