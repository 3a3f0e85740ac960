"""Groups: their schedule, restoring alerts after a restart, cluster scope, reloads."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import CollectorRegistry

from alerting.clock import ManualClock
from alerting.group import Group, RuleOptions
from alerting.rulefile import parse_groups
from alerting.rules import AlertingRule
from alerting.types import Alert, AlertState, QueryFunc, RuleHealth
from storage.db import Storage
from storage.interfaces import Queryable
from tests.alerting.conftest import T0, Rig, make_manager
from tests.support.waiting import until

S = 10_000

FIRING = """
groups:
- name: g
  interval: 10s
  rules:
  - alert: Down
    expr: up == 0
    for: {for_}
"""


def alerting_rule(group: Group, index: int = 0) -> AlertingRule:
    rule = group.rules[index]
    assert isinstance(rule, AlertingRule)
    return rule


async def test_evaluation_grid_is_stable_and_spread_by_name(rig: Rig) -> None:
    group = await rig.load(FIRING.format(for_="0s"))
    ts = group.eval_timestamp(T0 + 123_456)
    assert T0 + 123_456 - S < ts <= T0 + 123_456
    # The same grid from any moment: the offset is a hash of file and group name.
    assert (ts - group.eval_timestamp(T0 + 987_654_321)) % S == 0
    other = await rig.load(FIRING.format(for_="0s").replace("name: g", "name: h"))
    assert (ts - other.eval_timestamp(T0 + 123_456)) % S != 0


async def test_run_loop_evaluates_on_the_grid_and_counts_missed_ticks(tmp_path: Path) -> None:
    """An evaluation that overruns its interval is measured; the ticks it overran are
    counted as missed, never run late or concurrently."""
    storage = await Storage.open(tmp_path / "data")
    clock = ManualClock(T0)
    registry = CollectorRegistry()
    manager = make_manager(storage, clock, [], registry)
    calls: list[int] = []
    running = 0

    async def slow_query(expr: str, ts_ms: int) -> object:
        nonlocal running
        running += 1
        assert running == 1, "evaluations overlap"
        calls.append(ts_ms)
        if len(calls) == 2:
            await clock.advance(35_000)  # this evaluation takes 3.5 intervals
        running -= 1
        return await inner(expr, ts_ms)

    try:
        await manager.update(
            parse_groups(
                "groups:\n- name: g\n  interval: 10s\n  rules:\n"
                "  - record: r\n    expr: vector(1)\n",
                file="r.yml",
            ),
            run=False,
        )
        group = manager.groups()[0]
        make_query = group.make_query

        def slowed(queryable: Queryable) -> QueryFunc:
            nonlocal inner
            inner = make_query(queryable)
            return slow_query  # type: ignore[return-value]

        inner: QueryFunc = make_query(storage)
        group.make_query = slowed
        group.should_restore = False
        first = group.eval_timestamp(T0) + S
        task = asyncio.create_task(group.run())
        await clock.set(first)
        await clock.set(first + S)  # the slow one, which ends at first + 45 s
        await until(lambda: len(calls) == 3)  # ...then first + 40 s's, late, at once
        await clock.set(first + 5 * S)
        await until(lambda: len(calls) == 4)
        assert calls == [first, first + S, first + 4 * S, first + 5 * S]
        key = "r.yml;g"
        assert (
            registry.get_sample_value(
                "aggregator_rule_group_iterations_missed_total", {"rule_group": key}
            )
            == 2
        )
        assert (
            registry.get_sample_value("aggregator_rule_group_iterations_total", {"rule_group": key})
            == 6
        )  # four run plus two missed
        assert (
            registry.get_sample_value("aggregator_rule_group_interval_seconds", {"rule_group": key})
            == 10
        )
        assert (
            registry.get_sample_value(
                "aggregator_rule_group_last_duration_seconds", {"rule_group": key}
            )
            is not None
        )
        task.cancel()
    finally:
        await manager.stop()
        await storage.close()


async def _fire_then_restart(
    tmp_path: Path, for_: str, ticks: int, options: RuleOptions | None = None
) -> tuple[Rig, Rig, Group]:
    """Run a Down alert for `ticks` evaluations, then start a second manager on the same
    storage (a restart) and evaluate twice; returns both and the new group."""
    storage = await Storage.open(tmp_path / "data")
    clock = ManualClock(T0)
    sent: list[Alert] = []
    registry = CollectorRegistry()
    before = Rig(
        storage, make_manager(storage, clock, sent, registry, options), clock, sent, registry
    )
    group = await before.load(FIRING.format(for_=for_))
    for k in range(ticks):
        before.write(T0 + k * S, {'up{instance="a"}': 0})
        await group.eval(T0 + k * S)
    await before.manager.stop()
    registry2 = CollectorRegistry()
    after = Rig(
        storage, make_manager(storage, clock, sent, registry2, options), clock, sent, registry2
    )
    new = await after.load(FIRING.format(for_=for_), restore=True)
    assert new.should_restore
    return before, after, new


async def test_restart_keeps_a_firing_alert_active_since_its_first_evaluation(
    tmp_path: Path,
) -> None:
    before, after, group = await _fire_then_restart(tmp_path, "20s", ticks=5)
    try:
        restart = T0 + 20 * S  # down for 150 s, well under the 1 h outage tolerance
        for k in range(2):
            ts = restart + k * S
            after.write(ts, {'up{instance="a"}': 0})
            await after.clock.set(ts)
            await group.eval(ts)
            # Until restored, no ALERTS are written (Prometheus's order: the first
            # evaluations may run before the recording rules an alert reads are fresh).
            written = await after.query("timestamp(ALERTS)", ts)
            assert all(t <= (T0 + 4 * S) / 1000 for t in written.values()), written
        await group.restore_for_state(restart + S)
        after.write(restart + 2 * S, {'up{instance="a"}': 0})
        await group.eval(restart + 2 * S)
        [alert] = alerting_rule(group).active.values()
        # activeAt is restored from ALERTS_FOR_STATE, which holds whole seconds.
        assert (alert.state, alert.active_at_ms) == (AlertState.FIRING, T0)
        assert await after.query("ALERTS", restart + 2 * S) == {
            'ALERTS{alertname="Down", alertstate="firing", instance="a"}': 1.0
        }
    finally:
        await before.storage.close()


async def test_restart_restores_rules_with_a_short_for_too(tmp_path: Path) -> None:
    """Prometheus skips alerts whose `for` is under its 10 m grace period; here they are
    restored too, so a firing alert with `for: 0s` keeps its activeAt."""
    before, after, group = await _fire_then_restart(tmp_path, "0s", ticks=3)
    try:
        restart = T0 + 10 * S
        for k in range(2):
            after.write(restart + k * S, {'up{instance="a"}': 0})
            await group.eval(restart + k * S)
        await group.restore_for_state(restart + S)
        [alert] = alerting_rule(group).active.values()
        assert alert.active_at_ms == T0
    finally:
        await before.storage.close()


async def test_restart_does_not_count_the_downtime_towards_a_pending_alert(
    tmp_path: Path,
) -> None:
    before, after, group = await _fire_then_restart(tmp_path, "5m", ticks=3)  # pending 20 s
    try:
        restart = T0 + 20 * S
        for k in range(2):
            after.write(restart + k * S, {'up{instance="a"}': 0})
            await group.eval(restart + k * S)
        now = restart + S
        await group.restore_for_state(now)
        [alert] = alerting_rule(group).active.values()
        # It had been pending 20 s when the service went down at T0 + 20 s: it resumes
        # with 280 s to go, the downtime not counted.
        assert alert.active_at_ms == T0 + (now - (T0 + 2 * S))
        assert alert.state is AlertState.PENDING
    finally:
        await before.storage.close()


async def test_restart_gives_a_nearly_due_alert_the_grace_period(tmp_path: Path) -> None:
    """With a `for` of at least the grace period, an alert that had little time left
    waits the grace period after the restore (Prometheus's rule, here with 1 m)."""
    options = RuleOptions(evaluation_interval_ms=S, for_grace_period_ms=60_000)
    before, after, group = await _fire_then_restart(tmp_path, "2m", ticks=10, options=options)
    try:
        restart = T0 + 20 * S  # pending 90 s of 120 s when it went down
        for k in range(2):
            after.write(restart + k * S, {'up{instance="a"}': 0})
            await group.eval(restart + k * S)
        now = restart + S
        await group.restore_for_state(now)
        [alert] = alerting_rule(group).active.values()
        assert alert.active_at_ms == now + 60_000 - 120_000  # fires one minute from now
    finally:
        await before.storage.close()


async def test_cluster_scoped_group_sees_one_cluster_and_labels_its_output(rig: Rig) -> None:
    group = await rig.load(
        """
groups:
- name: eu-only
  cluster: eu
  rules:
  - record: nodes:up:sum
    expr: sum(node_up)
  - alert: NodeDown
    expr: node_up == 0
"""
    )
    rig.write(
        T0,
        {
            'node_up{cluster="eu", node="1"}': 0,
            'node_up{cluster="eu", node="2"}': 1,
            'node_up{cluster="us", node="1"}': 0,
        },
    )
    await group.eval(T0)
    assert await rig.query("nodes:up:sum", T0) == {'nodes:up:sum{cluster="eu"}': 1.0}
    [alert] = alerting_rule(group, 1).active.values()
    assert dict(alert.labels) == {"alertname": "NodeDown", "cluster": "eu", "node": "1"}


async def test_reload_keeps_unchanged_groups_and_the_state_of_changed_ones(rig: Rig) -> None:
    text = (
        FIRING.format(for_="0s")
        + """
- name: other
  interval: 10s
  rules:
  - record: r
    expr: vector(1)
"""
    )
    await rig.load(text)
    down, other = rig.manager.groups()
    rig.write(T0, {'up{instance="a"}': 0})
    await down.eval(T0)
    await other.eval(T0)
    # Change only `other` (a label on its rule): `g` keeps running as it was.
    changed = text.replace("expr: vector(1)", "expr: vector(1)\n    labels: {x: y}")
    await rig.manager.update(
        parse_groups(changed, file="rules.yml"),
        run=False,
    )
    down2, other2 = rig.manager.groups()
    assert down2 is down
    assert other2 is not other
    # `r` became `r{x="y"}`: the old series is marked stale at the new group's next run.
    await other2.eval(T0 + S)
    assert await rig.query("r", T0 + S) == {'r{x="y"}': 1.0}
    # A changed alerting group takes its alerts over: activeAt is kept.
    changed_alert = changed.replace("for: 0s", "for: 0s\n    labels: {severity: page}")
    await rig.manager.update(
        parse_groups(
            changed_alert.replace("labels: {severity: page}", "annotations: {a: b}"),
            file="rules.yml",
        ),
        run=False,
    )
    down3 = rig.manager.groups()[0]
    assert down3 is not down
    [alert] = alerting_rule(down3).active.values()
    assert (alert.state, alert.active_at_ms) == (AlertState.FIRING, T0)


async def test_removed_group_marks_its_series_stale(rig: Rig) -> None:
    await rig.load(FIRING.format(for_="0s"))
    [group] = rig.manager.groups()
    rig.write(T0, {'up{instance="a"}': 0})
    await group.eval(T0)
    assert await rig.query("ALERTS", T0) != {}
    await rig.clock.set(T0 + 1000)
    await rig.manager.update([], run=False)
    assert rig.manager.groups() == []
    assert await rig.query("ALERTS", T0 + 1000) == {}
    assert rig.metric("aggregator_rule_group_rules", rule_group="rules.yml;g") is None


async def test_a_failing_rule_does_not_stop_the_next(rig: Rig) -> None:
    group = await rig.load(
        """
groups:
- name: g
  rules:
  - record: bad
    expr: 'label_replace(up, "a", "b", "c", "(")'
  - record: good
    expr: sum(up)
"""
    )
    rig.write(T0, {'up{i="1"}': 1})
    await group.eval(T0)
    bad, good = group.rules
    assert bad.status.health is RuleHealth.ERR
    assert "(" in bad.status.last_error
    assert good.status.health is RuleHealth.OK
    assert await rig.query("good", T0) == {"good": 1.0}
