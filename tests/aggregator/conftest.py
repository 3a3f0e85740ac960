"""Fixtures: the app under test behind a real HTTP client (pytest-aiohttp)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from aggregator.app import BACKEND, QUERY_ENGINE, build_app
from aggregator.config import Config, PushCluster
from remote_write.batch import SeriesMetadata, WriteBatch
from remote_write.codec import encode_write_request
from storage.db import Storage
from storage.options import StorageOptions
from tests.aggregator.fakes import FakeStorage

WRITE_HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


@dataclass
class Service:
    client: TestClient[web.Request, web.Application]
    storage: Any
    app: web.Application
    options: list[StorageOptions]
    """What build_app handed to the storage opener."""

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


def encode(
    series: Sequence[tuple[Sequence[tuple[str, str]], Sequence[int], Sequence[float]]],
    metadata: Sequence[SeriesMetadata] = (),
) -> bytes:
    """A snappy-compressed remote-write body holding these (labels, timestamps, values)."""
    return encode_write_request(
        WriteBatch.from_series([(tuple(lbl), ts, vals) for lbl, ts, vals in series], metadata)
    )


def clusters(*names: str) -> tuple[PushCluster, ...]:
    """Push clusters named `names`, each with token `token-<name>`."""
    return tuple(PushCluster(name=n, token=f"token-{n}") for n in names)


MakeService = Callable[..., Awaitable[Service]]


@pytest.fixture
def make_service(aiohttp_client: Any, tmp_path: Path) -> MakeService:
    """Start the app with `config` (default: embedded) over a FakeStorage (or `storage`)."""

    async def make(
        config: Config | None = None,
        storage: Any = None,
        *,
        real: bool = False,
        wait: bool = True,
        engine: Any = None,
    ) -> Service:
        """`real=True` runs the real Storage (head + WAL) in the test's temp dir."""
        config = (config or Config()).with_overrides(data_dir=str(tmp_path / "data"))
        store = storage if storage is not None else FakeStorage()
        seen: list[StorageOptions] = []

        async def opener(data_dir: Path, options: StorageOptions) -> Any:
            seen.append(options)
            if real:
                return await Storage.open(data_dir, options)
            if isinstance(store, FakeStorage):
                store.limits = options.series_limits
            return store

        app = build_app(config, open_storage=opener)
        if engine is not None:
            app[QUERY_ENGINE] = engine
        client = await aiohttp_client(app)
        backend = await app[BACKEND].wait_open() if wait else None
        return Service(client, backend if real else store, app, seen)

    return make
