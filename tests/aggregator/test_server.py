"""The listener's guards, over real sockets: connection cap, header, body and idle timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from aggregator.app import BACKEND, build_app
from aggregator.config import Config, ServerConfig
from aggregator.server import GUARD, ConnectionGuard, listen

GET_READY = b"GET /-/ready HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture
async def port(tmp_path: Path) -> AsyncIterator[int]:
    server = ServerConfig(
        max_connections=3, header_timeout_ms=300, body_timeout_ms=300, idle_timeout_ms=1500
    )
    config = Config(server=server).with_overrides(data_dir=str(tmp_path / "data"))
    app = build_app(config)
    guard = ConnectionGuard(server.max_connections, server.header_timeout_ms / 1000)
    app[GUARD] = guard
    runner = web.AppRunner(
        app,
        access_log=None,
        handler_cancellation=True,
        keepalive_timeout=server.idle_timeout_ms / 1000,
    )
    await runner.setup()
    listener = await listen(runner, guard, "127.0.0.1", 0, ssl_context=None)
    await app[BACKEND].wait_open()
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        listener.close()
        await runner.cleanup()


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def response_head(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    return head.split(b"\r\n", 1)[0]


async def closed(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), within) == b""
    except (TimeoutError, ConnectionResetError):
        return False


async def test_connections_past_the_cap_get_503_and_are_closed(port: int) -> None:
    held = [await connect(port) for _ in range(3)]
    await asyncio.sleep(0.05)
    reader, writer = await connect(port)
    data = await asyncio.wait_for(reader.read(), 5)
    assert data.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"Retry-After: 1" in data
    assert b"server.max_connections" in data
    writer.close()
    for _, w in held:
        w.close()
    await asyncio.sleep(0.1)
    reader, writer = await connect(port)  # room again
    writer.write(GET_READY)
    assert await response_head(reader) == b"HTTP/1.1 200 OK"
    writer.close()


async def test_a_request_head_sent_too_slowly_is_cut_off(port: int) -> None:
    reader, writer = await connect(port)
    writer.write(b"GET /-/ready HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    assert await closed(reader, 2)
    writer.close()


async def test_an_idle_keepalive_connection_survives_the_header_timeout_and_not_idle(
    port: int,
) -> None:
    reader, writer = await connect(port)
    writer.write(GET_READY)
    assert await response_head(reader) == b"HTTP/1.1 200 OK"
    await reader.readexactly(len(b"Aggregator is Ready.\n"))
    await asyncio.sleep(0.6)  # idle, longer than the header timeout
    writer.write(GET_READY)
    assert await response_head(reader) == b"HTTP/1.1 200 OK"
    await reader.readexactly(len(b"Aggregator is Ready.\n"))
    assert await closed(reader, 3)  # then the idle timeout (1.5 s) closes it
    writer.close()


async def test_a_body_sent_too_slowly_gets_408(port: int) -> None:
    reader, writer = await connect(port)
    writer.write(
        b"POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
        b"Content-Encoding: snappy\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10
    )
    assert await response_head(reader) == b"HTTP/1.1 408 Request Timeout"
    writer.close()
