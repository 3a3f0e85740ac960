"""A rule group: its schedule, its evaluation, and the state it carries across runs.

Scheduling follows Prometheus (`rules/group.go`, 2.42): a group's evaluations
sit on a fixed grid `k * interval + offset`, where the offset is a hash of the
file and group name modulo the interval, so that many groups spread over the
interval and a restart keeps the same grid. Evaluations of one group never
overlap: if one takes longer than the interval, the ticks it overran are
counted as missed and the next one is taken from the grid. Rules run in
order; each rule's output is appended (and so visible to the next rule) at
once; the whole evaluation is committed to the WAL at its end.

Series a rule wrote last time and not this time get a stale marker, as do all
of a group's series when it is removed by a reload. After a start, the group
evaluates twice, then restores its alerts' `activeAt` from `ALERTS_FOR_STATE`,
and only from the third evaluation on writes `ALERTS` (Prometheus's order:
before that, recording rules the alerts depend on may not be fresh).
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from alerting.clock import Clock
from alerting.metrics import RuleMetrics, group_key
from alerting.rulefile import GroupSpec
from alerting.rules import (
    ALERT_FOR_STATE_METRIC,
    ALERT_METRIC,
    ALERT_NAME,
    AlertingRule,
    Output,
    RecordingRule,
    RuleError,
    TemplateContext,
)
from alerting.selectcache import SelectCache
from alerting.types import Alert, QueryFunc, RuleHealth
from promql.errors import QueryCanceled, QueryError
from promql.eval.gofmt import labels_hash
from remote_write.batch import STALE_NAN, WriteBatch, is_stale_nan
from storage.errors import StorageError
from storage.interfaces import Appendable, Appender, Queryable
from storage.labels import CLUSTER_LABEL, METRIC_NAME, Labels, Matcher

log = logging.getLogger(__name__)

Rule = AlertingRule | RecordingRule
NotifyFunc = Callable[[list[Alert]], None]


@dataclass(frozen=True, slots=True)
class RuleOptions:
    """Settings every group shares (Prometheus's flags of the same meaning)."""

    evaluation_interval_ms: int = 60_000
    query_offset_ms: int = 0
    external_url: str = ""
    external_labels: tuple[tuple[str, str], ...] = ()
    outage_tolerance_ms: int = 3_600_000  # --rules.alert.for-outage-tolerance
    for_grace_period_ms: int = 600_000  # --rules.alert.for-grace-period
    resend_delay_ms: int = 60_000  # --rules.alert.resend-delay


@dataclass(slots=True)
class GroupEnv:
    """What groups evaluate with: a query function over a given Queryable, the Queryable
    of each cluster scope, where results are written, and where alerts go."""

    query_for: Callable[[Queryable], QueryFunc]
    queryable_for: Callable[[str | None], Queryable]
    appendable: Appendable
    notify: NotifyFunc
    clock: Clock
    metrics: RuleMetrics
    options: RuleOptions = field(default_factory=RuleOptions)


class Group:
    """One group's rules and state; `run()` is its task, `eval()` one iteration."""

    def __init__(self, spec: GroupSpec, env: GroupEnv, *, restore: bool = False) -> None:
        self.spec = spec
        self.env = env
        opts = env.options
        self.interval_ms = spec.interval_ms or opts.evaluation_interval_ms
        self.query_offset_ms = (
            spec.query_offset_ms if spec.query_offset_ms is not None else opts.query_offset_ms
        )
        context = TemplateContext(opts.external_labels, opts.external_url)
        extra = ((CLUSTER_LABEL, spec.cluster),) if spec.cluster else ()
        self.rules: list[Rule] = [
            AlertingRule(r, context, extra_labels=extra) if r.is_alert else RecordingRule(r)
            for r in spec.rules
        ]
        self.key = group_key(spec.file, spec.name)
        self.queryable = env.queryable_for(spec.cluster)
        self.make_query = env.query_for
        self.should_restore = restore
        self.previous: list[set[Labels]] = [set() for _ in self.rules]
        self.stale_series: list[Labels] = []  # left over by a reload, marked stale next time
        self.last_evaluation_ms: int | None = None
        self.evaluation_s = 0.0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        m = env.metrics
        m.group_interval.labels(self.key).set(self.interval_ms / 1000)
        m.group_rules.labels(self.key).set(len(self.rules))
        # counters exist at 0 from the start, as Prometheus's do: a dashboard's rate()
        # then shows "no failures" rather than "no data"
        for counter in (m.iterations_missed, m.iterations_scheduled, m.eval_total, m.eval_failures):
            counter.labels(self.key)
        for rule in self.rules:
            if isinstance(rule, AlertingRule) and not restore:
                rule.restored = True

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def file(self) -> str:
        return self.spec.file

    # -- schedule ------------------------------------------------------------------

    def eval_timestamp(self, now_ms: int) -> int:
        """The latest grid point at or before `now_ms` (Prometheus's `EvalTimestamp`)."""
        return evaluation_grid_point(self.file, self.name, self.interval_ms, now_ms)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"rule-group {self.key}")

    async def stop(self, *, mark_stale: bool) -> None:
        """End the task (after its current evaluation); optionally mark its series stale."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if mark_stale:
            await self.mark_all_stale(self.env.clock.now_ms())

    async def run(self) -> None:
        clock = self.env.clock
        ts = self.eval_timestamp(clock.now_ms()) + self.interval_ms
        await clock.sleep_until(ts)
        await self.iterate(ts)
        if self.should_restore:
            ts = await self._next(ts)
            await self.iterate(ts)
            await self.restore_for_state(clock.now_ms())
            self.should_restore = False
        while not self._stop.is_set():
            ts = await self._next(ts)
            await self.iterate(ts)

    async def _next(self, ts: int) -> int:
        """Sleep to the next grid point after `ts`, counting the ones already missed."""
        clock = self.env.clock
        interval = self.interval_ms
        missed = (clock.now_ms() - ts) // interval - 1
        if missed > 0:
            m = self.env.metrics
            m.iterations_missed.labels(self.key).inc(missed)
            m.iterations_scheduled.labels(self.key).inc(missed)
            ts += missed * interval
        ts += interval
        await clock.sleep_until(ts)
        return ts

    async def iterate(self, ts_ms: int) -> None:
        """One scheduled evaluation, timed and counted."""
        m = self.env.metrics
        m.iterations_scheduled.labels(self.key).inc()
        started_wall = self.env.clock.now_ms()
        started = time.perf_counter()
        await self.eval(ts_ms)
        took = time.perf_counter() - started
        m.iteration_duration.observe(took)
        m.last_duration.labels(self.key).set(took)
        m.last_evaluation.labels(self.key).set(started_wall / 1000)
        self.evaluation_s = took
        self.last_evaluation_ms = started_wall

    # -- evaluation ------------------------------------------------------------------

    async def eval(self, ts_ms: int) -> None:
        """Evaluate every rule at `ts_ms`, in order; write, mark stale, notify."""
        env = self.env
        m = env.metrics
        query_ts = ts_ms - self.query_offset_ms
        appender = env.appendable.appender(cluster=self.spec.cluster)
        cache = SelectCache(self.queryable)
        query = self.make_query(cache)
        samples = 0
        wrote = False
        for i, rule in enumerate(self.rules):
            if self._stop.is_set():
                break
            started_wall = env.clock.now_ms()
            started = time.perf_counter()
            m.eval_total.labels(self.key).inc()
            try:
                if isinstance(rule, AlertingRule):
                    output = await rule.eval(
                        ts_ms, query, query_ts_ms=query_ts, limit=self.spec.limit
                    )
                else:
                    output = await rule.eval(query_ts, query, limit=self.spec.limit)
            except (QueryError, RuleError, StorageError) as exc:
                self._failed(rule, i, exc)
                output = None
            if output is not None:
                rule.status.health = RuleHealth.OK
                rule.status.last_error = ""
                samples += len(output)
                if isinstance(rule, AlertingRule):
                    self._send(rule, ts_ms)
                if self._append(appender, rule, i, output, query_ts):
                    wrote = True
                    cache.invalidate(_written_names(rule))
            took = time.perf_counter() - started
            m.eval_duration.observe(took)
            rule.status.evaluation_s = took
            rule.status.last_evaluation_ms = started_wall
        if self.stale_series:
            self._write(appender, [], np.zeros(0), self.stale_series, query_ts)
            self.stale_series = []
            wrote = True
        m.group_samples.labels(self.key).set(samples)
        if wrote:
            try:
                await appender.commit()
            except StorageError as exc:
                log.warning("rule results not durable", extra={"group": self.key, "err": str(exc)})

    def _failed(self, rule: Rule, index: int, exc: Exception) -> None:
        rule.status.health = RuleHealth.ERR
        rule.status.last_error = str(exc)
        self.env.metrics.eval_failures.labels(self.key).inc()
        if not isinstance(exc, QueryCanceled):
            log.warning(
                "evaluating rule failed",
                extra={"group": self.key, "rule": rule.name, "index": index, "err": str(exc)},
            )

    def _send(self, rule: AlertingRule, ts_ms: int) -> None:
        opts = self.env.options
        alerts = rule.alerts_to_send(
            ts_ms,
            resend_delay_ms=opts.resend_delay_ms,
            interval_ms=self.interval_ms,
            generator_url=generator_url(opts.external_url, rule.spec.expr),
        )
        if alerts:
            self.env.notify(alerts)

    def _append(self, appender: Appender, rule: Rule, index: int, output: Output, ts: int) -> bool:
        current = set(output.labels)
        gone = [lbl for lbl in self.previous[index] if lbl not in current]
        self.previous[index] = current
        if not len(output) and not gone:
            return False
        rejected = self._write(appender, output.labels, output.values, gone, ts)
        if rejected:
            rule.status.health = RuleHealth.ERR
            rule.status.last_error = rejected
        return True

    def _write(
        self,
        appender: Appender,
        labels: Sequence[Labels],
        values: np.ndarray,
        stale: Sequence[Labels],
        ts: int,
    ) -> str:
        """Append output plus stale markers at `ts`; returns the first rejection, if any."""
        series = [tuple(lbl) for lbl in labels] + [tuple(lbl) for lbl in stale]
        if not series:
            return ""
        n = len(series)
        all_values = np.concatenate((values, np.full(len(stale), STALE_NAN)))
        batch = WriteBatch(
            series=series,
            series_idx=np.arange(n, dtype=np.int32),
            timestamps=np.full(n, ts, dtype=np.int64),
            values=all_values.astype(np.float64, copy=False),
        )
        try:
            result = appender.append(batch)
        except StorageError as exc:
            log.warning("rule results not written", extra={"group": self.key, "err": str(exc)})
            return f"writing results: {exc}"
        if result.rejected:
            first = result.rejected[0]
            level = (
                logging.DEBUG if first.reason in ("out_of_order", "duplicate") else logging.WARNING
            )
            log.log(level, "rule result discarded", extra={"group": self.key, "err": first.message})
            return first.message
        return ""

    async def mark_all_stale(self, ts_ms: int) -> None:
        """Stale markers for everything this group wrote last (it is going away)."""
        series = [lbl for prev in self.previous for lbl in prev] + self.stale_series
        if not series:
            return
        appender = self.env.appendable.appender(cluster=self.spec.cluster)
        if self._write(appender, [], np.zeros(0), series, ts_ms - self.query_offset_ms) == "":
            try:
                await appender.commit()
            except StorageError as exc:
                log.warning("stale markers not durable", extra={"group": self.key, "err": str(exc)})

    # -- state across reloads and restarts ---------------------------------------------

    def copy_state_from(self, old: Group) -> None:
        """Carry alerts and written series over from the group this one replaces.

        Rules are matched by name and labels, in order (Prometheus's `CopyState`);
        series of old rules with no match are marked stale at the next evaluation.
        """
        self.last_evaluation_ms = old.last_evaluation_ms
        self.evaluation_s = old.evaluation_s
        by_identity: dict[str, list[int]] = {}
        for i, rule in enumerate(old.rules):
            by_identity.setdefault(rule.spec.identity(), []).append(i)
        for i, rule in enumerate(self.rules):
            matches = by_identity.get(rule.spec.identity())
            if not matches:
                continue
            j = matches.pop(0)
            self.previous[i] = old.previous[j]
            old_rule = old.rules[j]
            if isinstance(rule, AlertingRule) and isinstance(old_rule, AlertingRule):
                rule.copy_state_from(old_rule)
        self.stale_series = list(old.stale_series)
        for indexes in by_identity.values():
            for j in indexes:
                self.stale_series.extend(old.previous[j])

    async def restore_for_state(self, now_ms: int) -> None:
        """Give active alerts back the `activeAt` they had before a restart."""
        opts = self.env.options
        mint = now_ms - opts.outage_tolerance_ms
        queryable = self.env.queryable_for(self.spec.cluster)
        for rule in self.rules:
            if not isinstance(rule, AlertingRule):
                continue
            if rule.active:
                try:
                    found = await _last_for_state(queryable, rule.name, mint, now_ms)
                except (StorageError, QueryError) as exc:
                    log.error(
                        "restoring 'for' state failed",
                        extra={"group": self.key, "rule": rule.name, "err": str(exc)},
                    )
                    found = {}
                count = rule.restore(found, now_ms, grace_ms=opts.for_grace_period_ms)
                if count:
                    log.info(
                        "'for' state restored",
                        extra={"group": self.key, "rule": rule.name, "alerts": count},
                    )
            rule.restored = True


async def _last_for_state(
    queryable: Queryable, alert_name: str, mint: int, maxt: int
) -> dict[Labels, tuple[int, float]]:
    """Alert labels -> last (timestamp, activeAt seconds) of its ALERTS_FOR_STATE series,
    for series whose last sample is not a stale marker."""
    matchers = [
        Matcher.eq(METRIC_NAME, ALERT_FOR_STATE_METRIC),
        Matcher.eq(ALERT_NAME, alert_name),
    ]
    async with queryable.querier(mint, maxt) as querier:
        found = await querier.select(matchers, mint, maxt)
    out: dict[Labels, tuple[int, float]] = {}
    ends = found.offsets[1:] - 1
    starts = found.offsets[:-1]
    for i, lbl in enumerate(found.labels):
        if ends[i] < starts[i]:
            continue
        last = int(ends[i])
        value = found.values[last : last + 1]
        if is_stale_nan(value)[0]:
            continue
        out[lbl.without_metric_name()] = (int(found.timestamps[last]), float(value[0]))
    return out


def _written_names(rule: Rule) -> tuple[str, ...]:
    """The metric names a rule's output (and its stale markers) carry."""
    if isinstance(rule, AlertingRule):
        return (ALERT_METRIC, ALERT_FOR_STATE_METRIC)
    return (rule.name,)


def evaluation_grid_point(file: str, name: str, interval_ms: int, now_ms: int) -> int:
    """The latest evaluation time of group (`file`, `name`) at or before `now_ms`.

    The grid is `k * interval + offset` with the offset Prometheus uses, the
    hash of the labels `{file, name}` modulo the interval in nanoseconds, so a
    group evaluates at the same times here as in a Prometheus given the same
    file path (its evaluations are then comparable sample for sample).
    """
    interval_ns = interval_ms * 1_000_000
    offset = labels_hash(Labels.from_pairs([("name", name), ("file", file)])) % interval_ns
    adj = now_ms * 1_000_000 - offset
    return (adj - adj % interval_ns + offset) // 1_000_000


def generator_url(external_url: str, expr: str) -> str:
    """Where an alert links back to: the expression on the query page (Prometheus's
    `TableLinkForExpression`)."""
    return (
        external_url.rstrip("/")
        + "/graph?g0.expr="
        + urllib.parse.quote_plus(expr, safe="")
        + "&g0.tab=1"
    )
