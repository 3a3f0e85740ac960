"""Tiering endpoints (ours): `POST /api/v1/admin/flush` and `GET /api/v1/status/blocks`.

A flush cuts everything in the head into blocks, uploads them and answers
when they are safe in the object store, with what it moved:
`{"blocks": n, "series": n, "samples": n}`. It is what to call before a node
is replaced: afterwards a new service on an empty data directory and the same
bucket answers every query the same. If the store is down the call waits,
retrying the uploads, until they succeed (or the client gives up; the
uploads go on).

The status lists the live blocks, the blocks waiting on local disk for their
upload (with attempts and the last error), the backlog totals and the head.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from aggregator.api.context import BACKEND
from aggregator.api.responses import success


async def handle_flush(request: web.Request) -> web.Response:
    backend = request.app[BACKEND].get()
    # Shielded: a client that gives up does not stop an upload halfway.
    result = await asyncio.shield(backend.flush())
    return success({"blocks": result.blocks, "series": result.series, "samples": result.samples})


async def handle_blocks_status(request: web.Request) -> web.Response:
    return success(request.app[BACKEND].get().blocks_status())
