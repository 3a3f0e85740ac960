"""Alerting and recording rules: one evaluation turns a query result into output.

`AlertingRule` is Prometheus's alert state machine (`rules/alerting.go`,
2.42): every series of the result is an alert, keyed by its labels (the
series' minus `__name__`, plus the rule's templated labels and `alertname`).
A new alert is pending from its first evaluation (`activeAt`); it fires once
it has been active for `for`; an alert missing from the result resolves at
once, unless it was firing and `keep_firing_for` holds it for that long; a
resolved alert is kept 15 minutes so notifiers hear that it resolved. Each
evaluation writes `ALERTS{alertstate=...} 1` and `ALERTS_FOR_STATE <activeAt
seconds>` for every pending or firing alert, once the rule's state is
restored after a start (see `group.py`).

`RecordingRule` names the result's series after the rule and sets its labels.
Both fail on a result holding the same labels twice and on a group `limit`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from alerting.rulefile import RuleSpec
from alerting.template import AlertData, AlertTemplate, Function, alert_data, functions
from alerting.template.exec import FunctionError
from alerting.template.values import LabelMap, QueryResult, Sample
from alerting.types import Alert, AlertState, Annotations, QueryFunc, RuleHealth
from promql.errors import QueryError
from promql.value import Vector
from storage.labels import METRIC_NAME, Labels

log = logging.getLogger(__name__)

ALERT_METRIC = "ALERTS"
ALERT_FOR_STATE_METRIC = "ALERTS_FOR_STATE"
ALERT_NAME = "alertname"
ALERT_STATE = "alertstate"
RESOLVED_RETENTION_MS = 15 * 60_000
"""How long a resolved alert is kept, so that notifiers keep hearing it resolved."""


class RuleError(Exception):
    """An evaluation that produced no usable result; the message is the rule's lastError."""


@dataclass(slots=True)
class Output:
    """Series a rule writes at one timestamp: label sets and their values."""

    labels: list[Labels]
    values: NDArray[np.float64]

    @classmethod
    def empty(cls) -> Output:
        return cls([], np.zeros(0))

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(slots=True)
class ActiveAlert:
    """An alert the rule tracks (pending, firing, or recently resolved)."""

    labels: Labels
    annotations: Annotations
    state: AlertState
    value: float
    active_at_ms: int
    fired_at_ms: int | None = None
    resolved_at_ms: int | None = None
    last_sent_ms: int | None = None
    valid_until_ms: int | None = None
    keep_firing_since_ms: int | None = None


@dataclass(slots=True)
class RuleStatus:
    """Health and timing of the last evaluation (what `/api/v1/rules` shows)."""

    health: RuleHealth = RuleHealth.UNKNOWN
    last_error: str = ""
    last_evaluation_ms: int | None = None  # wall clock when it started
    evaluation_s: float = 0.0


@dataclass(frozen=True, slots=True)
class TemplateContext:
    """What templates see besides the alert itself."""

    external_labels: tuple[tuple[str, str], ...] = ()
    external_url: str = ""


class RecordingRule:
    """`record: NAME`: the expression's result, renamed and relabeled, written back."""

    def __init__(self, spec: RuleSpec) -> None:
        self.spec = spec
        self.status = RuleStatus()

    @property
    def name(self) -> str:
        return self.spec.name

    async def eval(self, ts_ms: int, query: QueryFunc, *, limit: int = 0) -> Output:
        """The series to write at `ts_ms` (raises RuleError / QueryError on failure)."""
        vector = await query(self.spec.expr, ts_ms)
        rule_labels = self.spec.labels
        name = self.spec.name
        out = []
        for lbl in vector.labels:
            pairs = dict(lbl)
            pairs[METRIC_NAME] = name
            for key, value in rule_labels:
                pairs[key] = value
            out.append(Labels.from_pairs(pairs.items()))
        if len(set(out)) != len(out):
            raise RuleError(
                "vector contains metrics with the same labelset after applying rule labels"
            )
        if limit > 0 and len(out) > limit:
            raise RuleError(f"exceeded limit of {limit} with {len(out)} series")
        return Output(out, np.asarray(vector.values, dtype=np.float64))


