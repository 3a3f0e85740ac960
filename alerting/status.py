"""Read-only snapshots of groups, rules and alerts: what the HTTP API shows.

Plain values, taken at one moment, so the API layer never touches live
rule state (and never needs to know the classes holding it).
"""

from __future__ import annotations

from dataclasses import dataclass

from alerting.group import Group
from alerting.rules import AlertingRule, RecordingRule
from alerting.types import Annotations
from promql.printer import format_expr
from storage.labels import Labels


@dataclass(frozen=True, slots=True)
class AlertStatus:
    labels: Labels
    annotations: Annotations
    state: str
    active_at_ms: int
    value: float
    keep_firing_since_ms: int | None


@dataclass(frozen=True, slots=True)
class RuleView:
    kind: str  # "alerting" or "recording"
    name: str
    query: str
    labels: tuple[tuple[str, str], ...]
    health: str
    last_error: str
    evaluation_s: float
    last_evaluation_ms: int | None
    # alerting rules only
    state: str = "inactive"
    duration_s: float = 0.0
    keep_firing_for_s: float = 0.0
    annotations: Annotations = ()
    alerts: tuple[AlertStatus, ...] = ()


@dataclass(frozen=True, slots=True)
class GroupView:
    name: str
    file: str
    rules: tuple[RuleView, ...]
    interval_s: float
    limit: int
    evaluation_s: float
    last_evaluation_ms: int | None
    cluster: str | None = None
    query_offset_s: float = 0.0


def group_view(group: Group) -> GroupView:
    """A snapshot of one group and its rules."""
    return GroupView(
        name=group.name,
        file=group.file,
        rules=tuple(_rule_view(r) for r in group.rules),
        interval_s=group.interval_ms / 1000,
        limit=group.spec.limit,
        evaluation_s=group.evaluation_s,
        last_evaluation_ms=group.last_evaluation_ms,
        cluster=group.spec.cluster,
        query_offset_s=group.query_offset_ms / 1000,
    )


def alert_statuses(rule: AlertingRule) -> list[AlertStatus]:
    """The pending and firing alerts of a rule, sorted by labels."""
    return [
        AlertStatus(
            labels=a.labels,
            annotations=a.annotations,
            state=a.state.value,
            active_at_ms=a.active_at_ms,
            value=a.value,
            keep_firing_since_ms=a.keep_firing_since_ms,
        )
        for a in rule.active_alerts()
    ]


def _rule_view(rule: AlertingRule | RecordingRule) -> RuleView:
    spec = rule.spec
    query = format_expr(spec.parsed) if spec.parsed is not None else spec.expr
    common = {
        "name": spec.name,
        "query": query,
        "labels": spec.labels,
        "health": rule.status.health.value,
        "last_error": rule.status.last_error,
        "evaluation_s": rule.status.evaluation_s,
        "last_evaluation_ms": rule.status.last_evaluation_ms,
    }
    if isinstance(rule, RecordingRule):
        return RuleView(kind="recording", **common)  # type: ignore[arg-type]
    return RuleView(
        kind="alerting",
        state=rule.state().value,
        duration_s=spec.for_ms / 1000,
        keep_firing_for_s=spec.keep_firing_for_ms / 1000,
        annotations=spec.annotations,
        alerts=tuple(alert_statuses(rule)),
        **common,  # type: ignore[arg-type]
    )
