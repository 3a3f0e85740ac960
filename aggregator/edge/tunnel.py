"""The reach-back tunnel, agent side: one outbound WebSocket the host reads the window through.

The agent dials `GET /api/v1/edge/tunnel` (WebSocket, cluster token) and
keeps it open, redialling with backoff. The host sends binary frames
`<8-byte request id><snappy remote-read request>`; the agent answers each with
`<id><status byte><body>`: status 0 and a snappy SAMPLES read response from
the window, or status 1 and an error text. A frame that is not a remote-read
request is answered with an error: the tunnel carries reads and nothing
else, so the host cannot make the agent do anything but answer queries.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from urllib.parse import urlencode

import aiohttp
import numpy as np

from aggregator.edge.window import Window
from remote_write.errors import RemoteWriteError
from remote_write.read import decode_read_request, encode_query_result, encode_read_response
from storage.labels import Matcher, MatchType

log = logging.getLogger(__name__)

HEADER = struct.Struct(">Q")
OK, ERROR = 0, 1
MAX_REQUEST_BYTES = 4 << 20


def answer_read(window: Window, body: bytes) -> bytes:
    """A SAMPLES read response for a snappy ReadRequest, from the window."""
    request = decode_read_request(body, max_decoded_bytes=MAX_REQUEST_BYTES)
    results = []
    for q in request.queries:
        matchers = [Matcher(MatchType(op), name, value) for op, name, value in q.matchers]
        ss = window.select_ids(window.matching(matchers), q.start_ms, q.end_ms)
        results.append(
            encode_query_result(
                [tuple(lbl) for lbl in ss.labels],
                np.asarray(ss.offsets, np.int64),
                ss.timestamps,
                ss.values,
            )
        )
    return encode_read_response(results)


class TunnelClient:
    """Keeps the tunnel up and answers the host's reads."""

    def __init__(
        self,
        window: Window,
        session: aiohttp.ClientSession,
        host: str,
        token: str,
        cluster: str = "",
    ) -> None:
        self.window = window
        self.session = session
        self.url = host.rstrip("/") + "/api/v1/edge/tunnel?" + urlencode({"cluster": cluster})
        self.token = token
        self.connected = asyncio.Event()
        self.requests = 0

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                async with self.session.ws_connect(
                    self.url,
                    headers={"Authorization": f"Bearer {self.token}"},
                    heartbeat=20,
                    max_msg_size=MAX_REQUEST_BYTES,
                ) as ws:
                    self.connected.set()
                    backoff = 0.5
                    log.info("tunnel open", extra={"url": self.url})
                    await self._serve(ws)
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.debug("tunnel down", extra={"err": str(exc) or type(exc).__name__})
            self.connected.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.BINARY or len(msg.data) < HEADER.size:
                continue
            (rid,) = HEADER.unpack_from(msg.data)
            self.requests += 1
            try:
                reply = bytes([OK]) + answer_read(self.window, msg.data[HEADER.size :])
            except (RemoteWriteError, ValueError) as exc:
                reply = bytes([ERROR]) + f"not a remote-read request: {exc}".encode()
            except Exception as exc:  # answer, do not drop the tunnel
                log.exception("tunnel read failed")
                reply = bytes([ERROR]) + str(exc).encode()
            await ws.send_bytes(HEADER.pack(rid) + reply)
