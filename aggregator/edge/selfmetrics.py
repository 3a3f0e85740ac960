"""The agent's own metrics on `edge.listen`: a few unlabelled gauges and counters, served
from the event loop.

prometheus-client's registry, metric families and `start_http_server` would do
this too, but they bring the whole client (`http.server`, `wsgiref`,
`urllib.request`, `email`, a server thread: 5-7 MB of the agent's RSS, see
`aggregator.edge.promparse`). The agent's metrics are values read from its
parts when scraped, so rendering them in the text format (0.0.4) takes a few
lines, and one asyncio server answers `GET /metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_HEAD = 16 << 10
READ_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Metric:
    """One unlabelled sample; a counter's name ends in `_total` on the wire."""

    kind: Literal["gauge", "counter"]
    name: str
    help: str
    value: float


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value)}.0"
    return repr(float(value))


def render(metrics: Iterable[Metric]) -> bytes:
    """The text exposition format, as prometheus-client writes unlabelled metrics."""
    lines: list[str] = []
    for m in metrics:
        name = m.name
        if m.kind == "counter" and not name.endswith("_total"):
            name += "_total"
        doc = m.help.replace("\\", r"\\").replace("\n", r"\n")
        lines.append(f"# HELP {name} {doc}")
        lines.append(f"# TYPE {name} {m.kind}")
        lines.append(f"{name} {_number(m.value)}")
    return ("\n".join(lines) + "\n").encode()


async def serve(listen: str, collect: Callable[[], Iterable[Metric]]) -> asyncio.AbstractServer:
    """Answer `GET /metrics` on `listen` (HOST:PORT, all interfaces when HOST is empty)."""
    addr, _, port = listen.rpartition(":")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
            path = rest.split(" ", 1)[0].split("?", 1)[0]
            if method not in ("GET", "HEAD"):
                status, body, ctype = "405 Method Not Allowed", b"use GET\n", "text/plain"
            elif path != "/metrics":
                status, body, ctype = "404 Not Found", b"not found: try /metrics\n", "text/plain"
            else:
                status, body, ctype = "200 OK", render(collect()), CONTENT_TYPE
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + (b"" if method == "HEAD" else body)
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            pass
        except Exception:  # a bug in a collector must not stop the server
            log.exception("serving the agent's metrics failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    return await asyncio.start_server(handle, addr or None, int(port), limit=MAX_HEAD)
