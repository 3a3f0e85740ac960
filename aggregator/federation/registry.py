"""The fleet registry: every member cluster, push or pull, with its health and freshness.

Push clusters are known from their writes: the write handler reports each
accepted batch (`observe_push`), which gives the newest sample time and the
ingest rate. Pull clusters are health-checked in the background: `/-/ready`
decides health; the member's own `/metrics` gives its head series and
samples per second, and `/api/v1/status/buildinfo` and `/api/v1/status/config`
its version and external labels (which pushdown needs). Queries report their
failures here too, so a member that stops answering is marked unhealthy at
once, not only at the next check.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson
import yaml

from aggregator.clusterconfig import PullCluster
from aggregator.config import Config
from aggregator.federation.client import open_session
from aggregator.federation.metrics import FederationMetrics
from aggregator.federation.remote_read import RemoteCluster
from storage.labels import Labels

log = logging.getLogger(__name__)

RATE_WINDOW_S = 60.0
_HEAD_SERIES = re.compile(rb"^prometheus_tsdb_head_series(?:\{[^}]*\})? (\S+)", re.M)
_APPENDED = re.compile(rb"^prometheus_tsdb_head_samples_appended_total(?:\{[^}]*\})? (\S+)", re.M)

Clock = Callable[[], float]


class EdgeStatusSource(Protocol):
    """The edge agents' side of the registry (`aggregator.federation.edge.EdgeHub`)."""

    def queriers(self, start_ms: int, end_ms: int) -> Sequence[RemoteCluster]: ...

    def status(self, cluster: str) -> dict[str, Any] | None: ...


@dataclass(slots=True)
class PushState:
    """What the writes of one push cluster tell: its newest sample and recent rate."""

    name: str
    last_sample_ms: int | None = None
    recent: deque[tuple[float, int]] = field(default_factory=deque)

    def samples_per_second(self, now: float) -> float:
        while self.recent and self.recent[0][0] < now - RATE_WINDOW_S:
            self.recent.popleft()
        return sum(n for _, n in self.recent) / RATE_WINDOW_S


@dataclass(slots=True)
class PullState:
    """One pull cluster endpoint: its session, last health check and what it told."""

    cluster: PullCluster
    session: aiohttp.ClientSession | None = None
    healthy: bool | None = None
    last_success: float | None = None
    last_failure: float | None = None
    last_error: str | None = None
    active_series: int | None = None
    samples_per_second: float | None = None
    version: str | None = None
    external_labels: Labels | None = None
    appended: tuple[float, float] | None = None
    labels_cache: dict[Hashable, Labels] = field(default_factory=dict)
    members: dict[str, str | None] = field(default_factory=dict)
    """For a `keep_cluster_label` endpoint that is this service (a scale-out shard): the
    clusters it serves, each with why it is stale there (None: fresh), from its
    `/api/v1/clusters` at the last good health check."""


