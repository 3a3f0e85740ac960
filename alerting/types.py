"""What the alerting package exchanges with the rest of the service.

`QueryFunc` is how rules query (built in `aggregator/app.py` from the engine
and the global Queryable, Prometheus's `EngineQueryFunc`); `Notifier` is
where alerts go (Alertmanager, webhooks); `Alert` is the Alertmanager API v2
shape of one alert as sent.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from promql.value import Vector
from storage.labels import Labels

Annotations = tuple[tuple[str, str], ...]
"""Annotation name/value pairs sorted by name (values may be empty, unlike labels)."""


class AlertState(enum.Enum):
    """Where an alert is in its life (Prometheus's names)."""

    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


class RuleHealth(enum.Enum):
    """Whether a rule's last evaluation worked."""

    UNKNOWN = "unknown"
    OK = "ok"
    ERR = "err"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as notifiers send it: Alertmanager API v2's postable alert.

    `ends_at_ms` is the resolve time of a resolved alert, and for a firing one
    the time after which Alertmanager may consider it resolved unless it is
    sent again (Prometheus's `ValidUntil`: four evaluation intervals ahead).
    """

    labels: Labels
    annotations: Annotations
    starts_at_ms: int
    ends_at_ms: int
    generator_url: str
    resolved: bool = False
    """True when `ends_at_ms` is when the alert resolved (webhooks say "resolved")."""


class QueryFunc(Protocol):
    """Evaluates a PromQL expression at one instant; a scalar comes back as one sample
    with no labels. Raises `promql.errors.QueryError` when the query fails."""

    async def __call__(self, expr: str, ts_ms: int) -> Vector: ...


class Notifier(Protocol):
    """Takes alerts to deliver; returns at once (delivery happens in the background)."""

    def send(self, alerts: Sequence[Alert]) -> None: ...
