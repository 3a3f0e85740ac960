"""Webhook targets: alerts grouped like an Alertmanager route, sent as its webhook payload.

This is what KubeSphere's notification manager takes (`POST
:19093/api/v2/alerts`). Alerts are grouped by the target's `group_by` labels
(the cluster by default), so each notification concerns one cluster and says
so in `groupLabels` and `groupKey`. A group is notified when one of its
alerts starts firing or resolves, and again every `repeat_interval` while
any of its alerts fires; a notification holds the group's firing alerts and
those that resolved since the last one. An alert not re-sent before its
`endsAt` counts as resolved then (its rule went away), as in Alertmanager.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from alerting.notify.wire import webhook_payload
from alerting.settings import WebhookTarget
from alerting.types import Alert
from storage.labels import Labels


@dataclass(slots=True)
class _GroupState:
    alerts: dict[Labels, Alert] = field(default_factory=dict)
    notified_firing: frozenset[Labels] = frozenset()
    last_notified_ms: int | None = None


class WebhookGrouper:
    """Turns the alerts rules send into the notifications a webhook target should get."""

    def __init__(self, target: WebhookTarget, external_url: str) -> None:
        self.target = target
        self.external_url = external_url
        self._groups: dict[Labels, _GroupState] = {}

    def update(self, alerts: Sequence[Alert], now_ms: int) -> list[dict[str, Any]]:
        """Take new alert states; returns the payloads that are due now."""
        touched: set[Labels] = set()
        for alert in alerts:
            key = alert.labels.keep(*self.target.group_by)
            self._groups.setdefault(key, _GroupState()).alerts[alert.labels] = alert
            touched.add(key)
        return self._flush(touched, now_ms)

    def tick(self, now_ms: int) -> list[dict[str, Any]]:
        """Notifications due by time alone: repeats, and alerts that expired."""
        return self._flush(set(self._groups), now_ms)

    def _flush(self, keys: set[Labels], now_ms: int) -> list[dict[str, Any]]:
        out = []
        for key in sorted(keys):
            state = self._groups[key]
            self._expire(state, now_ms)
            firing = frozenset(k for k, a in state.alerts.items() if not a.resolved)
            if self._due(state, firing, now_ms):
                chosen = sorted(
                    (
                        a
                        for a in state.alerts.values()
                        if not a.resolved or self.target.send_resolved
                    ),
                    key=lambda a: (a.resolved, a.labels),
                )
                if chosen:
                    out.append(self._payload(key, chosen))
                state.notified_firing = firing
                state.last_notified_ms = now_ms
            for labels in [k for k, a in state.alerts.items() if a.resolved]:
                del state.alerts[labels]
            if not state.alerts and not state.notified_firing:
                del self._groups[key]
        return out

    def _due(self, state: _GroupState, firing: frozenset[Labels], now_ms: int) -> bool:
        """Alertmanager's rule (`DedupStage.needsUpdate`) for notifying a group now."""
        if state.last_notified_ms is None:
            return bool(firing)
        if not firing <= state.notified_firing:
            return True  # something new fires
        if not firing:
            return bool(state.notified_firing)  # everything it was told about resolved
        resolved = {k for k, a in state.alerts.items() if a.resolved}
        if self.target.send_resolved and resolved & state.notified_firing:
            return True
        return now_ms - state.last_notified_ms >= self.target.repeat_interval_ms

    @staticmethod
    def _expire(state: _GroupState, now_ms: int) -> None:
        for labels, alert in list(state.alerts.items()):
            if not alert.resolved and alert.ends_at_ms < now_ms:
                state.alerts[labels] = replace(alert, resolved=True)

    def _payload(self, key: Labels, alerts: list[Alert]) -> dict[str, Any]:
        limit = self.target.max_alerts
        truncated = 0
        if limit and len(alerts) > limit:
            truncated = len(alerts) - limit
            alerts = alerts[:limit]
        return webhook_payload(
            receiver=self.target.name,
            group_labels=key,
            alerts=alerts,
            external_url=self.external_url,
            truncated=truncated,
        )
