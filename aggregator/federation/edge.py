"""The host's side of edge agents: their rules, what they report, sequences, and tunnels.

- Rules: `edge.rule_files` are read at start (a bad file fails the start,
  naming it) and re-read when a file changes or on `/-/reload`; a bad file
  then keeps the rules that ran and is logged. Each cluster's groups have an
  ETag (a hash of what is served); `wait_change` is the long poll.
- Status: what each agent last reported (the rule version it runs, what it
  could not load, rule health), shown under the cluster in `/api/v1/clusters`.
- Sequences: every record an agent sends carries its sequence number; one at
  or below the last accepted is a retry of something already stored, so it
  is acknowledged and not applied again (counted as `duplicates`).
- Tunnels: an agent's WebSocket, registered by cluster. `queriers()` gives a
  Querier per open tunnel for the fleet's merge, like a pull cluster's, that
  sends remote-read requests down the tunnel and nothing else.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp
import orjson
from aiohttp import web

from aggregator.clusterconfig import PullCluster
from aggregator.config import EdgeConfig
from aggregator.edge.ruleset import EdgeRulesError, parse_file_groups
from aggregator.edge.tunnel import ERROR, HEADER
from aggregator.errors import ConfigError
from aggregator.federation.metrics import FederationMetrics
from aggregator.federation.remote_read import RemoteCluster
from alerting.loader import expand_globs
from alerting.types import Alert

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 1.0


class Tunnel:
    """One agent's open WebSocket: requests out, answers matched back by id."""

    def __init__(self, cluster: str, ws: web.WebSocketResponse) -> None:
        self.cluster = cluster
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[bytes]] = {}
        self.opened = time.time()
        self.requests = 0

    async def request(self, body: bytes, timeout_s: float) -> bytes:
        rid = next(self._ids)
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self.requests += 1
        try:
            await self.ws.send_bytes(HEADER.pack(rid) + body)
            return await asyncio.wait_for(fut, timeout_s)
        finally:
            self._pending.pop(rid, None)

    def answer(self, data: bytes) -> None:
        if len(data) < HEADER.size + 1:
            return
        (rid,) = HEADER.unpack_from(data)
        fut = self._pending.get(rid)
        if fut is not None and not fut.done():
            fut.set_result(data[HEADER.size :])

    def close(self) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("the tunnel closed"))


@dataclass(slots=True)
class EdgeState:
    name: str
    report: dict[str, Any] | None = None
    reported_at: float | None = None
    last_sequence: int = 0
    records: int = 0
    duplicates: int = 0
    gaps: int = 0
    alerts: int = 0
    tunnel: Tunnel | None = None
    history: list[int] = field(default_factory=list)


class TunnelCluster(RemoteCluster):
    """A RemoteCluster whose remote reads go down an agent's tunnel."""

    def __init__(
        self,
        tunnel: Tunnel,
        cluster: PullCluster,
        metrics: FederationMetrics | None,
        start_ms: int,
        end_ms: int,
    ) -> None:
        super().__init__(cluster, cast(aiohttp.ClientSession, None), metrics, start_ms, end_ms)
        self.tunnel = tunnel

    async def _post(self, body: bytes) -> bytes:
        started = time.monotonic()
        try:
            reply = await self.tunnel.request(body, self.cluster.timeout_ms / 1000)
        except TimeoutError:
            self._observe("error", started, 0)
            raise self._unavailable(
                f"read through the edge tunnel timed out after {self.cluster.timeout_ms / 1000:g}s"
            ) from None
        except (ConnectionError, ConnectionResetError) as exc:
            self._observe("error", started, 0)
            raise self._unavailable(f"edge tunnel closed: {exc}") from None
        if reply[0] == ERROR:
            self._observe("error", started, 0)
            raise self._unavailable(f"edge agent: {reply[1:].decode('utf-8', 'replace')}")
        self._observe("success", started, len(reply) - 1)
        return reply[1:]


