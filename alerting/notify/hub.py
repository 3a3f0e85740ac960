"""The `Notifier` rules send to: every configured target gets every alert.

Before alerts leave, the configured external labels are added to those that
lack them (as Prometheus's notifier does). Each Alertmanager gets the alerts
in batches of up to 64 on `POST /api/v2/alerts`; each webhook gets grouped
notifications (see `webhook`). Every target has its own queue and task
(`sender`). A reload keeps the targets whose settings did not change, with
their queues and webhook grouping state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson

from alerting.clock import Clock
from alerting.metrics import NotifierMetrics
from alerting.notify.sender import INITIAL_BACKOFF_S, Sender, post_json
from alerting.notify.webhook import WebhookGrouper
from alerting.notify.wire import postable_alert
from alerting.settings import AlertingSettings, HTTPTarget, WebhookTarget
from alerting.types import Alert
from storage.labels import Labels

log = logging.getLogger(__name__)

ALERTMANAGER_PATH = "/api/v2/alerts"
TICK_S = 5.0
"""How often webhook groups are checked for repeats and expired alerts."""


def alertmanager_url(base: str) -> str:
    """The alerts endpoint of an Alertmanager given by its base URL (or the endpoint itself)."""
    base = base.rstrip("/")
    return base if base.endswith(ALERTMANAGER_PATH) else base + ALERTMANAGER_PATH


class _Alertmanager:
    def __init__(self, target: HTTPTarget, hub: NotifierHub) -> None:
        self.target = target
        self.url = alertmanager_url(target.url)
        self.hub = hub
        self.sender: Sender[Alert] = Sender(
            self.url,
            self._deliver,
            hub.metrics,
            capacity=hub.settings.queue_capacity,
            initial_backoff_s=hub.initial_backoff_s,
        )

    async def _deliver(self, alerts: list[Alert]) -> None:
        body = orjson.dumps([postable_alert(a) for a in alerts])
        await post_json(
            self.hub.session(),
            self.url,
            body,
            timeout_s=self.target.timeout_ms / 1000,
            headers=self.target.headers(),
        )


class _Webhook:
    def __init__(self, target: WebhookTarget, hub: NotifierHub) -> None:
        self.target = target
        self.hub = hub
        self.grouper = WebhookGrouper(target, hub.settings.external_url)
        self.sender: Sender[dict[str, Any]] = Sender(
            target.http.url,
            self._deliver,
            hub.metrics,
            capacity=hub.settings.queue_capacity,
            max_batch=1,
            count=lambda payloads: sum(len(p["alerts"]) for p in payloads),
            initial_backoff_s=hub.initial_backoff_s,
        )

    async def _deliver(self, payloads: list[dict[str, Any]]) -> None:
        http = self.target.http
        for payload in payloads:
            await post_json(
                self.hub.session(),
                http.url,
                orjson.dumps(payload),
                timeout_s=http.timeout_ms / 1000,
                headers=http.headers(),
            )


class NotifierHub:
    """Fans alerts out to Alertmanagers and webhooks; `start()` before `send()`."""

    def __init__(
        self,
        settings: AlertingSettings,
        metrics: NotifierMetrics,
        clock: Clock,
        *,
        initial_backoff_s: float = INITIAL_BACKOFF_S,
    ) -> None:
        self.settings = settings
        self.initial_backoff_s = initial_backoff_s
        self.metrics = metrics
        self.clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._alertmanagers = [_Alertmanager(t, self) for t in settings.alertmanagers]
        self._webhooks = [_Webhook(t, self) for t in settings.webhooks]
        self._ticker: asyncio.Task[None] | None = None
        self._external = settings.external_labels
        self._started = False

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    def _senders(self) -> list[Sender[Any]]:
        return [a.sender for a in self._alertmanagers] + [w.sender for w in self._webhooks]

    async def start(self) -> None:
        self._started = True
        for sender in self._senders():
            sender.start()
        self.metrics.targets.set(len(self._senders()))
        if self._webhooks:
            self._ticker = asyncio.create_task(self._tick(), name="notify webhook ticker")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            try:
                await self._ticker
            except asyncio.CancelledError:
                pass
        for sender in self._senders():
            await sender.stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def reconfigure(self, settings: AlertingSettings) -> None:
        """Apply new settings: targets whose settings did not change keep their queue
        (and webhook grouping state); the others are stopped and replaced."""
        if settings == self.settings:
            return
        keep = (
            settings.external_url == self.settings.external_url
            and settings.queue_capacity == self.settings.queue_capacity
        )
        old_am = {a.target: a for a in self._alertmanagers} if keep else {}
        old_wh = {w.target: w for w in self._webhooks} if keep else {}
        retired: list[Sender[Any]] = [
            a.sender for a in self._alertmanagers if a.target not in old_am
        ]
        retired += [w.sender for w in self._webhooks if w.target not in old_wh]
        self.settings = settings
        self._external = settings.external_labels
        alertmanagers = []
        for t in settings.alertmanagers:
            am = old_am.pop(t, None)
            if am is None:
                am = _Alertmanager(t, self)
                if self._started:
                    am.sender.start()
            alertmanagers.append(am)
        webhooks = []
        for w in settings.webhooks:
            wh = old_wh.pop(w, None)
            if wh is None:
                wh = _Webhook(w, self)
                if self._started:
                    wh.sender.start()
            webhooks.append(wh)
        retired += [a.sender for a in old_am.values()]
        retired += [w.sender for w in old_wh.values()]
        for sender in retired:
            await sender.stop()
        self._alertmanagers, self._webhooks = alertmanagers, webhooks
        self.metrics.targets.set(len(self._senders()))
        if self._started and self._webhooks and self._ticker is None:
            self._ticker = asyncio.create_task(self._tick(), name="notify webhook ticker")

    def send(self, alerts: Sequence[Alert]) -> None:
        """Queue `alerts` for every target (returns at once)."""
        if not alerts:
            return
        out = [self._with_external(a) for a in alerts] if self._external else list(alerts)
        for am in self._alertmanagers:
            am.sender.enqueue(out)
        now = self.clock.now_ms()
        for wh in self._webhooks:
            payloads = wh.grouper.update(out, now)
            if payloads:
                wh.sender.enqueue(payloads)

    def _with_external(self, alert: Alert) -> Alert:
        missing = [(k, v) for k, v in self._external if not alert.labels.has(k)]
        if not missing:
            return alert
        labels = Labels.from_pairs([*alert.labels, *missing])
        return Alert(
            labels,
            alert.annotations,
            alert.starts_at_ms,
            alert.ends_at_ms,
            alert.generator_url,
            resolved=alert.resolved,
        )

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = self.clock.now_ms()
            for wh in self._webhooks:
                payloads = wh.grouper.tick(now)
                if payloads:
                    wh.sender.enqueue(payloads)

    def pending(self) -> int:
        """Items queued across targets (for tests and status)."""
        return sum(s.pending for s in self._senders())
