"""A small HTTP/1.1 and WebSocket client on asyncio streams, for the agent alone.

Why not aiohttp's client, as the rest of the project uses: the agent's memory
target (50 MB resident on a node with 2-4 GB), and aiohttp with its helpers
(yarl, multidict, attrs, its parsers) costs about 10 MB resident on import.
The agent needs little: GET and POST with a body, Content-Length or chunked
answers, keep-alive to the few hosts it talks to, TLS when a URL is https
(a default context made on first use), and one WebSocket client (RFC 6455:
masked frames out, ping/pong, close). Compression is never asked for, so
answers come as they are.

Failures to connect, send or read, and malformed answers, raise `HTTPError`
(the agent's one "the other side is unreachable or broken" exception);
timeouts raise `TimeoutError`.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

try:  # CPython's own SHA-1: `hashlib` would load OpenSSL's libcrypto (2-4 MB resident)
    from _sha1 import sha1  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - interpreters without it
    from hashlib import sha1

MAX_HEADER_BYTES = 64 << 10
MAX_BODY_BYTES = 256 << 20
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
USER_AGENT = "aggregator-edge"


class HTTPError(Exception):
    """Could not get an answer: connection refused or lost, or a malformed answer."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # names lowercased
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str  # path and query

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def _target(url: str, params: Mapping[str, str] | None = None) -> _Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HTTPError(f"not an http(s) URL: {url!r}")
    path = parts.path or "/"
    query = parts.query
    if params:
        extra = urlencode(params)
        query = f"{query}&{extra}" if query else extra
    if query:
        path = f"{path}?{query}"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return _Target(parts.scheme, parts.hostname, port, path)


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class Client:
    """Keep-alive connections per (scheme, host, port); one request at a time each."""

    def __init__(self, *, max_idle_per_host: int = 2) -> None:
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self.max_idle = max_idle_per_host
        self._default_tls: Any = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for conns in self._idle.values():
            for c in conns:
                c.close()
        self._idle.clear()

    def _tls(self, ssl_context: Any) -> Any:
        if ssl_context is not None:
            return ssl_context
        if self._default_tls is None:
            try:
                import ssl  # the context only for https URLs
            except ImportError:
                # aggregator.edge.main leaves TLS out when no configured URL is https.
                raise HTTPError(
                    "TLS is not loaded: the agent started with no https URL "
                    "(--host, edge.remote_read, scrape schemes, Kubernetes discovery)"
                ) from None
            self._default_tls = ssl.create_default_context()
        return self._default_tls

    async def _connect(self, t: _Target, ssl_context: Any) -> _Conn:
        tls = self._tls(ssl_context) if t.scheme == "https" else None
        try:
            reader, writer = await asyncio.open_connection(
                t.host, t.port, ssl=tls, limit=MAX_HEADER_BYTES
            )
        except OSError as exc:
            raise HTTPError(f"cannot connect to {t.host}:{t.port}: {exc.strerror or exc}") from None
        return _Conn(reader, writer)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        params: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
        ssl_context: Any = None,
    ) -> Response:
        """One request; retried once on a fresh connection if a kept-alive one was stale."""
        t = _target(url, params)
        async with asyncio.timeout(timeout_s):
            idle = self._idle.get(t.key) or []
            while idle:
                conn = idle.pop()
                try:
                    return await self._exchange(conn, t, method, headers, body, reused=True)
                except _Stale:
                    conn.close()
            conn = await self._connect(t, ssl_context)
            return await self._exchange(conn, t, method, headers, body, reused=False)

    async def _exchange(
        self,
        conn: _Conn,
        t: _Target,
        method: str,
        headers: Mapping[str, str] | None,
        body: bytes,
        *,
        reused: bool,
    ) -> Response:
        lines = [
            f"{method} {t.path} HTTP/1.1",
            f"Host: {t.host_header}",
            f"User-Agent: {USER_AGENT}",
        ]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            conn.writer.write(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                conn.writer.write(body)
            await conn.writer.drain()
            status_line = await conn.reader.readline()
        except (OSError, asyncio.IncompleteReadError) as exc:
            conn.close()
            if reused:
                raise _Stale() from None
            raise HTTPError(f"{t.host}:{t.port}: {exc or type(exc).__name__}") from None
        except BaseException:
            conn.close()
            raise
        if not status_line:
            conn.close()
            if reused:
                raise _Stale()
            raise HTTPError(f"{t.host}:{t.port} closed the connection without answering")
        try:
            status, resp_headers = await _read_head(conn.reader, status_line)
            data, keep = await _read_body(conn.reader, resp_headers, method, status)
        except BaseException:
            conn.close()
            raise
        if keep:
            pool = self._idle.setdefault(t.key, [])
            if len(pool) < self.max_idle:
                pool.append(conn)
            else:
                conn.close()
        else:
            conn.close()
        return Response(status, resp_headers, data)

    async def websocket(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        heartbeat: float = 20.0,
        max_message: int = 64 << 20,
        timeout_s: float = 30.0,
    ) -> WebSocket:
        """Open a WebSocket (raises HTTPError when the server does not switch protocols)."""
        t = _target(url)
        key = base64.b64encode(os.urandom(16)).decode()
        conn = await asyncio.wait_for(self._connect(t, None), timeout_s)
        lines = [
            f"GET {t.path} HTTP/1.1",
            f"Host: {t.host_header}",
            f"User-Agent: {USER_AGENT}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{k}: {v}" for k, v in (headers or {}).items()),
        ]
        try:
            async with asyncio.timeout(timeout_s):
                conn.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
                await conn.writer.drain()
                status_line = await conn.reader.readline()
                status, resp_headers = await _read_head(conn.reader, status_line)
                if status != 101:
                    body, _ = await _read_body(conn.reader, resp_headers, "GET", status)
                    raise HTTPError(f"websocket refused: HTTP {status}: {body[:200]!r}")
                expected = base64.b64encode(sha1(key.encode() + WS_GUID).digest()).decode()
                if resp_headers.get("sec-websocket-accept") != expected:
                    raise HTTPError("websocket handshake: wrong Sec-WebSocket-Accept")
        except (OSError, asyncio.IncompleteReadError) as exc:
            conn.close()
            raise HTTPError(f"websocket handshake failed: {exc}") from None
        except BaseException:
            conn.close()
            raise
        return WebSocket(conn, heartbeat, max_message)


