"""The settings of rules and notifications, as the service config's `rules:` and
`alerting:` sections give them (parsed and checked in `aggregator.config`)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class RulesSettings:
    """`rules:`: which rule files to load and how often to evaluate them."""

    files: tuple[str, ...] = ()  # glob patterns, relative ones against `base_dir`
    base_dir: Path = Path(".")
    evaluation_interval_ms: int = 60_000
    query_offset_ms: int = 0


@dataclass(frozen=True, slots=True)
class HTTPTarget:
    """Where notifications are POSTed, and how to authenticate there."""

    url: str
    timeout_ms: int = 10_000
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    bearer_token: str | None = field(default=None, repr=False)

    def headers(self) -> dict[str, str]:
        """The Authorization header this target needs, if any."""
        if self.bearer_token:
            return {"Authorization": f"Bearer {self.bearer_token}"}
        if self.basic_auth is not None:
            user, password = self.basic_auth
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            return {"Authorization": f"Basic {token}"}
        return {}


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A receiver of Alertmanager webhook payloads (e.g. KubeSphere notification-manager).

    Alerts are grouped by `group_by` (default: per cluster); a group is notified
    when an alert in it starts firing or resolves, and again every
    `repeat_interval` while anything in it fires, as an Alertmanager route with
    a webhook receiver would do.
    """

    http: HTTPTarget
    name: str = "aggregator"
    group_by: tuple[str, ...] = ("cluster",)
    repeat_interval_ms: int = 4 * 3_600_000
    send_resolved: bool = True
    max_alerts: int = 0


@dataclass(frozen=True, slots=True)
class AlertingSettings:
    """`alerting:`: where alerts go and how they link back."""

    alertmanagers: tuple[HTTPTarget, ...] = ()
    webhooks: tuple[WebhookTarget, ...] = ()
    external_url: str = ""
    external_labels: tuple[tuple[str, str], ...] = ()
    resend_delay_ms: int = 60_000
    queue_capacity: int = 10_000
