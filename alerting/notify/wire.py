"""How alerts look on the wire: Alertmanager API v2 and the webhook payload.

Times follow what each side writes: Alertmanager's API uses RFC 3339 with
milliseconds (`2023-03-16T20:53:20.123Z`, go-openapi's DateTime); webhook
payloads use Go's `time.Time` JSON form (RFC 3339 with trailing zeros of
the fraction dropped), and `0001-01-01T00:00:00Z` as the end of an alert
that still fires, as Alertmanager's own webhook notifications do.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from alerting.types import Alert
from storage.labels import Labels

GO_ZERO_TIME = "0001-01-01T00:00:00Z"

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = (1 << 64) - 1


def rfc3339_millis(ms: int) -> str:
    """`2023-03-16T20:53:20.123Z`."""
    seconds, millis = divmod(ms, 1000)
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def rfc3339_go(ms: int) -> str:
    """Go's `time.Time` JSON form: `2023-03-16T20:53:20.5Z`, `2023-03-16T20:53:20Z`."""
    seconds, millis = divmod(ms, 1000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f".{millis:03d}".rstrip("0") if millis else ""
    return f"{stamp}{frac}Z"


def fingerprint(labels: Iterable[tuple[str, str]]) -> str:
    """Alertmanager's fingerprint of a label set (FNV-1a over sorted name/value pairs)."""
    h = _FNV_OFFSET
    for name, value in sorted(labels):
        for chunk in (name.encode(), b"\xff", value.encode(), b"\xff"):
            for byte in chunk:
                h = ((h ^ byte) * _FNV_PRIME) & _MASK
    return f"{h:016x}"


def postable_alert(alert: Alert) -> dict[str, Any]:
    """One element of `POST /api/v2/alerts`."""
    return {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": rfc3339_millis(alert.starts_at_ms),
        "endsAt": rfc3339_millis(alert.ends_at_ms),
        "generatorURL": alert.generator_url,
    }


def webhook_alert(alert: Alert) -> dict[str, Any]:
    """One element of a webhook payload's `alerts`."""
    return {
        "status": "resolved" if alert.resolved else "firing",
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": rfc3339_go(alert.starts_at_ms),
        "endsAt": rfc3339_go(alert.ends_at_ms) if alert.resolved else GO_ZERO_TIME,
        "generatorURL": alert.generator_url,
        "fingerprint": fingerprint(alert.labels),
    }


def group_key(group_labels: Labels) -> str:
    """Alertmanager's group key of the root route: `{}:{cluster="eu"}`."""
    inner = ", ".join(f'{k}="{_escape(v)}"' for k, v in group_labels)
    return "{}:{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def webhook_payload(
    *,
    receiver: str,
    group_labels: Labels,
    alerts: list[Alert],
    external_url: str,
    truncated: int = 0,
) -> dict[str, Any]:
    """The Alertmanager webhook payload (version 4) for one group's notification."""
    firing = any(not a.resolved for a in alerts)
    return {
        "receiver": receiver,
        "status": "firing" if firing else "resolved",
        "alerts": [webhook_alert(a) for a in alerts],
        "groupLabels": dict(group_labels),
        "commonLabels": _common([dict(a.labels) for a in alerts]),
        "commonAnnotations": _common([dict(a.annotations) for a in alerts]),
        "externalURL": external_url,
        "version": "4",
        "groupKey": group_key(group_labels),
        "truncatedAlerts": truncated,
    }


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    common = dict(maps[0])
    for m in maps[1:]:
        for key in [k for k, v in common.items() if m.get(k) != v]:
            del common[key]
    return common
