"""The composition root: `build_app(config)` is the only place building concrete classes.

Components start in `cleanup_ctx` order and stop in reverse, each only if it
started (aiohttp runs the teardown of every context that got past its
`yield`). Storage opens in the background: the server answers `/-/healthy`
and a 503 on `/-/ready` (and on data endpoints) while the WAL replays, as
Prometheus does, instead of refusing connections.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from aggregator.api.access import SECURITY, add_configured_headers, require_reader
from aggregator.api.context import (
    AUTH,
    BACKEND,
    BUILD,
    CONFIG,
    GATE,
    INGEST_LIMITS,
    LABELS_JSON,
    METRICS,
    QUERY_ENGINE,
    RELOAD,
    RULES,
    Backend,
    BackendSlot,
    BuildInfo,
)
from aggregator.api.edge import EDGE
from aggregator.api.federation import CLUSTERS
from aggregator.api.promjson import LabelsJSONCache
from aggregator.api.v1 import add_routes, observe
from aggregator.api.write import SYMBOL_IDS
from aggregator.auth import Authenticator
from aggregator.config import EMBEDDED_DEFAULT, Config, load_config
from aggregator.errors import ConfigError
from aggregator.federation.edge import EdgeHub
from aggregator.federation.fleet import Fleet
from aggregator.federation.metrics import FederationMetrics
from aggregator.federation.registry import ClusterRegistry
from aggregator.querygate import MemoryPool, QueryGate
from aggregator.ratelimit import IngestLimiter
from aggregator.security import WebSecurity
from aggregator.selfmetrics import SelfMetrics
from aggregator.server import track_requests
from aggregator.version import version
from alerting.loader import RulesLoadError
from alerting.service import Ruler
from alerting.settings import AlertingSettings
from promql.engine import Engine
from remote_write.symbols import SymbolIds
from storage.db import Storage
from storage.options import StorageOptions

__all__ = [
    "AUTH",
    "BACKEND",
    "BUILD",
    "CLUSTERS",
    "CONFIG",
    "GATE",
    "LABELS_JSON",
    "METRICS",
    "QUERY_ENGINE",
    "RELOAD",
    "RULES",
    "SECURITY",
    "StorageOpener",
    "build_app",
    "version",
]

log = logging.getLogger(__name__)

FORM_MAX_BYTES = 16 << 20
"""Largest form-encoded request (long `match[]` lists); remote write has its own limit."""

StorageOpener = Callable[[Path, StorageOptions], Awaitable[Backend]]
"""Opens storage in a data directory (replaying its WAL) and returns it."""


def build_app(
    config: Config,
    *,
    open_storage: StorageOpener | None = None,
    security: WebSecurity | None = None,
) -> web.Application:
    """The service as an aiohttp application; `open_storage` replaces the real storage in tests.

    `security` is the loaded web config (built from `config.web_config_file` when
    not given; a bad file raises ConfigError).
    """
    metrics = SelfMetrics(version=version())
    slot = BackendSlot()
    metrics.bind_storage(slot.active_series, lambda: slot.ready)
    metrics.bind_tiering(slot.tiering_metrics)

    app = web.Application(
        middlewares=[track_requests, observe, require_reader], client_max_size=FORM_MAX_BYTES
    )
    app[CONFIG] = config
    app[SECURITY] = security or WebSecurity(config.web_config_file, config.clusters)
    app.on_response_prepare.append(add_configured_headers)
    app[METRICS] = metrics
    app[AUTH] = Authenticator(config.clusters)
    app[INGEST_LIMITS] = IngestLimiter(config.limits, config.clusters)
    app[SYMBOL_IDS] = SymbolIds()
    app[BACKEND] = slot
    app[BUILD] = BuildInfo(version=version(), runtime_version=f"python{platform.python_version()}")
    q = config.query
    # Evaluations get their own threads: the loop's default pool stays free for
    # storage's background work, and at most max_concurrency reads evaluate at once.
    evaluators = ThreadPoolExecutor(q.max_concurrency, thread_name_prefix="query")
    app[QUERY_ENGINE] = Engine(
        lookback_ms=q.lookback_delta_ms,
        timeout_s=q.timeout_ms / 1000,
        max_samples=q.max_samples,
        delayed_name_removal=q.delayed_name_removal,
        executor=evaluators,
    )
    gate = app[GATE] = QueryGate(
        q.max_concurrency, q.max_queued, MemoryPool(q.max_memory, q.query_memory_bound)
    )
    metrics.bind_reads(lambda: gate.running, lambda: gate.queued, lambda: gate.memory.reserved)
    app.on_cleanup.append(lambda _: _shutdown_pool(evaluators))
    app[LABELS_JSON] = LabelsJSONCache()
    app[CLUSTERS] = ClusterRegistry(config, FederationMetrics(metrics.registry))
    app[EDGE] = app[CLUSTERS].edge = EdgeHub(config.edge, app[CLUSTERS].metrics)
    ruler = Ruler(
        engine=app[QUERY_ENGINE],
        registry=metrics.registry,
        rules=config.rules,
        alerting=alerting_settings(config),
        rules_dir=config.data_dir / "rules",
    )
    app[RULES] = ruler
    app[EDGE].notify = ruler.hub.send

    async def reload() -> None:
        # The web-config file is watched too; a reload re-reads it at once.
        app[SECURITY].reload()
        await reload_config(config, ruler)
        await app[EDGE].reload()

    app[RELOAD] = reload
    app.cleanup_ctx.append(_security_component)
    app.cleanup_ctx.append(_storage_component(open_storage or _open_storage))
    app.cleanup_ctx.append(_federation_component)
    app.cleanup_ctx.append(_edge_component)
    app.cleanup_ctx.append(_ruler_component(ruler))
    add_routes(app)
    return app


def alerting_settings(config: Config) -> AlertingSettings:
    """The `alerting:` settings, with the external URL defaulting to this server's address."""
    settings = config.alerting
    if settings.external_url:
        return settings
    host = config.listen.host or socket.gethostname()
    host = f"[{host}]" if ":" in host else host
    return replace(settings, external_url=f"http://{host}:{config.listen.port}")