class _Stale(Exception):
    """A kept-alive connection the server had closed: try a fresh one."""


async def _read_head(
    reader: asyncio.StreamReader, status_line: bytes
) -> tuple[int, dict[str, str]]:
    try:
        _, code, *_ = status_line.decode("latin-1").split(" ", 2)
        status = int(code)
    except ValueError:
        raise HTTPError(f"malformed status line {status_line[:80]!r}") from None
    headers: dict[str, str] = {}
    size = 0
    while True:
        line = await reader.readline()
        size += len(line)
        if size > MAX_HEADER_BYTES:
            raise HTTPError("response headers too large")
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


async def _read_body(
    reader: asyncio.StreamReader, headers: dict[str, str], method: str, status: int
) -> tuple[bytes, bool]:
    """The body and whether the connection may be reused."""
    keep = headers.get("connection", "").lower() != "close"
    try:
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return b"", keep
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parts = []
            total = 0
            while True:
                size_line = await reader.readline()
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    raise HTTPError("response body too large")
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            return b"".join(parts), keep
        length = headers.get("content-length")
        if length is not None:
            n = int(length)
            if n > MAX_BODY_BYTES:
                raise HTTPError("response body too large")
            return await reader.readexactly(n), keep
        return await reader.read(MAX_BODY_BYTES), False
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        raise HTTPError(f"reading the response: {exc}") from None


class WebSocket:
    """A client WebSocket: binary messages in and out; answers pings; sends its own."""

    def __init__(self, conn: _Conn, heartbeat: float, max_message: int) -> None:
        self._conn = conn
        self._heartbeat = heartbeat
        self._max = max_message
        self._lock = asyncio.Lock()
        self.closed = False

    async def send_bytes(self, data: bytes) -> None:
        await self._send(0x2, data)

    async def _send(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        head = bytearray([0x80 | opcode])
        if n < 126:
            head.append(0x80 | n)
        elif n < 1 << 16:
            head.append(0x80 | 126)
            head += n.to_bytes(2, "big")
        else:
            head.append(0x80 | 127)
            head += n.to_bytes(8, "big")
        mask = os.urandom(4)
        head += mask
        async with self._lock:
            try:
                self._conn.writer.write(bytes(head) + _masked(payload, mask))
                await self._conn.writer.drain()
            except OSError as exc:
                self.closed = True
                raise HTTPError(f"websocket send failed: {exc}") from None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """Binary messages until the server closes or goes silent past two heartbeats."""
        pinger = asyncio.create_task(self._ping_loop())
        try:
            while not self.closed:
                try:
                    async with asyncio.timeout(2 * self._heartbeat + 5):
                        opcode, payload = await self._read_message()
                except TimeoutError:
                    break
                except (OSError, asyncio.IncompleteReadError):
                    break
                if opcode == 0x8:
                    await self._close_reply(payload)
                    break
                if opcode == 0x9:
                    await self._send(0xA, payload)
                elif opcode == 0x2:
                    yield payload
        finally:
            pinger.cancel()
            self.closed = True
            self._conn.close()

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            try:
                await self._send(0x9, b"")
            except HTTPError:
                return

    async def _close_reply(self, payload: bytes) -> None:
        try:
            await self._send(0x8, payload[:2])
        except HTTPError:
            pass

    async def _read_message(self) -> tuple[int, bytes]:
        parts: list[bytes] = []
        first_opcode = 0
        total = 0
        while True:
            b0, b1 = await self._conn.reader.readexactly(2)
            fin, opcode = b0 & 0x80, b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(await self._conn.reader.readexactly(2), "big")
            elif n == 127:
                n = int.from_bytes(await self._conn.reader.readexactly(8), "big")
            mask = await self._conn.reader.readexactly(4) if b1 & 0x80 else b""
            total += n
            if total > self._max:
                raise OSError("websocket message too large")
            payload = await self._conn.reader.readexactly(n)
            if mask:
                payload = _masked(payload, mask)
            if opcode >= 0x8:  # control frames may come between fragments
                if opcode == 0x9:
                    await self._send(0xA, payload)
                    continue
                if opcode == 0xA:
                    continue
                return opcode, payload
            if opcode != 0:
                first_opcode = opcode
            parts.append(payload)
            if fin:
                return first_opcode, b"".join(parts)

    async def close(self) -> None:
        if not self.closed:
            await self._close_reply(b"\x03\xe8")
            self.closed = True
            self._conn.close()


def _masked(payload: bytes, mask: bytes) -> bytes:
    """XOR with the repeated 4-byte mask, as one big-integer operation (C speed)."""
    n = len(payload)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")
