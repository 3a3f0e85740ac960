"""Webhook targets: Alertmanager's grouping and its webhook payload, per cluster."""

from __future__ import annotations

from alerting.notify.webhook import WebhookGrouper
from alerting.notify.wire import fingerprint, group_key, rfc3339_go, rfc3339_millis
from alerting.settings import HTTPTarget, WebhookTarget
from alerting.types import Alert
from storage.labels import Labels

T = 1_700_000_000_000
TARGET = WebhookTarget(HTTPTarget("http://nm:19093/api/v2/alerts"), repeat_interval_ms=3_600_000)


def alert(
    cluster: str, name: str = "NodeDown", *, resolved: bool = False, end: int = T + 240_000
) -> Alert:
    labels = Labels.from_dict({"alertname": name, "cluster": cluster, "severity": "page"})
    return Alert(
        labels,
        (("summary", f"{name} in {cluster}"),),
        T,
        end if not resolved else T + 60_000,
        "http://agg/graph?g0.expr=up&g0.tab=1",
        resolved=resolved,
    )


def test_payload_is_alertmanagers_webhook_shape() -> None:
    grouper = WebhookGrouper(TARGET, "http://agg.example:9095")
    [payload] = grouper.update([alert("eu")], T)
    assert list(payload) == [
        "receiver",
        "status",
        "alerts",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "version",
        "groupKey",
        "truncatedAlerts",
    ]
    assert payload["receiver"] == "aggregator"
    assert payload["status"] == "firing"
    assert payload["groupLabels"] == {"cluster": "eu"}
    assert payload["groupKey"] == '{}:{cluster="eu"}'
    assert payload["commonLabels"] == {"alertname": "NodeDown", "cluster": "eu", "severity": "page"}
    assert payload["commonAnnotations"] == {"summary": "NodeDown in eu"}
    assert payload["externalURL"] == "http://agg.example:9095"
    assert payload["version"] == "4"
    [a] = payload["alerts"]
    assert a == {
        "status": "firing",
        "labels": {"alertname": "NodeDown", "cluster": "eu", "severity": "page"},
        "annotations": {"summary": "NodeDown in eu"},
        "startsAt": "2023-11-14T22:13:20Z",
        "endsAt": "0001-01-01T00:00:00Z",  # what Alertmanager sends for a firing alert
        "generatorURL": "http://agg/graph?g0.expr=up&g0.tab=1",
        "fingerprint": fingerprint(Labels.from_dict(a["labels"])),
    }


def test_fingerprint_and_times_match_alertmanager() -> None:
    # Values read from a real Alertmanager 0.25 for {alertname="X", cluster="eu", sev="p"}.
    assert fingerprint(Labels.from_dict({"alertname": "X", "cluster": "eu", "sev": "p"})) == (
        "aa59890d8b8752b2"
    )
    assert group_key(Labels()) == "{}:{}"
    assert rfc3339_go(T + 500) == "2023-11-14T22:13:20.5Z"
    assert rfc3339_millis(T + 5) == "2023-11-14T22:13:20.005Z"


def test_one_notification_per_cluster() -> None:
    grouper = WebhookGrouper(TARGET, "")
    payloads = grouper.update([alert("eu"), alert("us"), alert("eu", "Other")], T)
    assert [(p["groupLabels"], len(p["alerts"])) for p in payloads] == [
        ({"cluster": "eu"}, 2),
        ({"cluster": "us"}, 1),
    ]
    eu = payloads[0]
    assert eu["commonLabels"] == {"cluster": "eu", "severity": "page"}
    assert eu["commonAnnotations"] == {}


def test_notifies_on_change_and_repeat_only() -> None:
    grouper = WebhookGrouper(TARGET, "")
    assert len(grouper.update([alert("eu")], T)) == 1
    # The rule re-sends the same firing alert every minute: no new notification.
    assert grouper.update([alert("eu")], T + 60_000) == []
    # A second alert in the group: one notification holding both.
    [both] = grouper.update([alert("eu", "Other")], T + 120_000)
    assert len(both["alerts"]) == 2
    # One resolves: the group hears it, with the one still firing.
    [resolved] = grouper.update([alert("eu", "Other", resolved=True)], T + 180_000)
    assert resolved["status"] == "firing"
    assert sorted((a["labels"]["alertname"], a["status"]) for a in resolved["alerts"]) == [
        ("NodeDown", "firing"),
        ("Other", "resolved"),
    ]
    assert grouper.update([alert("eu")], T + 240_000) == []
    # Nothing changed for the repeat interval: the firing alert is repeated.
    [repeat] = grouper.update([alert("eu", end=T + 7_200_000)], T + 3_780_000)
    assert len(repeat["alerts"]) == 1
    # The last one resolves: a resolved notification.
    [last] = grouper.update([alert("eu", resolved=True)], T + 3_840_000)
    assert last["status"] == "resolved"
    assert last["alerts"][0]["endsAt"] == "2023-11-14T22:14:20Z"
    assert grouper.update([alert("eu", resolved=True)], T + 3_900_000) == []


def test_an_alert_not_sent_again_resolves_when_it_ends() -> None:
    """A rule that went away never sends "resolved"; its alert ends at its endsAt."""
    grouper = WebhookGrouper(TARGET, "")
    grouper.update([alert("eu", end=T + 240_000)], T)
    assert grouper.tick(T + 200_000) == []
    [payload] = grouper.tick(T + 300_000)
    assert payload["status"] == "resolved"


def test_without_send_resolved_only_firing_alerts_go_out() -> None:
    target = WebhookTarget(HTTPTarget("http://x"), send_resolved=False)
    grouper = WebhookGrouper(target, "")
    grouper.update([alert("eu"), alert("eu", "Other")], T)
    # Other resolves: nothing new fires, resolved alerts are not sent.
    assert grouper.update([alert("eu", "Other", resolved=True)], T + 60_000) == []


def test_max_alerts_truncates() -> None:
    target = WebhookTarget(HTTPTarget("http://x"), max_alerts=1)
    [payload] = WebhookGrouper(target, "").update([alert("eu"), alert("eu", "Other")], T)
    assert len(payload["alerts"]) == 1
    assert payload["truncatedAlerts"] == 1
