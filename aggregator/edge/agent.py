"""The agent assembled: scrape -> window -> rules -> disk queue -> host, plus the tunnel.

One process, one event loop, one HTTP session. Its own metrics are served on
`edge.listen` when set (`aggregator.edge.selfmetrics`: one asyncio server on
the same loop; the agent has no other HTTP server).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from aggregator.edge.config import AgentConfig
from aggregator.edge.discovery import PodDiscovery, static_targets
from aggregator.edge.diskqueue import DiskQueue
from aggregator.edge.evaluator import EdgeRules
from aggregator.edge.http import Client
from aggregator.edge.scrape import ScrapeManager
from aggregator.edge.selfmetrics import Metric, serve
from aggregator.edge.trim import trim_loop
from aggregator.edge.tunnel import TunnelClient
from aggregator.edge.uplink import QueueOutbox, RuleSync, Sender
from aggregator.edge.window import Window

log = logging.getLogger(__name__)


class Agent:
    """Build with the config and the host's address; `run()` until cancelled."""

    def __init__(self, config: AgentConfig, *, host: str, cluster: str, token: str) -> None:
        self.config = config
        self.host = host
        self.cluster = cluster
        self.token = token
        edge = config.edge
        self.window = Window(edge.window_ms)
        self.queue = DiskQueue(edge.queue_dir, edge.queue_max_bytes)
        self.outbox = QueueOutbox(self.queue, edge.flush_interval_ms)
        self.rules = EdgeRules(
            self.window, self.outbox, default_interval_ms=config.evaluation_interval_ms
        )
        self.session: Client | None = None
        self.sender: Sender | None = None
        self.sync: RuleSync | None = None
        self.tunnel: TunnelClient | None = None
        self.scrapes: ScrapeManager | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._metrics_server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.session = Client()
        session = self.session
        self.sender = Sender(self.queue, session, self.host, self.token, self.cluster)
        self.sync = RuleSync(self.rules, session, self.host, self.token, self.cluster)
        self.tunnel = TunnelClient(
            self.window,
            session,
            self.host,
            self.token,
            self.cluster,
            local_read_url=self.config.edge.remote_read,
        )
        self.scrapes = ScrapeManager(self.window, session)
        for job in self.config.scrape_configs:
            await self.scrapes.set_targets(f"{job.job_name}/static", static_targets(job))
            for i, sd in enumerate(job.kubernetes):
                discovery = PodDiscovery(job, sd, i, self.scrapes)
                self._spawn(discovery.run(session), f"discovery-{job.job_name}-{i}")
        self._spawn(self.sender.run(), "sender")
        self._spawn(self.outbox.run(), "outbox")
        self._spawn(self.sync.run(), "rule-sync")
        self._spawn(self.sync.report_loop(), "status-report")
        self._spawn(self.tunnel.run(), "tunnel")
        self._spawn(trim_loop(), "trim")
        if self.config.edge.listen:
            self._metrics_server = await serve(self.config.edge.listen, lambda: collect(self))
        log.info(
            "edge agent started",
            extra={"cluster": self.cluster, "host": self.host, "targets": len(self.scrapes.loops)},
        )

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def stop(self) -> None:
        """Stop scraping and evaluating; what was batched goes to the disk queue."""
        if self._metrics_server is not None:
            self._metrics_server.close()
            self._metrics_server = None
        if self.scrapes is not None:
            await self.scrapes.stop()
        await self.rules.stop()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self.outbox.flush()
        if self.session is not None:
            await self.session.close()

    async def run(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            with contextlib.suppress(Exception):
                await self.stop()


def collect(agent: Agent) -> Iterator[Metric]:
    """The agent's own metrics, read from its parts when scraped."""
    a = agent
    q = a.queue

    def gauge(name: str, doc: str, value: float) -> Metric:
        return Metric("gauge", f"aggregator_edge_{name}", doc, float(value))

    def counter(name: str, doc: str, value: float) -> Metric:
        return Metric("counter", f"aggregator_edge_{name}", doc, float(value))

    yield gauge("queue_records", "Records in the on-disk queue.", len(q))
    yield gauge("queue_bytes", "Bytes in the on-disk queue.", q.bytes)
    yield gauge("queue_max_bytes", "The queue's size bound.", q.max_bytes)
    yield counter(
        "queue_dropped_records",
        "Oldest records dropped past the size bound.",
        q.dropped_records,
    )
    yield counter("queue_dropped_bytes", "Bytes of the dropped records.", q.dropped_bytes)
    s = a.sender
    yield counter("sent_bytes", "Bytes the host acknowledged.", s.sent_bytes if s else 0)
    yield counter("sent_records", "Records the host acknowledged.", s.sent_records if s else 0)
    yield counter(
        "rejected_records",
        "Records the host refused for good (4xx), dropped.",
        s.rejected_records if s else 0,
    )
    yield gauge("host_up", "Whether the last send reached the host.", bool(s and s.connected))
    yield counter("forwarded_samples", "Samples queued for the host.", a.outbox.samples_enqueued)
    yield counter("forwarded_alerts", "Alerts queued for the host.", a.outbox.alerts_enqueued)
    yield gauge("window_series", "Series in the in-memory window.", a.window.num_series)
    yield gauge("window_samples", "Samples in the in-memory window.", a.window.num_samples)
    yield gauge("rule_groups", "Rule groups running.", len(a.rules.groups))
    yield gauge("rule_load_errors", "Problems of the last rule set.", len(a.rules.load_errors))
    t = a.tunnel
    yield gauge(
        "tunnel_up", "Whether the reach-back tunnel is open.", bool(t and t.connected.is_set())
    )
    yield counter("tunnel_requests", "Reads answered through the tunnel.", t.requests if t else 0)
    yield counter(
        "local_read_errors",
        "Reach-back reads the local Prometheus (edge.remote_read) failed.",
        t.local_errors if t else 0,
    )
    scrapes = a.scrapes
    yield gauge("targets", "Scrape targets.", len(scrapes.loops) if scrapes else 0)
