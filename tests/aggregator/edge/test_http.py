"""The agent's own HTTP and WebSocket client, against aiohttp's server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from aggregator.edge.http import Client, HTTPError


@pytest.fixture
async def server(aiohttp_server: Any) -> Any:
    app = web.Application()

    async def plain(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(body=b"got:" + body, headers={"X-Seen": request.headers.get("X-A", "")})

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for part in (b"ab", b"c" * 70000, b"d"):
            await resp.write(part)
        await resp.write_eof()
        return resp

    async def empty(_: web.Request) -> web.Response:
        return web.Response(status=204)

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse(heartbeat=0.2)
        await sock.prepare(request)
        async for msg in sock:
            if msg.type == WSMsgType.BINARY:
                await sock.send_bytes(msg.data[::-1])
        return sock

    app.router.add_route("*", "/plain", plain)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/empty", empty)
    app.router.add_get("/ws", ws)
    return await aiohttp_server(app)


async def test_post_get_chunked_and_keep_alive(server: Any) -> None:
    base = str(server.make_url("")).rstrip("/")
    async with Client() as client:
        r = await client.request("POST", f"{base}/plain", body=b"x" * 100_000, headers={"X-A": "1"})
        assert (r.status, r.body[:6], len(r.body), r.headers["x-seen"]) == (
            200,
            b"got:xx",
            100_004,
            "1",
        )
        r = await client.request("GET", f"{base}/chunked")
        assert r.body == b"ab" + b"c" * 70000 + b"d"
        assert (await client.request("GET", f"{base}/empty")).status == 204
        assert len(client._idle[("http", "127.0.0.1", server.port)]) == 1  # reused throughout


async def test_a_stale_kept_alive_connection_is_replaced(server: Any) -> None:
    base = str(server.make_url("")).rstrip("/")
    async with Client() as client:
        await client.request("GET", f"{base}/empty")
        [conn] = client._idle[("http", "127.0.0.1", server.port)]
        conn.close()  # as if the server had dropped it while idle
        await asyncio.sleep(0.05)
        assert (await client.request("GET", f"{base}/empty")).status == 204


async def test_refused_is_an_http_error() -> None:
    async with Client() as client:
        with pytest.raises(HTTPError, match="cannot connect"):
            await client.request("GET", "http://127.0.0.1:1/x")


async def test_websocket_round_trip_and_server_pings(server: Any) -> None:
    url = str(server.make_url("/ws"))
    async with Client() as client:
        ws = await client.websocket(url, heartbeat=0.2)
        payload = bytes(range(256)) * 1000  # masked on the way out
        await ws.send_bytes(payload)
        got = []
        async for msg in ws:
            got.append(msg)
            if len(got) == 1:
                await asyncio.sleep(0.6)  # the server pings meanwhile: answered with pongs
                await ws.send_bytes(b"abc")
            else:
                break
        assert got == [payload[::-1], b"cba"]
        await ws.close()


async def test_websocket_refusal_says_the_status(server: Any) -> None:
    async with Client() as client:
        with pytest.raises(HTTPError, match="HTTP 404"):
            await client.websocket(str(server.make_url("/nowhere")))
