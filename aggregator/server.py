"""The listening socket and its guards against slow, stuck and too many clients.

aiohttp's request handler (one per connection) is wrapped in `GuardedProtocol`,
which adds what aiohttp lacks, using only the public protocol interface:

- a cap on open connections (`server.max_connections`, Prometheus's
  `--web.max-connections` default of 512): a connection past it is answered
  `503` with `Retry-After` and closed at once;
- a header timeout (`server.header_timeout`): once a client has sent the
  first byte of a request, the whole request head must arrive within it
  (slowloris), and a TLS handshake too;
- the idle timeout (`server.idle_timeout`) is aiohttp's keep-alive timeout,
  also applied to a connection that never sends anything.

The body timeout is the handlers' (they read bodies); a client that hangs up
cancels its request's handler (`handler_cancellation`), and with it its query.

`request_started`/`request_finished` (the `track_requests` middleware) tell
the guard when the handler has the request, so a long query never trips the
header timeout of its own connection.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web

log = logging.getLogger(__name__)

BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: 59\r\n\r\n"
    b"too many open connections (server.max_connections reached)\n"
)


class ConnectionGuard:
    """Counts connections and holds the header timeout; one per listener."""

    def __init__(self, max_connections: int, header_timeout_s: float) -> None:
        self.max_connections = max_connections
        self.header_timeout_s = header_timeout_s
        self.open = 0
        self.refused = 0
        self.timed_out = 0
        self._by_transport: dict[asyncio.BaseTransport, GuardedProtocol] = {}

    def request_started(self, transport: asyncio.BaseTransport | None) -> None:
        protocol = self._by_transport.get(transport) if transport is not None else None
        if protocol is not None:
            protocol.in_request = True
            protocol.disarm()

    def request_finished(self, transport: asyncio.BaseTransport | None) -> None:
        protocol = self._by_transport.get(transport) if transport is not None else None
        if protocol is not None:
            protocol.in_request = False


class GuardedProtocol(asyncio.Protocol):
    """aiohttp's handler for one connection, behind the connection cap and header timeout."""

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard) -> None:
        self.inner = inner
        self.guard = guard
        self.transport: asyncio.Transport | None = None
        self.in_request = False
        self._timer: asyncio.TimerHandle | None = None
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        guard = self.guard
        if guard.open >= guard.max_connections:
            guard.refused += 1
            self.transport.write(BUSY)
            self.transport.close()
            return
        guard.open += 1
        self._counted = True
        guard._by_transport[transport] = self
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._counted:
            return
        if not self.in_request and self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.guard.header_timeout_s, self._header_timeout)
        self.inner.data_received(data)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _header_timeout(self) -> None:
        self._timer = None
        if not self.in_request and self.transport is not None:
            self.guard.timed_out += 1
            log.info("connection closed: request head too slow", extra={"peer": self._peer()})
            self.transport.abort()

    def _peer(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        return str(peer[0]) if isinstance(peer, tuple) else str(peer)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self._counted else None

    def pause_writing(self) -> None:
        if self._counted:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self._counted:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        if not self._counted:
            return
        self._counted = False
        self.guard.open -= 1
        if self.transport is not None:
            self.guard._by_transport.pop(self.transport, None)
        self.inner.connection_lost(exc)


GUARD = web.AppKey("connection_guard", ConnectionGuard)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def track_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tell the connection guard a request reached its handler (and when it ends)."""
    guard = request.app.get(GUARD)
    if guard is None:
        return await handler(request)
    guard.request_started(request.transport)
    try:
        return await handler(request)
    finally:
        guard.request_finished(request.transport)


async def listen(
    runner: web.AppRunner,
    guard: ConnectionGuard,
    host: str | None,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None,
) -> asyncio.Server:
    """Start accepting connections for `runner`'s app, behind `guard` (and TLS if given)."""
    factory = runner.server
    assert factory is not None, "runner.setup() first"

    def protocol() -> asyncio.Protocol:
        return GuardedProtocol(cast(asyncio.Protocol, factory()), guard)

    loop = asyncio.get_running_loop()
    kwargs: dict[str, Any] = {"reuse_address": True, "backlog": 1024}
    if ssl_context is not None:
        kwargs["ssl"] = ssl_context
        kwargs["ssl_handshake_timeout"] = guard.header_timeout_s
    return await loop.create_server(protocol, host, port, **kwargs)
