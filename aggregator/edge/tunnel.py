"""The reach-back tunnel, agent side: one outbound WebSocket the host reads the window through.

The agent dials `GET /api/v1/edge/tunnel` (WebSocket, cluster token) and
keeps it open, redialling with backoff. The host sends binary frames
`<8-byte request id><snappy remote-read request>`; the agent answers each with
`<id><status byte><body>`: status 0 and a snappy SAMPLES read response from
the window, or status 1 and an error text. A frame that is not a remote-read
request is answered with an error: the tunnel carries reads and nothing
else, so the host cannot make the agent do anything but answer queries.

With `edge.remote_read` set (the member cluster's own Prometheus), each read
also goes there, and its answer is merged with the window's: the host then
reaches that Prometheus's longer history through the same tunnel.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Sequence
from urllib.parse import urlencode

import numpy as np

from aggregator.edge.http import Client, HTTPError, WebSocket
from aggregator.edge.window import Window
from remote_write.batch import WriteBatch
from remote_write.codec import DecodedWrite
from remote_write.errors import RemoteWriteError
from remote_write.read import (
    decode_read_request,
    decode_read_response,
    encode_query_result,
    encode_read_response,
)
from storage.interfaces import SeriesSet
from storage.labels import Labels, Matcher, MatchType
from storage.merge import sort_series

log = logging.getLogger(__name__)

HEADER = struct.Struct(">Q")
OK, ERROR = 0, 1
MAX_REQUEST_BYTES = 4 << 20


def answer_read(window: Window, body: bytes, local: Sequence[DecodedWrite] = ()) -> bytes:
    """A SAMPLES read response for a snappy ReadRequest, from the window, merged with
    `local` (the member Prometheus's answer to the same request, one result per query)."""
    request = decode_read_request(body, max_decoded_bytes=MAX_REQUEST_BYTES)
    results = []
    for i, q in enumerate(request.queries):
        matchers = [Matcher(MatchType(op), name, value) for op, name, value in q.matchers]
        ss = window.select_ids(window.matching(matchers), q.start_ms, q.end_ms)
        if i < len(local) and local[i].batch.num_samples:
            ss = _merge(ss, local[i].batch)
        results.append(
            encode_query_result(
                [tuple(lbl) for lbl in ss.labels],
                np.asarray(ss.offsets, np.int64),
                ss.timestamps,
                ss.values,
            )
        )
    return encode_read_response(results)


def _merge(ss: SeriesSet, batch: WriteBatch) -> SeriesSet:
    """The window's series and a remote-read answer's as one set (equal series merged,
    the window's sample first at a shared timestamp)."""
    order = np.argsort(batch.series_idx, kind="stable")
    counts = np.bincount(batch.series_idx, minlength=len(batch.series)).astype(np.int64)
    labels = list(ss.labels) + [Labels.from_pairs(p) for p in batch.series]
    sizes = np.concatenate([np.diff(ss.offsets), counts])
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    ts = np.concatenate([ss.timestamps, batch.timestamps[order]])
    values = np.concatenate([ss.values, batch.values[order]])
    return sort_series(labels, offsets, ts, values)


class TunnelClient:
    """Keeps the tunnel up and answers the host's reads."""

    def __init__(
        self,
        window: Window,
        session: Client,
        host: str,
        token: str,
        cluster: str = "",
        local_read_url: str = "",
    ) -> None:
        self.window = window
        self.local_read_url = local_read_url.rstrip("/")
        self.local_errors = 0
        self.session = session
        self.url = host.rstrip("/") + "/api/v1/edge/tunnel?" + urlencode({"cluster": cluster})
        self.token = token
        self.connected = asyncio.Event()
        self.requests = 0

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                ws = await self.session.websocket(
                    self.url,
                    headers={"Authorization": f"Bearer {self.token}"},
                    heartbeat=20,
                    max_message=MAX_REQUEST_BYTES,
                )
                self.connected.set()
                backoff = 0.5
                log.info("tunnel open", extra={"url": self.url})
                try:
                    await self._serve(ws)
                finally:
                    await ws.close()
            except asyncio.CancelledError:
                raise
            except (HTTPError, TimeoutError, OSError) as exc:
                log.debug("tunnel down", extra={"err": str(exc) or type(exc).__name__})
            self.connected.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    async def _serve(self, ws: WebSocket) -> None:
        async for data in ws:
            if len(data) < HEADER.size:
                continue
            (rid,) = HEADER.unpack_from(data)
            self.requests += 1
            body = data[HEADER.size :]
            try:
                local = await self._local(body) if self.local_read_url else []
                reply = bytes([OK]) + answer_read(self.window, body, local)
            except (RemoteWriteError, ValueError) as exc:
                reply = bytes([ERROR]) + f"not a remote-read request: {exc}".encode()
            except Exception as exc:  # answer, do not drop the tunnel
                log.exception("tunnel read failed")
                reply = bytes([ERROR]) + str(exc).encode()
            await ws.send_bytes(HEADER.pack(rid) + reply)

    async def _local(self, body: bytes) -> list[DecodedWrite]:
        """The member Prometheus's answer to the same read (empty, and counted, on failure:
        the window still answers)."""
        try:
            decode_read_request(body, max_decoded_bytes=MAX_REQUEST_BYTES)  # reads only
            resp = await self.session.request(
                "POST",
                f"{self.local_read_url}/api/v1/read",
                body=body,
                headers={
                    "Content-Encoding": "snappy",
                    "Content-Type": "application/x-protobuf",
                    "X-Prometheus-Remote-Read-Version": "0.1.0",
                },
                timeout_s=25,
            )
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status}")
            return decode_read_response(resp.body)
        except (HTTPError, TimeoutError, ValueError, RemoteWriteError) as exc:
            self.local_errors += 1
            log.warning(
                "local prometheus read failed", extra={"err": str(exc) or type(exc).__name__}
            )
            return []