class ClusterRegistry:
    """All member clusters; hands out pull-cluster Queriers and answers `/api/v1/clusters`."""

    def __init__(
        self, config: Config, metrics: FederationMetrics | None = None, clock: Clock = time.time
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self.started = clock()
        self.push = {c.name: PushState(c.name) for c in config.clusters}
        self.pulls = [PullState(c) for c in config.pull_clusters]
        self._tasks: list[asyncio.Task[None]] = []
        self.edge: EdgeStatusSource | None = None
        """Edge agents (set by the app): their tunnels are queried like pull clusters."""

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Open a session per pull cluster and start its health checks."""
        for state in self.pulls:
            state.session = open_session(state.cluster)
            self._tasks.append(
                asyncio.create_task(self._health_loop(state), name=f"health-{state.cluster.name}")
            )

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for state in self.pulls:
            if state.session is not None:
                await state.session.close()
                state.session = None

    # -- push side ---------------------------------------------------------------

    def observe_push(self, cluster: str | None, samples: int, max_ts: int | None) -> None:
        """A write of `cluster` was accepted: `samples` samples, the newest at `max_ts`."""
        if cluster is None:
            return
        state = self.push.get(cluster)
        if state is None:
            state = self.push[cluster] = PushState(cluster)
        if max_ts is not None and (state.last_sample_ms is None or max_ts > state.last_sample_ms):
            state.last_sample_ms = max_ts
        now = self.clock()
        state.recent.append((now, samples))
        state.samples_per_second(now)
        if self.metrics is not None and state.last_sample_ms is not None:
            self.metrics.last_success.labels(cluster, "push").set(state.last_sample_ms / 1000)

    def push_staleness(self, name: str) -> str | None:
        """Why push cluster `name` is stale (None when it is fresh)."""
        state = self.push.get(name)
        if state is None:
            return None
        now = self.clock()
        limit = self.config.query.stale_after_ms / 1000
        if state.last_sample_ms is None:
            if now - self.started <= limit:
                return None
            return (
                f'cluster "{name}" is stale: no sample received since the service started '
                f"{_ago(now - self.started)} ago (query.stale_after is {_ago(limit)})"
            )
        age = now - state.last_sample_ms / 1000
        if age <= limit:
            return None
        return (
            f'cluster "{name}" is stale: its newest sample is {_ago(age)} old '
            f"(query.stale_after is {_ago(limit)})"
        )

    # -- pull side ---------------------------------------------------------------

    def pull_queriers(
        self, start_ms: int, end_ms: int, horizons: Mapping[str, int] | None = None
    ) -> list[RemoteCluster]:
        """A RemoteCluster per pull endpoint for one query (sharing the pooled sessions).

        `horizons` (object-store prefix -> newest sample time this query reads there
        directly): an endpoint whose `object_store_prefix` is among them is told so, and
        answers from its own blocks only later samples (from its head, all)."""
        out = []
        for state in self.pulls:
            if state.session is None:
                continue
            prefix = state.cluster.object_store_prefix
            after = horizons.get(prefix) if horizons and prefix else None
            out.append(
                RemoteCluster(
                    state.cluster,
                    state.session,
                    self.metrics,
                    start_ms,
                    end_ms,
                    on_result=self._query_hook(state),
                    labels_cache=state.labels_cache,
                    after_ms=after,
                )
            )
        return out

    def edge_queriers(self, start_ms: int, end_ms: int) -> Sequence[RemoteCluster]:
        """A Querier per open edge tunnel (reads answered from the agent's window)."""
        return self.edge.queriers(start_ms, end_ms) if self.edge is not None else []

    def _query_hook(self, state: PullState) -> Callable[[str | None], None]:
        def hook(error: str | None) -> None:
            if error is not None:
                self._failed(state, error)

        return hook

    def pull_staleness(self, state: PullState) -> str | None:
        """Why a pull endpoint is suspect: it failed its last health check (None if not)."""
        if state.healthy is not False:
            return None
        now = self.clock()
        since = (
            f"last success {_ago(now - state.last_success)} ago"
            if state.last_success is not None
            else "never reached since the service started"
        )
        failed = _ago(now - (state.last_failure or now))
        return (
            f'cluster "{state.cluster.name}" failed its last health check {failed} ago '
            f"({state.last_error}); {since}"
        )

    async def _health_loop(self, state: PullState) -> None:
        interval = state.cluster.health_check_interval_ms / 1000
        while True:
            try:
                await self.check(state)
            except Exception:  # a bug here must not stop the checks
                log.exception("health check crashed", extra={"cluster": state.cluster.name})
            await asyncio.sleep(interval)

    async def check(self, state: PullState) -> None:
        """One health check of a pull endpoint (also callable in tests)."""
        session = state.session
        if session is None:
            return
        name = state.cluster.name
        started = time.monotonic()
        try:
            async with session.get("-/ready") as resp:
                await resp.read()
                if resp.status != 200:
                    raise _CheckFailed(f"/-/ready answered HTTP {resp.status}")
            await self._details(state, session)
        except _CheckFailed as exc:
            self._failed(state, str(exc))
        except TimeoutError:
            self._failed(state, f"timed out after {state.cluster.timeout_ms / 1000:g}s")
        except aiohttp.ClientError as exc:
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, aiohttp.ClientConnectorError):
                reason = f"cannot connect: {exc.os_error.strerror or exc.os_error}"
            self._failed(state, reason)
        else:
            state.healthy = True
            state.last_success = self.clock()
            state.last_error = None
            if self.metrics is not None:
                self.metrics.up.labels(name, "pull").set(1)
                self.metrics.last_success.labels(name, "pull").set(state.last_success)
                self.metrics.requests.labels(name, "health", "success").inc()
        if self.metrics is not None:
            self.metrics.duration.labels(name, "health").observe(time.monotonic() - started)

    async def _details(self, state: PullState, session: aiohttp.ClientSession) -> None:
        """Series, ingest rate, version and external labels, where the member serves them;
        and the clusters behind a `keep_cluster_label` endpoint that is a shard of ours."""
        if state.cluster.keep_cluster_label:
            with contextlib.suppress(aiohttp.ClientError, ValueError, KeyError, TypeError):
                listed = await _json(session, "api/v1/clusters")
                state.members = {
                    str(c["name"]): None if c.get("healthy") else str(c.get("last_error") or "")
                    for c in listed["data"]
                }
        with contextlib.suppress(aiohttp.ClientError, ValueError):
            async with session.get("metrics") as resp:
                if resp.status == 200:
                    text = await resp.read()
                    if text[:2] == b"\x1f\x8b":
                        text = gzip.decompress(text)
                    self._read_metrics(state, text)
        if state.version is None or state.external_labels is None:
            with contextlib.suppress(aiohttp.ClientError, ValueError, yaml.YAMLError, KeyError):
                info = await _json(session, "api/v1/status/buildinfo")
                state.version = str(info["data"]["version"])
                conf = await _json(session, "api/v1/status/config")
                parsed = yaml.safe_load(conf["data"]["yaml"]) or {}
                ext = (parsed.get("global") or {}).get("external_labels") or {}
                state.external_labels = Labels.from_dict({str(k): str(v) for k, v in ext.items()})

    def _read_metrics(self, state: PullState, text: bytes) -> None:
        series = [float(m) for m in _HEAD_SERIES.findall(text)]
        appended = [float(m) for m in _APPENDED.findall(text)]
        if series:
            state.active_series = int(sum(series))
        if appended:
            total, now = sum(appended), self.clock()
            if state.appended is not None and now > state.appended[0]:
                rate = (total - state.appended[1]) / (now - state.appended[0])
                state.samples_per_second = max(rate, 0.0)
            state.appended = (now, total)

    def mark_failed(self, state: PullState, reason: str) -> None:
        """A request to a pull endpoint failed: it is unhealthy until its next good check."""
        self._failed(state, reason)

    def _failed(self, state: PullState, reason: str) -> None:
        name = state.cluster.name
        if state.healthy is not False:
            log.warning("pull cluster unhealthy", extra={"cluster": name, "reason": reason})
        state.healthy = False
        state.last_failure = self.clock()
        state.last_error = reason
        if self.metrics is not None:
            self.metrics.up.labels(name, "pull").set(0)
            self.metrics.requests.labels(name, "health", "error").inc()

    # -- status ------------------------------------------------------------------

    def clusters(self, active_series: dict[str, int]) -> list[dict[str, Any]]:
        """The `/api/v1/clusters` data: every cluster, push then pull, by name."""
        now = self.clock()
        out: list[dict[str, Any]] = []
        names = set(self.push) | {n for n in active_series if n}
        pull_names = {s.cluster.name for s in self.pulls}
        for name in sorted(names - pull_names):
            state = self.push.get(name) or PushState(name)
            stale = self.push_staleness(name) if name in self.push else None
            out.append(
                {
                    "name": name,
                    "mode": "push",
                    "healthy": stale is None,
                    "last_sample_time": _iso(state.last_sample_ms / 1000)
                    if state.last_sample_ms is not None
                    else None,
                    "last_error": stale,
                    "active_series": active_series.get(name, 0),
                    "samples_per_second": round(state.samples_per_second(now), 3),
                }
            )
            edge = self.edge.status(name) if self.edge is not None else None
            if edge is not None:
                out[-1]["edge"] = edge
        for pull in sorted(self.pulls, key=lambda s: (s.cluster.name, s.cluster.url)):
            rate = pull.samples_per_second
            out.append(
                {
                    "name": pull.cluster.name,
                    "mode": "pull",
                    "url": pull.cluster.url,
                    "healthy": bool(pull.healthy),
                    "last_success_time": _iso(pull.last_success)
                    if pull.last_success is not None
                    else None,
                    "last_error": pull.last_error,
                    "active_series": pull.active_series,
                    "samples_per_second": None if rate is None else round(rate, 3),
                }
            )
        return out

    def freshness_warnings(self, admitted: Callable[[str], bool]) -> Iterable[str]:
        """Warnings for every stale cluster whose name `admitted` (the query touches it)."""
        for name in self.push:
            if admitted(name) and (why := self.push_staleness(name)):
                yield why
        for state in self.pulls:
            if admitted(state.cluster.name) and (why := self.pull_staleness(state)):
                yield why
            for member, stale in state.members.items():
                if not admitted(member):
                    continue
                if state.healthy is False:
                    yield (
                        f'cluster "{member}" is unreachable: it is served by '
                        f'"{state.cluster.name}", which failed its last health check '
                        f"({state.last_error})"
                    )
                elif stale:
                    yield f'{stale} (on "{state.cluster.name}")'


class _CheckFailed(Exception):
    pass


async def _json(session: aiohttp.ClientSession, path: str) -> Any:
    async with session.get(path) as resp:
        if resp.status != 200:
            raise ValueError(f"HTTP {resp.status}")
        body = await resp.read()
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    return orjson.loads(body)


def _ago(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds}s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{s}s" if s else f"{minutes}m"
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m}m" if m else f"{hours}h"


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"