async def reload_config(config: Config, ruler: Ruler) -> None:
    """Re-read the config file's `rules` and `alerting` sections and every rule file.

    All or nothing: on any problem the running rules and notifiers stay as they
    are, and the problem is raised (and logged, and counted in
    `aggregator_config_last_reload_successful`). Other sections need a restart.
    """
    try:
        fresh = load_config(config.source) if config.source != EMBEDDED_DEFAULT else config
    except ConfigError as exc:
        ruler.metrics.reload_success.set(0)
        log.error("config reload failed, keeping the running rules", extra={"err": str(exc)})
        raise
    fresh = replace(fresh, listen=config.listen, data_dir=config.data_dir)
    await ruler.reload(fresh.rules, alerting_settings(fresh))
    log.info("config reloaded", extra={"config": config.source, "groups": len(ruler.groups())})


def _ruler_component(ruler: Ruler) -> Callable[[web.Application], AsyncIterator[None]]:
    async def rules(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        try:
            specs = ruler.load()
        except RulesLoadError as exc:
            raise ConfigError(config.source, "rules.files", "; ".join(exc.problems)) from None
        log.info("rules checked", extra={"groups": len(specs)})
        task = asyncio.create_task(_start_rules(app, ruler))
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await ruler.stop()

    return rules


async def _start_rules(app: web.Application, ruler: Ruler) -> None:
    """Run the rules once storage is open: they read the whole fleet and write storage."""
    try:
        backend = await app[BACKEND].wait_open()
    except Exception:  # storage failed to open: the service exits; nothing to run
        return
    fleet = Fleet(backend, app[CLUSTERS], app[CONFIG].query)
    await ruler.start(fleet, backend, backend.object_store)


async def _shutdown_pool(pool: ThreadPoolExecutor) -> None:
    pool.shutdown(wait=False, cancel_futures=True)


async def _open_storage(data_dir: Path, options: StorageOptions) -> Backend:
    return await Storage.open(data_dir, options)


def _storage_component(
    opener: StorageOpener,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def storage(app: web.Application) -> AsyncIterator[None]:
        config = app[CONFIG]
        slot = app[BACKEND]
        options = replace(
            config.storage_options(on_wal_fsync=app[METRICS].observe_wal_fsync),
            symbol_ids=app[SYMBOL_IDS],  # replayed 2.0 records key series as live ones do
        )
        # Fail the start (not a background task) if the directory cannot exist.
        config.data_dir.mkdir(parents=True, exist_ok=True)
        task = asyncio.create_task(_open_into(slot, opener, config.data_dir, options))
        try:
            yield
        finally:
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            backend = slot.take()
            if backend is not None:
                await backend.close()
                log.info("storage closed", extra={"data_dir": str(config.data_dir)})

    return storage


async def _open_into(
    slot: BackendSlot, opener: StorageOpener, data_dir: Path, options: StorageOptions
) -> None:
    started = time.monotonic()
    log.info("opening storage", extra={"data_dir": str(data_dir)})
    try:
        backend = await opener(data_dir, options)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.error("storage failed to open", exc_info=exc, extra={"data_dir": str(data_dir)})
        slot.fail(exc)
        return
    slot.set(backend)
    log.info(
        "storage open",
        extra={"data_dir": str(data_dir), "duration_s": round(time.monotonic() - started, 3)},
    )


async def _security_component(app: web.Application) -> AsyncIterator[None]:
    """Reload the web config (users, TLS files) when its files change."""
    task = asyncio.create_task(app[SECURITY].watch(), name="web-config-watch")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _edge_component(app: web.Application) -> AsyncIterator[None]:
    """Edge agents' rules: checked at start (a bad file stops it), then watched."""
    hub = app[EDGE]
    groups = hub.load()
    if app[CONFIG].edge.rule_files:
        log.info("edge rules loaded", extra={"groups": groups})
    task = asyncio.create_task(hub.watch(), name="edge-rules-watch")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _federation_component(app: web.Application) -> AsyncIterator[None]:
    """Sessions to the pull clusters and their health checks (after storage, before the API)."""
    registry = app[CLUSTERS]
    await registry.start()
    try:
        yield
    finally:
        await registry.close()
