"""Delivery to real HTTP receivers: Alertmanager API v2, webhooks, failures, queues."""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from alerting.clock import SystemClock
from alerting.metrics import NotifierMetrics
from alerting.notify.hub import NotifierHub
from alerting.settings import AlertingSettings, HTTPTarget, WebhookTarget
from alerting.types import Alert
from storage.labels import Labels
from tests.support.realparts import free_port
from tests.support.waiting import until

T = 1_700_000_000_000


def firing(name: str = "Down", cluster: str = "eu", start: int = T) -> Alert:
    labels = Labels.from_dict({"alertname": name, "cluster": cluster})
    return Alert(labels, (("summary", "s"),), start, start + 240_000, "http://agg/graph?g0.expr=up")


class Receiver:
    """A real HTTP server that records what it is sent; `fail` answers with errors first."""

    def __init__(self, fail: list[int] | None = None) -> None:
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.fail = list(fail or [])
        self.app = web.Application()
        self.app.router.add_post("/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        if self.fail:
            return web.Response(status=self.fail.pop(0), text="nope")
        self.requests.append((request.path, dict(request.headers), await request.json()))
        return web.Response(status=200)


Serve = Callable[[web.Application], Awaitable[Any]]


async def start(receiver: Receiver, aiohttp_server: Serve) -> str:
    server = await aiohttp_server(receiver.app)
    return f"http://127.0.0.1:{server.port}"


def hub_for(settings: AlertingSettings) -> tuple[NotifierHub, CollectorRegistry]:
    registry = CollectorRegistry()
    hub = NotifierHub(settings, NotifierMetrics(registry), SystemClock(), initial_backoff_s=0.01)
    return hub, registry


async def test_alertmanager_gets_api_v2_alerts_with_credentials(aiohttp_server: Serve) -> None:
    receiver = Receiver()
    url = await start(receiver, aiohttp_server)
    settings = AlertingSettings(
        alertmanagers=(HTTPTarget(url, bearer_token="s3cret"),),
        external_labels=(("fleet", "prod"), ("cluster", "host")),
    )
    hub, registry = hub_for(settings)
    await hub.start()
    try:
        hub.send([firing()])
        await until(lambda: bool(receiver.requests))
    finally:
        await hub.stop()
    path, headers, body = receiver.requests[0]
    assert path == "/api/v2/alerts"
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["Content-Type"] == "application/json"
    # External labels fill in what the alert lacks; its own cluster label stays.
    assert body == [
        {
            "labels": {"alertname": "Down", "cluster": "eu", "fleet": "prod"},
            "annotations": {"summary": "s"},
            "startsAt": "2023-11-14T22:13:20.000Z",
            "endsAt": "2023-11-14T22:17:20.000Z",
            "generatorURL": "http://agg/graph?g0.expr=up",
        }
    ]
    labels = {"alertmanager": f"{url}/api/v2/alerts"}
    assert registry.get_sample_value("aggregator_notifications_sent_total", labels) == 1


async def test_a_target_that_is_down_holds_up_no_other(aiohttp_server: Serve) -> None:
    receiver = Receiver()
    url = await start(receiver, aiohttp_server)
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    user_pass = ("u", "p")
    hub, registry = hub_for(
        AlertingSettings(alertmanagers=(HTTPTarget(down), HTTPTarget(url, basic_auth=user_pass)))
    )
    await hub.start()
    try:
        for k in range(3):
            hub.send([firing(f"A{k}")])
            await until(lambda k=k: len(receiver.requests) == k + 1, timeout_s=2.0)
        errors = {"alertmanager": f"{down}/api/v2/alerts"}
        await until(
            lambda: (
                (registry.get_sample_value("aggregator_notifications_errors_total", errors) or 0)
                >= 2
            )
        )
    finally:
        await hub.stop()
    token = base64.b64encode(b"u:p").decode()
    assert receiver.requests[0][1]["Authorization"] == f"Basic {token}"


async def test_server_errors_are_retried_client_errors_dropped(aiohttp_server: Serve) -> None:
    flaky = Receiver(fail=[503, 503])
    refusing = Receiver(fail=[400])
    flaky_url = await start(flaky, aiohttp_server)
    refusing_url = await start(refusing, aiohttp_server)
    hub, registry = hub_for(
        AlertingSettings(alertmanagers=(HTTPTarget(flaky_url), HTTPTarget(refusing_url)))
    )
    await hub.start()
    try:
        hub.send([firing()])
        await until(lambda: bool(flaky.requests))
        refused = {"alertmanager": f"{refusing_url}/api/v2/alerts"}
        await until(
            lambda: (
                registry.get_sample_value("aggregator_notifications_dropped_total", refused) == 1
            )
        )
    finally:
        await hub.stop()
    flaky_labels = {"alertmanager": f"{flaky_url}/api/v2/alerts"}
    assert registry.get_sample_value("aggregator_notifications_errors_total", flaky_labels) == 2
    assert registry.get_sample_value("aggregator_notifications_sent_total", flaky_labels) == 1
    assert refusing.requests == []  # a 400 is not retried


async def test_a_full_queue_drops_the_oldest() -> None:
    down = f"http://127.0.0.1:{free_port()}"
    hub, registry = hub_for(AlertingSettings(alertmanagers=(HTTPTarget(down),), queue_capacity=2))
    # Not started: nothing leaves the queue.
    hub.send([firing(f"A{k}") for k in range(5)])
    labels = {"alertmanager": f"{down}/api/v2/alerts"}
    assert registry.get_sample_value("aggregator_notifications_dropped_total", labels) == 3
    assert registry.get_sample_value("aggregator_notifications_queue_length", labels) == 2
    assert hub.pending() == 2
    await hub.stop()


async def test_webhook_gets_grouped_payloads(aiohttp_server: Serve) -> None:
    receiver = Receiver()
    url = await start(receiver, aiohttp_server)
    hub, _ = hub_for(
        AlertingSettings(
            webhooks=(WebhookTarget(HTTPTarget(f"{url}/api/v2/alerts"), name="nm"),),
            external_url="http://agg.example:9095",
        )
    )
    await hub.start()
    try:
        now = int(time.time() * 1000)  # webhook groups end alerts past their endsAt
        hub.send([firing("A", "eu", now), firing("B", "us", now)])
        await until(lambda: len(receiver.requests) == 2)
    finally:
        await hub.stop()
    bodies = sorted((r[2] for r in receiver.requests), key=lambda b: b["groupKey"])
    assert [r[0] for r in receiver.requests] == ["/api/v2/alerts"] * 2
    assert [(b["receiver"], b["groupLabels"], b["externalURL"]) for b in bodies] == [
        ("nm", {"cluster": "eu"}, "http://agg.example:9095"),
        ("nm", {"cluster": "us"}, "http://agg.example:9095"),
    ]


async def test_reconfigure_keeps_unchanged_targets(aiohttp_server: Serve) -> None:
    receiver = Receiver()
    url = await start(receiver, aiohttp_server)
    kept = HTTPTarget(url)
    hub, _ = hub_for(AlertingSettings(alertmanagers=(kept,)))
    await hub.start()
    try:
        before = hub._alertmanagers[0]
        await hub.reconfigure(AlertingSettings(alertmanagers=(kept, HTTPTarget(url + "/x"))))
        assert hub._alertmanagers[0] is before
        assert len(hub._alertmanagers) == 2
        hub.send([firing()])
        await until(lambda: len(receiver.requests) == 2)
        assert sorted(r[0] for r in receiver.requests) == ["/api/v2/alerts", "/x/api/v2/alerts"]
    finally:
        await hub.stop()


async def test_reconfigure_before_start_starts_each_target_once(aiohttp_server: Serve) -> None:
    receiver = Receiver()
    url = await start(receiver, aiohttp_server)
    hub, _ = hub_for(AlertingSettings())
    await hub.reconfigure(AlertingSettings(alertmanagers=(HTTPTarget(url),)))
    hub.send([firing()])
    assert hub.pending() == 1  # nothing delivers before start()
    await hub.start()
    try:
        await until(lambda: len(receiver.requests) == 1)
        hub.send([firing("B")])
        await until(lambda: len(receiver.requests) == 2)
        # one task per target: each alert delivered once
        assert sorted(r[2][0]["labels"]["alertname"] for r in receiver.requests) == ["B", "Down"]
    finally:
        await hub.stop()
