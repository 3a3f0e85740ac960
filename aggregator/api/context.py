"""What handlers depend on: small consumer-side Protocols and the typed app keys.

Handlers never see concrete classes; `aggregator.app.build_app` puts the
concrete objects under these keys. Storage opens in the background (it
replays its WAL first), so handlers reach it through a `BackendSlot` whose
`get()` raises `NotReady` (HTTP 503) until it is open and ready, the way
Prometheus answers 503 while it replays.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from aggregator.api.promjson import LabelsJSONCache
from aggregator.auth import Authenticator
from aggregator.config import Config
from aggregator.errors import NotReady
from aggregator.querygate import QueryGate
from aggregator.ratelimit import IngestLimiter
from aggregator.selfmetrics import SelfMetrics
from alerting.rulefile import GroupSpec
from alerting.status import AlertStatus, GroupView
from promql.engine import QueryOpts, Result
from storage.head.exemplars import SeriesExemplars
from storage.interfaces import Appender, Querier, Queryable
from storage.labels import Labels, Matcher
from storage.objstore.base import ObjectStore
from storage.tiering.querier import ReadOptions
from storage.tiering.service import FlushResult
from storage.tiering.status import TieringMetrics


class MetadataSource(Protocol):
    """Metric metadata as remote write delivered it (Prometheus `/api/v1/metadata` shape)."""

    def metadata(
        self, metric: str | None = None, limit: int | None = None
    ) -> dict[str, list[dict[str, str]]]:
        """Metric family name -> distinct {type, help, unit} entries, at most `limit` families."""
        ...


class QueryEngine(Protocol):
    """What the query endpoints need from the PromQL engine (`promql.engine.Engine`)."""

    async def instant_query(
        self, queryable: Queryable, query: str, ts_ms: int, *, opts: QueryOpts | None = None
    ) -> Result:
        """Evaluate at one time: Vector, Scalar, String, or Matrix for a range selector."""
        ...

    async def range_query(
        self,
        queryable: Queryable,
        query: str,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        *,
        opts: QueryOpts | None = None,
    ) -> Result:
        """Evaluate at every step of [start_ms, end_ms]: a Matrix."""
        ...


class RulesSource(Protocol):
    """What the rules, alerts and ruler-config endpoints need (`alerting.service.Ruler`)."""

    def groups(self) -> list[GroupView]:
        """Snapshots of the running groups, sorted by file then name."""
        ...

    def alerts(self) -> list[AlertStatus]:
        """Every pending and firing alert."""
        ...

    def namespaces(self) -> dict[str, list[GroupSpec]]:
        """Groups managed through the ruler API, by namespace."""
        ...

    def namespace_groups(self, namespace: str) -> list[GroupSpec] | None:
        """One namespace's groups (None: no such namespace)."""
        ...

    async def set_group(self, namespace: str, group: GroupSpec) -> None:
        """Store and run a group; raises `RulesLoadError` (and keeps the old) if rules fail."""
        ...

    async def delete_group(self, namespace: str, name: str) -> bool: ...

    async def delete_namespace(self, namespace: str) -> bool: ...

    async def wait_started(self) -> None:
        """Return once the rules run (storage open, namespaces reconciled): edits wait for it."""
        ...


class Reload(Protocol):
    """Re-reads the rules and alerting config; raises, keeping the old, if it cannot."""

    async def __call__(self) -> None: ...


