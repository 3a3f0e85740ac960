"""The agent's rule groups: evaluated over the window, results handed to the outbox.

The rules are the global ruler's own (`alerting.rules`: the alert state
machine, `for`, `keep_firing_for`, templates; recording rules), run by the
same PromQL engine over the agent's window. What leaves the agent:

- recording rules: every result sample (also written back to the window, so
  later rules can use it, as Prometheus does);
- alerting rules: the alerts due to be sent (new, resolved, and re-sent every
  `resend_delay`), in evaluation order; the ALERTS series stay local;
- threshold filters: the raw samples of the series a filter selects, from
  `before` the condition first held until `after` it last held, each sample
  once (see `FilterRule`).

A new rule set replaces the groups that changed; a group that cannot load is
reported and its previous version keeps running. Alert state carries over
to a changed group's rules with the same name and labels.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import orjson

from aggregator.edge.ruleset import EdgeGroup, EdgeRulesError, FilterSpec, parse_group_obj
from aggregator.edge.window import Window
from alerting.query import EngineQuery
from alerting.rules import AlertingRule, RecordingRule, TemplateContext
from alerting.types import Alert
from promql.engine import Engine
from storage.labels import METRIC_NAME, Labels, Matcher

try:  # CPython's own BLAKE2: `hashlib` would load OpenSSL's libcrypto (2-4 MB resident)
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - interpreters without it
    from hashlib import blake2b

log = logging.getLogger(__name__)

RESEND_DELAY_MS = 60_000


class Outbox(Protocol):
    """Where results go (the uplink): samples are batched, alerts flush them first."""

    def samples(self, labels: Sequence[Labels], ts: np.ndarray, values: np.ndarray) -> None: ...

    def alerts(self, alerts: Sequence[Alert]) -> None: ...


@dataclass(slots=True)
class _Forwarding:
    until_ms: int
    sent_ms: int


class FilterRule:
    """Forward raw series while `expr` returns results, plus `before` and `after`.

    The series forwarded for one result are those of `series` (default: any
    series of the window) whose labels include the result's labels (its
    metric name too, when it kept one): `node_load1 > 4` forwards
    `node_load1` of the instances over 4; `a / b < 0.1` with `series: a`
    forwards the `a` series of the breaching label sets.
    """

    def __init__(self, spec: FilterSpec) -> None:
        self.spec = spec
        self.active: dict[Labels, _Forwarding] = {}
        self.health = "unknown"
        self.last_error = ""

    @property
    def name(self) -> str:
        return self.spec.name

    async def eval(self, ts_ms: int, query: EngineQuery, window: Window, out: Outbox) -> None:
        vector = await query(self.spec.expr, ts_ms)
        base: list[Matcher] = []
        if self.spec.series is not None:
            base = _selector_matchers(self.spec.series)
        for result in vector.labels:
            matchers = base + [Matcher.eq(k, v) for k, v in result if k != METRIC_NAME or not base]
            for sid in window.matching(matchers):
                lbl = window.label_of(sid)
                state = self.active.get(lbl)
                until = ts_ms + self.spec.after_ms
                if state is None:
                    self.active[lbl] = _Forwarding(until, ts_ms - self.spec.before_ms - 1)
                else:
                    state.until_ms = max(state.until_ms, until)
        done = []
        for lbl, state in self.active.items():
            end = min(ts_ms, state.until_ms)
            if end > state.sent_ms:
                found = window.id_of(lbl)
                if found is not None:
                    ss = window.select_ids([found], state.sent_ms + 1, end)
                    if ss.num_samples:
                        out.samples([lbl] * ss.num_samples, ss.timestamps, ss.values)
                state.sent_ms = end
            if state.sent_ms >= state.until_ms:
                done.append(lbl)
        for lbl in done:
            del self.active[lbl]


def _selector_matchers(text: str) -> list[Matcher]:
    from promql import ast
    from promql.parser import parse_expr

    expr = parse_expr(text)
    if not isinstance(expr, ast.VectorSelector):
        raise EdgeRulesError([f"series: {text!r} is not a series selector"])
    return list(expr.matchers)


Rule = RecordingRule | AlertingRule | FilterRule


@dataclass(slots=True)
class RunningGroup:
    group: EdgeGroup
    digest: str
    rules: list[Rule]
    interval_ms: int
    task: asyncio.Task[None] | None = None
    errors: dict[str, str] = field(default_factory=dict)


def group_digest(raw: dict[str, Any]) -> str:
    """What identifies a group's version (key order does not matter)."""
    return blake2b(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS), digest_size=32).hexdigest()