class AlertingRule:
    """`alert: NAME`: the state machine described in the module docstring."""

    def __init__(
        self,
        spec: RuleSpec,
        context: TemplateContext,
        *,
        extra_labels: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.spec = spec
        self.context = context
        self.status = RuleStatus()
        self.active: dict[Labels, ActiveAlert] = {}
        self.restored = False
        self._extra_labels = tuple(extra_labels)  # e.g. the cluster of a cluster-scoped group
        self._external = LabelMap(context.external_labels)
        self._templated = bool(
            any(t.root is not None for t in spec.label_templates)
            or any(t.root is not None for t in spec.annotation_templates)
        )
        self._uses_query = any(
            t.uses_query for t in spec.label_templates + spec.annotation_templates
        )
        self._label_names = [k for k, _ in spec.labels]
        self._annotation_names = [k for k, _ in spec.annotations]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def for_ms(self) -> int:
        return self.spec.for_ms

    def state(self) -> AlertState:
        """The most advanced state of its alerts (firing > pending > inactive)."""
        best = AlertState.INACTIVE
        for a in self.active.values():
            if a.state is AlertState.FIRING:
                return AlertState.FIRING
            if a.state is AlertState.PENDING:
                best = AlertState.PENDING
        return best

    def active_alerts(self) -> list[ActiveAlert]:
        """Pending and firing alerts, sorted by labels."""
        return sorted(
            (a for a in self.active.values() if a.state is not AlertState.INACTIVE),
            key=lambda a: a.labels,
        )

    async def eval(
        self, ts_ms: int, query: QueryFunc, *, query_ts_ms: int | None = None, limit: int = 0
    ) -> Output:
        """Advance every alert to `ts_ms`; returns the ALERTS / ALERTS_FOR_STATE series.

        `query_ts_ms` is where the expression is evaluated (the group's query
        offset before `ts_ms`); the series are written there too.
        """
        at = ts_ms if query_ts_ms is None else query_ts_ms
        vector = await query(self.spec.expr, at)
        fresh = await self._alerts_of(vector, at, ts_ms, query)
        for key, alert in fresh.items():
            old = self.active.get(key)
            if old is not None and old.state is not AlertState.INACTIVE:
                old.value = alert.value
                old.annotations = alert.annotations
                continue
            self.active[key] = alert
        keep_for = self.spec.keep_firing_for_ms
        labels: list[Labels] = []
        values: list[float] = []
        pending_or_firing = 0
        for key, a in list(self.active.items()):
            if key not in fresh:
                keep_firing = False
                if a.state is AlertState.FIRING and keep_for > 0:
                    if a.keep_firing_since_ms is None:
                        a.keep_firing_since_ms = ts_ms
                    keep_firing = ts_ms - a.keep_firing_since_ms < keep_for
                if a.state is AlertState.PENDING or (
                    a.resolved_at_ms is not None
                    and ts_ms - a.resolved_at_ms > RESOLVED_RETENTION_MS
                ):
                    del self.active[key]
                if a.state is not AlertState.INACTIVE and not keep_firing:
                    a.state = AlertState.INACTIVE
                    a.resolved_at_ms = ts_ms
                if not keep_firing:
                    continue
            else:
                a.keep_firing_since_ms = None
            pending_or_firing += 1
            if a.state is AlertState.PENDING and ts_ms - a.active_at_ms >= self.spec.for_ms:
                a.state = AlertState.FIRING
                a.fired_at_ms = ts_ms
            if self.restored:
                labels.append(_series(a.labels, ALERT_METRIC, a.state.value))
                values.append(1.0)
                labels.append(_series(a.labels, ALERT_FOR_STATE_METRIC, None))
                values.append(float(a.active_at_ms // 1000))
        if limit > 0 and pending_or_firing > limit:
            self.active = {}
            raise RuleError(f"exceeded limit of {limit} with {pending_or_firing} alerts")
        return Output(labels, np.asarray(values, dtype=np.float64))

    async def _alerts_of(
        self, vector: Vector, query_ts_ms: int, ts_ms: int, query: QueryFunc
    ) -> dict[Labels, ActiveAlert]:
        """One pending alert per result series, templates expanded, keyed by labels."""
        values = vector.values.tolist()
        if self._uses_query:
            runner = _threaded_query(query, query_ts_ms, asyncio.get_running_loop())
            expanded = await asyncio.to_thread(self._expand_all, vector.labels, values, runner)
        else:
            expanded = self._expand_all(vector.labels, values, None)
        out: dict[Labels, ActiveAlert] = {}
        for (labels, notes), value in zip(expanded, values, strict=True):
            if labels in out:
                raise RuleError(
                    "vector contains metrics with the same labelset after applying alert labels"
                )
            out[labels] = ActiveAlert(labels, notes, AlertState.PENDING, value, ts_ms)
        return out

    def _expand_all(
        self,
        series: list[Labels],
        values: list[float],
        runner: Callable[[str], QueryResult] | None,
    ) -> list[tuple[Labels, Annotations]]:
        spec = self.spec
        base = (*self._extra_labels, (ALERT_NAME, spec.name))
        if not self._templated:
            static_labels = spec.labels
            return [
                (
                    Labels.from_pairs((*lbl.without_metric_name(), *static_labels, *base)),
                    spec.annotations,
                )
                for lbl in series
            ]
        funcs = functions(runner, self.context.external_url)
        out = []
        for lbl, value in zip(series, values, strict=True):
            data = alert_data(lbl.to_dict(), self._external, self.context.external_url, value)
            rule_labels = [
                (name, _expand(t, data, funcs))
                for name, t in zip(self._label_names, spec.label_templates, strict=True)
            ]
            annotations = tuple(
                (name, _expand(t, data, funcs))
                for name, t in zip(self._annotation_names, spec.annotation_templates, strict=True)
            )
            out.append(
                (Labels.from_pairs((*lbl.without_metric_name(), *rule_labels, *base)), annotations)
            )
        return out

    def alerts_to_send(
        self, ts_ms: int, *, resend_delay_ms: int, interval_ms: int, generator_url: str
    ) -> list[Alert]:
        """Alerts that are due to be (re)sent at `ts_ms` (Prometheus's `sendAlerts`)."""
        out = []
        delta = max(resend_delay_ms, interval_ms)
        for a in self.active.values():
            if not _needs_sending(a, ts_ms, resend_delay_ms):
                continue
            a.last_sent_ms = ts_ms
            a.valid_until_ms = ts_ms + 4 * delta  # two missed evaluations or sends
            out.append(
                Alert(
                    labels=a.labels,
                    annotations=a.annotations,
                    starts_at_ms=a.fired_at_ms if a.fired_at_ms is not None else a.active_at_ms,
                    ends_at_ms=a.valid_until_ms if a.resolved_at_ms is None else a.resolved_at_ms,
                    generator_url=generator_url,
                    resolved=a.resolved_at_ms is not None,
                )
            )
        return out

    def copy_state_from(self, other: AlertingRule) -> None:
        """Take over another rule's alerts (a reload that changed the group)."""
        self.active.update(other.active)

    def restore(
        self, series_value: dict[Labels, tuple[int, float]], now_ms: int, *, grace_ms: int
    ) -> int:
        """Put `activeAt` back from ALERTS_FOR_STATE after a restart; returns how many.

        `series_value` maps an alert's labels to the last (timestamp, value) of
        its ALERTS_FOR_STATE series. As Prometheus does: an alert that was
        firing when the service went down keeps its `activeAt`, so it fires
        again at once; a pending alert does not count the downtime towards
        its `for`, and with a `for` of at least `grace_ms` it waits at least
        `grace_ms` more. Unlike Prometheus, rules with a shorter `for` are
        restored too (their pending alerts just resume).
        """
        restored = 0
        hold = self.spec.for_ms
        for a in self.active.values():
            found = series_value.get(a.labels)
            if found is None:
                continue
            down_at_ms, active_at_s = found
            down_at_ms = down_at_ms // 1000 * 1000
            active_at_ms = int(active_at_s) * 1000
            remaining = hold - (down_at_ms - active_at_ms)
            if remaining > 0:
                if hold >= grace_ms and remaining < grace_ms:
                    active_at_ms = now_ms + grace_ms - hold
                else:
                    active_at_ms += now_ms - down_at_ms
            a.active_at_ms = active_at_ms
            restored += 1
        self.restored = True
        return restored


def _needs_sending(a: ActiveAlert, ts_ms: int, resend_delay_ms: int) -> bool:
    if a.state is AlertState.PENDING:
        return False
    if a.resolved_at_ms is not None and (
        a.last_sent_ms is None or a.resolved_at_ms > a.last_sent_ms
    ):
        return True
    return a.last_sent_ms is None or a.last_sent_ms + resend_delay_ms < ts_ms


def _series(labels: Labels, metric: str, state: str | None) -> Labels:
    pairs = [*labels, (METRIC_NAME, metric)]
    if state is not None:
        pairs.append((ALERT_STATE, state))
    return Labels.from_pairs(pairs)


def _expand(template: AlertTemplate, data: AlertData, funcs: Mapping[str, Function]) -> str:
    text = template.expand(data, funcs)
    if text.startswith("<error expanding template:"):
        log.warning("expanding alert template failed", extra={"rule": template.name, "err": text})
    return text


def _threaded_query(
    query: QueryFunc, ts_ms: int, loop: asyncio.AbstractEventLoop
) -> Callable[[str], QueryResult]:
    """`query` for templates expanding in a worker thread: runs on the event loop, waits."""

    def run(expr: str) -> QueryResult:
        future = asyncio.run_coroutine_threadsafe(query(expr, ts_ms), loop)
        try:
            vector = future.result()
        except QueryError as exc:
            raise FunctionError(str(exc)) from None
        return QueryResult(
            Sample(LabelMap(lbl), float(v))
            for lbl, v in zip(vector.labels, vector.values.tolist(), strict=True)
        )

    return run


__all__ = [
    "ALERT_FOR_STATE_METRIC",
    "ALERT_METRIC",
    "ActiveAlert",
    "AlertingRule",
    "Output",
    "RecordingRule",
    "RuleError",
    "RuleStatus",
    "TemplateContext",
]
