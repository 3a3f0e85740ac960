"""The alert state machine and recording rules, evaluated by hand over the real storage.

Time is a manual clock and evaluations are called directly: no sleeping.
"""

from __future__ import annotations

import math

from alerting.rules import AlertingRule, RecordingRule
from alerting.types import AlertState, RuleHealth
from remote_write.batch import STALE_NAN
from tests.alerting.conftest import T0, Rig

S = 10_000  # the group interval in these tests

DOWN = """
groups:
- name: g
  interval: 10s
  rules:
  - alert: Down
    expr: up == 0
    for: 20s
    labels: {severity: page}
    annotations: {summary: '{{ $labels.instance }} is down ({{ $value }})'}
"""


async def test_pending_then_firing_then_resolved(rig: Rig) -> None:
    group = await rig.load(DOWN)
    rule = group.rules[0]
    assert isinstance(rule, AlertingRule)
    states = []
    for k, up in enumerate([1, 0, 0, 0, 1, 1]):
        ts = T0 + k * S
        rig.write(ts, {'up{instance="a"}': up, 'up{instance="b"}': 1})
        await group.eval(ts)
        states.append([(a.state.value, a.active_at_ms - T0) for a in rule.active.values()])
    assert states == [
        [],
        [("pending", S)],
        [("pending", S)],  # active 10 s of the 20 s `for`
        [("firing", S)],
        [("inactive", S)],  # resolved at once when the series is gone
        [("inactive", S)],  # kept, so notifiers keep hearing that it resolved
    ]
    [alert] = rule.active.values()
    assert dict(alert.labels) == {"alertname": "Down", "instance": "a", "severity": "page"}
    assert alert.annotations == (("summary", "a is down (0)"),)
    assert alert.fired_at_ms == T0 + 3 * S
    assert alert.resolved_at_ms == T0 + 4 * S
    assert rule.status.health is RuleHealth.OK