class EdgeHub:
    """See the module docstring."""

    def __init__(self, config: EdgeConfig, metrics: FederationMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics
        self.states: dict[str, EdgeState] = {}
        self._groups: dict[str, list[dict[str, Any]]] = {}
        self._etags: dict[str, str] = {}
        self._mtimes: dict[Path, float] = {}
        self._changed = asyncio.Condition()
        self.last_error: str | None = None
        self.notify: Callable[[Sequence[Alert]], None] | None = None
        """Where agents' alerts go (the ruler's notifiers; set by the app)."""

    # -- rules -------------------------------------------------------------------

    def _read(self) -> tuple[dict[str, list[dict[str, Any]]], dict[Path, float]]:
        sources = expand_globs(self.config.rule_files, self.config.base_dir)
        groups: dict[str, list[dict[str, Any]]] = {}
        mtimes: dict[Path, float] = {}
        problems: list[str] = []
        for src in sources:
            try:
                mtimes[src.path] = src.path.stat().st_mtime
                text = src.path.read_text(encoding="utf-8")
                for cluster, group in parse_file_groups(text, src.display):
                    groups.setdefault(cluster, []).append(group)
            except OSError as exc:
                problems.append(f"{src.display}: cannot read the file: {exc.strerror}")
            except EdgeRulesError as exc:
                problems.extend(exc.problems)
        if problems:
            raise EdgeRulesError(problems)
        return groups, mtimes

    def load(self) -> int:
        """Read the edge rule files (at start: a problem is a ConfigError); returns groups."""
        try:
            groups, mtimes = self._read()
        except EdgeRulesError as exc:
            raise ConfigError("edge rule files", "edge.rule_files", exc.problems[0]) from None
        self._install(groups, mtimes)
        return sum(len(g) for g in groups.values())

    async def reload(self) -> bool:
        """Re-read the files; on a problem the running rules stay. Returns whether they changed."""
        try:
            groups, mtimes = self._read()
        except EdgeRulesError as exc:
            self.last_error = "; ".join(exc.problems)
            log.error(
                "edge rules not reloaded, keeping the running ones", extra={"err": self.last_error}
            )
            self._mtimes = self._current_mtimes()
            return False
        self.last_error = None
        changed = self._install(groups, mtimes)
        if changed:
            async with self._changed:
                self._changed.notify_all()
        return changed

    def _install(self, groups: dict[str, list[dict[str, Any]]], mtimes: dict[Path, float]) -> bool:
        etags = {
            c: '"'
            + hashlib.sha256(orjson.dumps(g, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
            + '"'
            for c, g in groups.items()
        }
        changed = etags != self._etags
        self._groups, self._etags, self._mtimes = groups, etags, mtimes
        return changed

    def _current_mtimes(self) -> dict[Path, float]:
        out = {}
        for src in expand_globs(self.config.rule_files, self.config.base_dir):
            try:
                out[src.path] = src.path.stat().st_mtime
            except OSError:
                pass
        return out

    async def watch(self) -> None:
        """Reload when a rule file appears, changes or goes away."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            if self.config.rule_files and self._current_mtimes() != self._mtimes:
                await self.reload()

    def rules_for(self, cluster: str) -> tuple[str, list[dict[str, Any]]]:
        groups = self._groups.get(cluster, [])
        return self._etags.get(cluster, '"empty"'), groups

    async def wait_change(self, cluster: str, etag: str, timeout_s: float) -> None:
        """Until the cluster's rules differ from `etag` or `timeout_s` passed."""

        def changed() -> bool:
            return self.rules_for(cluster)[0] != etag

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(changed), timeout_s)
            except TimeoutError:
                pass

    # -- what agents send --------------------------------------------------------

    def state(self, cluster: str) -> EdgeState:
        st = self.states.get(cluster)
        if st is None:
            st = self.states[cluster] = EdgeState(cluster)
        return st

    def is_duplicate(self, cluster: str, seq: int) -> bool:
        st = self.state(cluster)
        if seq <= st.last_sequence:
            st.duplicates += 1
            return True
        return False

    def accepted(self, cluster: str, seq: int) -> None:
        st = self.state(cluster)
        if st.last_sequence and seq != st.last_sequence + 1:
            st.gaps += 1
        st.last_sequence = max(st.last_sequence, seq)
        st.records += 1

    def reported(self, cluster: str, report: dict[str, Any]) -> None:
        st = self.state(cluster)
        st.report = report
        st.reported_at = time.time()

    # -- tunnels -----------------------------------------------------------------

    def attach(self, cluster: str, ws: web.WebSocketResponse) -> Tunnel:
        st = self.state(cluster)
        if st.tunnel is not None:
            st.tunnel.close()
        st.tunnel = Tunnel(cluster, ws)
        log.info("edge tunnel open", extra={"cluster": cluster})
        return st.tunnel

    def detach(self, tunnel: Tunnel) -> None:
        st = self.state(tunnel.cluster)
        tunnel.close()
        if st.tunnel is tunnel:
            st.tunnel = None
            log.info("edge tunnel closed", extra={"cluster": tunnel.cluster})

    def queriers(self, start_ms: int, end_ms: int) -> Sequence[TunnelCluster]:
        out = []
        for st in self.states.values():
            if st.tunnel is not None:
                cluster = PullCluster(
                    name=st.name,
                    url=f"edge-tunnel://{st.name}",
                    timeout_ms=self.config.tunnel_timeout_ms,
                )
                out.append(TunnelCluster(st.tunnel, cluster, self.metrics, start_ms, end_ms))
        return out

    def status(self, cluster: str) -> dict[str, Any] | None:
        """The `edge` object of a cluster in `/api/v1/clusters` (None: not an edge cluster)."""
        st = self.states.get(cluster)
        etag, groups = self.rules_for(cluster)
        if st is None and not groups:
            return None
        st = st or EdgeState(cluster)
        report = st.report or {}
        return {
            "rules_version": etag,
            "rule_groups": len(groups),
            "agent_rules_version": report.get("rules_etag"),
            "rules_in_sync": report.get("rules_etag") == etag,
            "rule_load_errors": report.get("errors", []),
            "rule_health": [r for r in report.get("rules", []) if r.get("health") == "err"],
            "last_report_time": st.reported_at,
            "tunnel_connected": st.tunnel is not None,
            "last_sequence": st.last_sequence,
            "records": st.records,
            "duplicates": st.duplicates,
            "sequence_gaps": st.gaps,
            "alerts_received": st.alerts,
        }