class EdgeRules:
    """The groups the host assigned: load, replace, run; results to the outbox."""

    def __init__(
        self,
        window: Window,
        outbox: Outbox,
        *,
        default_interval_ms: int = 60_000,
        engine: Engine | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window = window
        self.outbox = outbox
        self.default_interval_ms = default_interval_ms
        # One evaluation thread: an edge node has a core or two, and every extra thread
        # costs a malloc arena.
        self.engine = engine or Engine(
            lookback_ms=300_000,
            timeout_s=30.0,
            executor=ThreadPoolExecutor(1, thread_name_prefix="edge-eval"),
        )
        self.query = EngineQuery(self.engine, window)
        self.clock = clock
        self.groups: dict[str, RunningGroup] = {}
        self.load_errors: list[str] = []
        self.evaluations = 0

    def load(self, raw_groups: Sequence[Any]) -> list[str]:
        """Replace the rule set; returns (and keeps) the problems of groups not loaded."""
        problems: list[str] = []
        wanted: dict[str, tuple[EdgeGroup, str]] = {}
        failed: set[str] = set()
        for i, raw in enumerate(raw_groups):
            name = raw.get("name") if isinstance(raw, dict) else None
            try:
                group = parse_group_obj(raw, "host rules")
            except EdgeRulesError as exc:
                problems.extend(exc.problems)
                failed.add(str(name) if name else f"#{i}")
                continue
            wanted[group.name] = (group, group_digest(raw))
        for name in list(self.groups):
            if name not in wanted and name not in failed:
                self._stop(self.groups.pop(name))
        for name, (group, digest) in wanted.items():
            old = self.groups.get(name)
            if old is not None and old.digest == digest:
                continue
            running = RunningGroup(
                group, digest, self._rules(group), group.interval_ms or self.default_interval_ms
            )
            if old is not None:
                self._carry_state(old, running)
                self._stop(old)
            self.groups[name] = running
            running.task = asyncio.create_task(self._run(running), name=f"edge-group-{name}")
        self.load_errors = problems
        if problems:
            log.warning("edge rules not loaded", extra={"problems": "; ".join(problems)})
        return problems

    def _rules(self, group: EdgeGroup) -> list[Rule]:
        out: list[Rule] = []
        for spec in group.rules:
            if isinstance(spec, FilterSpec):
                out.append(FilterRule(spec))
            elif spec.is_alert:
                out.append(AlertingRule(spec, TemplateContext()))
            else:
                out.append(RecordingRule(spec))
        return out

    @staticmethod
    def _carry_state(old: RunningGroup, new: RunningGroup) -> None:
        olds = {r.spec.identity(): r for r in old.rules if isinstance(r, AlertingRule)}
        for r in new.rules:
            if isinstance(r, AlertingRule) and (prev := olds.get(r.spec.identity())):
                r.copy_state_from(prev)

    @staticmethod
    def _stop(group: RunningGroup) -> None:
        if group.task is not None:
            group.task.cancel()

    async def stop(self) -> None:
        tasks = [g.task for g in self.groups.values() if g.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, group: RunningGroup) -> None:
        interval = group.interval_ms
        while True:
            now_ms = int(self.clock() * 1000)
            next_ms = (now_ms // interval + 1) * interval
            await asyncio.sleep((next_ms - now_ms) / 1000)
            try:
                await self.eval_group(group, next_ms)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("edge group crashed", extra={"group": group.group.name})

    async def eval_group(self, group: RunningGroup, ts_ms: int) -> None:
        """Evaluate every rule of `group` at `ts_ms`, in order."""
        self.window.truncate(ts_ms)
        try:
            for rule in group.rules:
                try:
                    await self._eval_rule(rule, group, ts_ms)
                except Exception as exc:
                    group.errors[rule.name] = str(exc)
                    _set_health(rule, "err", str(exc))
                    continue
                group.errors.pop(rule.name, None)
                _set_health(rule, "ok", "")
        finally:
            self.window.release()
        self.evaluations += 1

    async def _eval_rule(self, rule: Rule, group: RunningGroup, ts_ms: int) -> None:
        if isinstance(rule, FilterRule):
            await rule.eval(ts_ms, self.query, self.window, self.outbox)
        elif isinstance(rule, RecordingRule):
            out = await rule.eval(ts_ms, self.query)
            if len(out):
                self.window.append(out.labels, ts_ms, out.values)
                self.outbox.samples(out.labels, np.full(len(out), ts_ms, np.int64), out.values)
        else:
            out = await rule.eval(ts_ms, self.query)
            if len(out):
                self.window.append(out.labels, ts_ms, out.values)
            alerts = rule.alerts_to_send(
                ts_ms,
                resend_delay_ms=RESEND_DELAY_MS,
                interval_ms=group.interval_ms,
                generator_url="",
            )
            if alerts:
                self.outbox.alerts(alerts)

    def status(self) -> list[dict[str, str]]:
        """Health of every rule (what the host shows under the cluster)."""
        out = []
        for g in self.groups.values():
            for r in g.rules:
                health, error = _health(r)
                out.append(
                    {"group": g.group.name, "rule": r.name, "health": health, "error": error}
                )
        return out


def _set_health(rule: Rule, health: str, error: str) -> None:
    if isinstance(rule, FilterRule):
        rule.health, rule.last_error = health, error
    else:
        from alerting.types import RuleHealth

        rule.status.health = RuleHealth.OK if health == "ok" else RuleHealth.ERR
        rule.status.last_error = error


def _health(rule: Rule) -> tuple[str, str]:
    if isinstance(rule, FilterRule):
        return rule.health, rule.last_error
    return rule.status.health.value, rule.status.last_error