async def test_alerts_series_follow_the_state(rig: Rig) -> None:
    group = await rig.load(DOWN)
    for k, up in enumerate([0, 0, 0, 1]):
        rig.write(T0 + k * S, {'up{instance="a"}': up})
        await group.eval(T0 + k * S)
    pending = 'ALERTS{alertname="Down", alertstate="pending", instance="a", severity="page"}'
    firing = 'ALERTS{alertname="Down", alertstate="firing", instance="a", severity="page"}'
    for_state = 'ALERTS_FOR_STATE{alertname="Down", instance="a", severity="page"}'
    assert await rig.query("ALERTS", T0 + S) == {pending: 1.0}
    # Firing at 20 s: the pending series got a stale marker, so it ends there.
    assert await rig.query("ALERTS", T0 + 2 * S) == {firing: 1.0}
    assert await rig.query("ALERTS_FOR_STATE", T0 + 2 * S) == {for_state: T0 // 1000}
    # Resolved at 30 s: every series of the alert is marked stale.
    assert await rig.query("ALERTS or ALERTS_FOR_STATE", T0 + 3 * S) == {}


async def test_an_alert_that_returns_after_resolving_starts_over(rig: Rig) -> None:
    group = await rig.load(DOWN)
    rule = group.rules[0]
    assert isinstance(rule, AlertingRule)
    for k, up in enumerate([0, 0, 0, 1, 0]):
        rig.write(T0 + k * S, {'up{instance="a"}': up})
        await group.eval(T0 + k * S)
    [alert] = rule.active.values()
    assert (alert.state, alert.active_at_ms, alert.resolved_at_ms) == (
        AlertState.PENDING,
        T0 + 4 * S,
        None,
    )


async def test_keep_firing_for_holds_a_firing_alert(rig: Rig) -> None:
    group = await rig.load(DOWN.replace("for: 20s", "for: 0s\n    keep_firing_for: 20s"))
    rule = group.rules[0]
    assert isinstance(rule, AlertingRule)
    seen = []
    for k, up in enumerate([0, 1, 1, 0, 1, 1, 1]):
        rig.write(T0 + k * S, {'up{instance="a"}': up})
        await group.eval(T0 + k * S)
        [a] = rule.active.values()
        seen.append(
            (a.state.value, None if a.keep_firing_since_ms is None else a.keep_firing_since_ms - T0)
        )
    assert seen == [
        ("firing", None),
        ("firing", S),  # gone from the result, kept firing since 10 s
        ("firing", S),
        ("firing", None),  # back: the keep-firing clock resets
        ("firing", 4 * S),
        ("firing", 4 * S),
        ("inactive", 4 * S),  # 20 s after it went away
    ]


async def test_same_labels_twice_is_an_error(rig: Rig) -> None:
    group = await rig.load(DOWN.replace("labels: {severity: page}", "labels: {instance: same}"))
    rig.write(T0, {'up{instance="a"}': 0, 'up{instance="b"}': 0})
    await group.eval(T0)
    rule = group.rules[0]
    assert rule.status.health is RuleHealth.ERR
    assert rule.status.last_error == (
        "vector contains metrics with the same labelset after applying alert labels"
    )
    assert rig.metric("aggregator_rule_evaluation_failures_total", rule_group="rules.yml;g") == 1


async def test_group_limit_fails_the_rule_and_forgets_its_alerts(rig: Rig) -> None:
    group = await rig.load(DOWN.replace("interval: 10s", "interval: 10s\n  limit: 1"))
    rig.write(T0, {'up{instance="a"}': 0, 'up{instance="b"}': 0})
    await group.eval(T0)
    rule = group.rules[0]
    assert isinstance(rule, AlertingRule)
    assert rule.status.last_error == "exceeded limit of 1 with 2 alerts"
    assert rule.active == {}


async def test_recording_rule_writes_through_the_appender_and_marks_stale(rig: Rig) -> None:
    group = await rig.load(
        """
groups:
- name: rec
  rules:
  - record: job:up:sum
    expr: sum by (job) (up)
    labels: {source: global}
  - record: answer
    expr: '42'
"""
    )
    rig.write(T0, {'up{job="a", i="1"}': 1, 'up{job="a", i="2"}': 1, 'up{job="b"}': 1})
    await group.eval(T0)
    assert await rig.query('{__name__=~"job:up:sum|answer"}', T0) == {
        'job:up:sum{job="a", source="global"}': 2.0,
        'job:up:sum{job="b", source="global"}': 1.0,
        "answer": 42.0,
    }
    # job b goes away (its target's series end): the recorded series ends with a
    # stale marker too, instead of lingering for the 5-minute lookback.
    rig.write(T0 + S, {'up{job="a", i="1"}': 1, 'up{job="a", i="2"}': 0, 'up{job="b"}': STALE_NAN})
    await group.eval(T0 + S)
    assert await rig.query("job:up:sum", T0 + S + 1) == {
        'job:up:sum{job="a", source="global"}': 1.0
    }
    assert (
        rig.metric("aggregator_rule_group_last_evaluation_samples", rule_group="rules.yml;rec") == 2
    )
    assert isinstance(group.rules[0], RecordingRule)


async def test_recording_rule_limit(rig: Rig) -> None:
    group = await rig.load(
        "groups:\n- name: rec\n  limit: 1\n  rules:\n  - record: r\n    expr: up\n"
    )
    rig.write(T0, {'up{i="1"}': 1, 'up{i="2"}': 1})
    await group.eval(T0)
    assert group.rules[0].status.last_error == "exceeded limit of 1 with 2 series"
    assert await rig.query("r", T0) == {}


async def test_notifications_firing_resent_and_resolved(rig: Rig) -> None:
    """Prometheus's cadence: firing alerts go out at once and again after the resend
    delay (30 s here); a resolved one goes out once, ending at its resolve time."""
    group = await rig.load(DOWN.replace("for: 20s", "for: 0s"))
    sends = []
    for k, up in enumerate([0, 0, 0, 0, 0, 1, 1]):
        rig.write(T0 + k * S, {'up{instance="a"}': up})
        rig.sent.clear()
        await group.eval(T0 + k * S)
        sends.append([(a.resolved, a.starts_at_ms - T0, a.ends_at_ms - T0) for a in rig.sent])
    valid = 4 * 30_000  # four times max(resend delay, interval): Prometheus's ValidUntil
    assert sends == [
        [(False, 0, valid)],
        [],
        [],
        [],
        [(False, 0, 4 * S + valid)],  # 40 s after the last send: past the 30 s delay
        [(True, 0, 5 * S)],
        [],
    ]


async def test_generator_url_links_the_expression(rig: Rig) -> None:
    group = await rig.load(DOWN.replace("for: 20s", "for: 0s"))
    rig.write(T0, {'up{instance="a"}': 0})
    await group.eval(T0)
    [alert] = rig.sent
    assert alert.generator_url == "/graph?g0.expr=up+%3D%3D+0&g0.tab=1"


async def test_nan_values_are_alerts_too(rig: Rig) -> None:
    group = await rig.load(DOWN.replace("up == 0", "up != 1"))
    rig.write(T0, {'up{instance="a"}': math.nan})
    await group.eval(T0)
    rule = group.rules[0]
    assert isinstance(rule, AlertingRule)
    [alert] = rule.active.values()
    assert math.isnan(alert.value)
    assert alert.annotations == (("summary", "a is down (NaN)"),)