class Backend(MetadataSource, Protocol):
    """The storage the API serves: appendable, queryable, metadata, and its state."""

    def appender(self, *, cluster: str | None = None) -> Appender: ...

    def querier(self, start_ms: int, end_ms: int) -> AbstractAsyncContextManager[Querier]: ...

    def active_series_by_cluster(self) -> dict[str, int]: ...

    def exemplars(
        self, matcher_sets: Sequence[Sequence[Matcher]], start_ms: int, end_ms: int
    ) -> list[tuple[Labels, SeriesExemplars]]:
        """Exemplars of the series matching any matcher set, sorted by series labels."""
        ...

    def scoped(self, read: ReadOptions) -> Queryable:
        """The same data, with block reads following one query's options (budget, resolution)."""
        ...

    async def flush(self) -> FlushResult:
        """Cut everything in the head into blocks and upload them (`/api/v1/admin/flush`)."""
        ...

    def blocks_status(self) -> dict[str, Any]:
        """Head, blocks and upload backlog (`/api/v1/status/blocks`)."""
        ...

    def tiering_metrics(self) -> TieringMetrics: ...

    @property
    def object_store(self) -> ObjectStore:
        """Where blocks live; the ruler keeps its API-managed namespaces there too."""
        ...

    @property
    def ready(self) -> bool: ...

    async def close(self) -> None: ...


class BackendSlot:
    """Holds the storage once it is open; `get()` raises NotReady until then."""

    def __init__(self) -> None:
        self._backend: Backend | None = None
        self.failure: BaseException | None = None
        self._settled: asyncio.Event | None = None

    def _event(self) -> asyncio.Event:
        if self._settled is None:
            self._settled = asyncio.Event()
        return self._settled

    def set(self, backend: Backend) -> None:
        self._backend = backend
        self._event().set()

    def fail(self, exc: BaseException) -> None:
        self.failure = exc
        self._event().set()

    def take(self) -> Backend | None:
        """Remove and return the backend (for closing); handlers get NotReady afterwards."""
        backend, self._backend = self._backend, None
        return backend

    @property
    def ready(self) -> bool:
        return self._backend is not None and self._backend.ready

    def get(self) -> Backend:
        backend = self._backend
        if backend is None:
            if self.failure is not None:
                raise NotReady(f"storage failed to open: {self.failure}")
            raise NotReady("storage is starting: replaying the write-ahead log")
        if not backend.ready:
            raise NotReady("storage is starting: replaying the write-ahead log")
        return backend

    def active_series(self) -> dict[str, int]:
        """Active series per cluster, {} before storage is open (for self-metrics)."""
        backend = self._backend
        return backend.active_series_by_cluster() if backend is not None else {}

    def tiering_metrics(self) -> TieringMetrics | None:
        """Backlog and object-store totals, None before storage is open (for self-metrics)."""
        backend = self._backend
        return backend.tiering_metrics() if backend is not None else None

    async def wait_open(self) -> Backend:
        """Wait until storage is open; raise its failure if it could not open."""
        await self._event().wait()
        if self.failure is not None:
            raise self.failure
        assert self._backend is not None
        return self._backend


@dataclass(frozen=True, slots=True)
class BuildInfo:
    """What `/api/v1/status/buildinfo` reports."""

    version: str
    revision: str = ""
    branch: str = ""
    build_user: str = ""
    build_date: str = ""
    runtime_version: str = ""


CONFIG = web.AppKey("config", Config)
BACKEND = web.AppKey("backend", BackendSlot)
AUTH = web.AppKey("auth", Authenticator)
METRICS = web.AppKey("metrics", SelfMetrics)
BUILD = web.AppKey("build", BuildInfo)
QUERY_ENGINE = web.AppKey("query_engine", QueryEngine)
LABELS_JSON = web.AppKey("labels_json", LabelsJSONCache)
"""Label sets already encoded for query responses (`promjson.LabelsJSONCache`)."""
RULES = web.AppKey("rules", RulesSource)
"""Global rules: running groups, alerts, ruler-API namespaces."""
RELOAD = web.AppKey("reload", Reload)
"""Re-read the config's `rules` / `alerting` sections and the rule files (SIGHUP, /-/reload)."""
INGEST_LIMITS = web.AppKey("ingest_limits", IngestLimiter)
"""Per-cluster ingest rate limits (`aggregator.ratelimit`)."""
GATE = web.AppKey("gate", QueryGate)
"""Admission of reads: concurrency, queue and memory (`aggregator.querygate`)."""
