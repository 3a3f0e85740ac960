"""Fixtures: the app under test, over the real Storage, behind a real HTTP client.

Every service here runs the real `storage.db.Storage` (head + WAL) in the
test's temp dir, opened by the app itself and closed by its cleanup when the
client closes. The few failures the real storage cannot be asked for are
injected in the tests that need them, each saying why.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from aggregator.app import BACKEND, build_app
from aggregator.config import Config, PushCluster
from remote_write.batch import SeriesMetadata, WriteBatch
from remote_write.codec import encode_write_request
from storage.db import Storage
from storage.labels import Labels, Matcher
from storage.wal.reader import list_segments, segment_path

WRITE_HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
ALL_TIME = (-(1 << 62), 1 << 62)

LabelPairs = Sequence[tuple[str, str]]
SeriesData = Sequence[tuple[LabelPairs, Sequence[int], Sequence[float]]]


@dataclass
class Service:
    client: TestClient[web.Request, web.Application]
    app: web.Application
    data_dir: Path

    @property
    def storage(self) -> Storage:
        """The real Storage the app opened (only once it is open)."""
        backend = self.app[BACKEND].get()
        assert isinstance(backend, Storage)
        return backend

    async def write(
        self, body: bytes, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> tuple[int, str]:
        resp = await self.client.post(
            "/api/v1/write", data=body, headers={**WRITE_HEADERS, **(headers or {})}, **kwargs
        )
        return resp.status, await resp.text()

    async def get_json(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        resp = await self.client.get(path, **kwargs)
        assert resp.content_type == "application/json", await resp.text()
        return resp.status, await resp.json()


def encode(series: SeriesData, metadata: Sequence[SeriesMetadata] = ()) -> bytes:
    """A snappy-compressed remote-write body holding these (labels, timestamps, values)."""
    return encode_write_request(batch_of(series, metadata))


def batch_of(series: SeriesData, metadata: Sequence[SeriesMetadata] = ()) -> WriteBatch:
    return WriteBatch.from_series([(tuple(lbl), ts, vals) for lbl, ts, vals in series], metadata)


def clusters(*names: str) -> tuple[PushCluster, ...]:
    """Push clusters named `names`, each with token `token-<name>`."""
    return tuple(PushCluster(name=n, token=f"token-{n}") for n in names)


async def store(storage: Storage, series: SeriesData) -> None:
    """Write `series` through the storage's own appender (as an open, unauthenticated writer)."""
    appender = storage.appender()
    result = appender.append(batch_of(series))
    assert not result.rejected, result.rejected
    await appender.commit()


async def stored_samples(storage: Storage, labels: LabelPairs) -> list[tuple[int, float]]:
    """(timestamp, value) of the series with exactly these labels, read through a Querier."""
    want = Labels.from_pairs(labels)
    async with storage.querier(*ALL_TIME) as querier:
        found = await querier.select([Matcher.eq(n, v) for n, v in labels], *ALL_TIME)
    out: list[tuple[int, float]] = []
    for series in found.series:
        if series.labels == want:
            out += zip(series.timestamps.tolist(), series.values.tolist(), strict=True)
    return out


MakeService = Callable[..., Awaitable[Service]]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The data directory every service of a test uses (so a second one is a restart)."""
    return tmp_path / "data"


@pytest.fixture
def make_service(aiohttp_client: Any, data_dir: Path) -> MakeService:
    """Start the app with `config` (default: embedded) on the real Storage in `data_dir`."""

    async def make(config: Config | None = None, *, wait: bool = True) -> Service:
        """`wait=False` returns while storage may still be replaying its WAL."""
        config = (config or Config()).with_overrides(data_dir=str(data_dir))
        app = build_app(config)
        client = await aiohttp_client(app)
        if wait:
            await app[BACKEND].wait_open()
        return Service(client, app, data_dir)

    return make


@dataclass
class HeldWAL:
    """A data directory whose WAL reaches the real replay only when `release()` is called.

    The last WAL segment is replaced by a FIFO holding the same bytes. The test
    keeps the FIFO open for reading and writing, so the storage's replay opens
    it at once and then blocks reading it, exactly as on a disk slow to deliver
    the WAL: the service is up and the real replay is under way, with no timing
    involved. `release()` writes the segment's bytes and closes the FIFO.
    """

    path: Path
    content: bytes
    fd: int = field(default=-1)

    def hold(self) -> None:
        self.path.unlink()
        os.mkfifo(self.path)
        # O_RDWR never blocks on a FIFO, and keeps the write end open until release().
        self.fd = os.open(self.path, os.O_RDWR)

    async def release(self) -> None:
        if self.fd < 0:
            return
        fd, self.fd = self.fd, -1
        await asyncio.to_thread(_write_and_close, fd, self.content)


def _write_and_close(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


HoldWAL = Callable[[SeriesData], Awaitable[HeldWAL]]


@pytest.fixture
async def held_wal(data_dir: Path) -> AsyncIterator[HoldWAL]:
    """`await held_wal(series)`: a data dir whose WAL holds `series`, its replay held back."""
    held: list[HeldWAL] = []

    async def make(series: SeriesData) -> HeldWAL:
        storage = await Storage.open(data_dir)
        try:
            await store(storage, series)
        finally:
            await storage.close()
        wal_dir = data_dir / "wal"
        path = segment_path(wal_dir, list_segments(wal_dir)[-1])
        wal = HeldWAL(path, path.read_bytes())
        assert wal.content, "the segment holds the records written above"
        wal.hold()
        held.append(wal)
        return wal

    yield make
    for wal in held:
        await wal.release()  # never leave the replay's reader thread blocked
