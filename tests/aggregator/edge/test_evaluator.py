"""The agent's rules over its window: what each kind hands to the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from aggregator.edge.evaluator import EdgeRules
from aggregator.edge.window import Window
from alerting.types import Alert
from storage.labels import Labels

T0 = 1_700_000_000_000
LOAD_A = Labels.from_pairs([("__name__", "node_load1"), ("instance", "a")])
LOAD_B = Labels.from_pairs([("__name__", "node_load1"), ("instance", "b")])


class Recorder:
    """The outbox: what the rules forward, in order."""

    def __init__(self) -> None:
        self.forwarded: list[tuple[Labels, int, float]] = []
        self.sent_alerts: list[Alert] = []

    def samples(self, labels: Sequence[Labels], ts: np.ndarray, values: np.ndarray) -> None:
        stamps = np.broadcast_to(ts, (len(labels),)).tolist()
        self.forwarded.extend(zip(labels, stamps, np.asarray(values).tolist(), strict=True))

    def alerts(self, alerts: Sequence[Alert]) -> None:
        self.sent_alerts.extend(alerts)


def make(groups: list[dict[str, Any]]) -> tuple[EdgeRules, Window, Recorder]:
    window = Window(15 * 60_000)
    out = Recorder()
    rules = EdgeRules(window, out)
    assert rules.load(groups) == []
    return rules, window, out


async def eval_all(rules: EdgeRules, ts: int) -> None:
    for g in rules.groups.values():
        await rules.eval_group(g, ts)


async def test_filter_forwards_the_breach_with_before_and_after_once() -> None:
    rules, window, out = make(
        [
            {
                "name": "f",
                "rules": [
                    {"filter": "hot", "expr": "node_load1 > 4", "before": "30s", "after": "30s"}
                ],
            }
        ]
    )
    loads = [1, 2, 3, 5, 6, 1, 1, 1, 1, 1]  # instance a breaches at steps 3 and 4
    try:
        for i, v in enumerate(loads):
            ts = T0 + i * 15_000
            window.append([LOAD_A, LOAD_B], ts, [float(v), 0.0])
            await eval_all(rules, ts)
    finally:
        await rules.stop()
    sent = [(lbl, ts) for lbl, ts, _ in out.forwarded]
    assert {lbl for lbl, _ in sent} == {LOAD_A}
    steps = [(ts - T0) // 15_000 for _, ts in sent]
    # 30s before step 3 (steps 1, 2), the breach (3, 4), 30s after step 4 (5, 6).
    assert steps == [1, 2, 3, 4, 5, 6]
    assert [v for _, _, v in out.forwarded] == [2.0, 3.0, 5.0, 6.0, 1.0, 1.0]


async def test_recording_results_are_forwarded_and_kept_for_later_rules() -> None:
    rules, window, out = make(
        [
            {
                "name": "r",
                "rules": [
                    {"record": "total:load", "expr": "sum(node_load1)"},
                    {"record": "total:load:x2", "expr": "total:load * 2"},
                ],
            }
        ]
    )
    window.append([LOAD_A, LOAD_B], T0, [1.0, 2.0])
    try:
        await eval_all(rules, T0)
    finally:
        await rules.stop()
    got = {lbl.get("__name__"): v for lbl, _, v in out.forwarded}
    assert got == {"total:load": 3.0, "total:load:x2": 6.0}


async def test_alerts_are_sent_when_they_fire() -> None:
    rules, window, out = make(
        [
            {
                "name": "a",
                "rules": [
                    {
                        "alert": "High",
                        "expr": "node_load1 > 4",
                        "for": "15s",
                        "labels": {"sev": "x"},
                    }
                ],
            }
        ]
    )
    try:
        window.append([LOAD_A], T0, [5.0])
        await eval_all(rules, T0)
        assert out.sent_alerts == []  # pending
        window.append([LOAD_A], T0 + 15_000, [5.0])
        await eval_all(rules, T0 + 15_000)
    finally:
        await rules.stop()
    [alert] = out.sent_alerts
    assert alert.labels == Labels.from_pairs(
        [("alertname", "High"), ("instance", "a"), ("sev", "x")]
    )
    assert not alert.resolved


async def test_a_group_that_cannot_load_keeps_its_previous_version() -> None:
    good = {"name": "r", "rules": [{"record": "x", "expr": "sum(node_load1)"}]}
    rules, _window, _out = make([good])
    old = rules.groups["r"]
    bad = {"name": "r", "rules": [{"record": "x", "expr": "sum(node_load1)", "future": 1}]}
    problems = rules.load([bad])
    try:
        assert problems
        assert "future" in problems[0]
        assert rules.groups["r"] is old
        assert rules.load_errors == problems
        # Loading the good version again clears the errors and changes nothing.
        assert rules.load([good]) == []
        assert rules.groups["r"] is old
    finally:
        await rules.stop()


async def test_a_rule_failing_at_evaluation_reports_its_health() -> None:
    rules, window, _out = make(
        [
            {
                "name": "r",
                "rules": [{"record": "x", "expr": 'label_replace(up, "a", "$1", "b", "(")'}],
            }
        ]
    )
    window.append([Labels.from_pairs([("__name__", "up"), ("b", "c")])], T0, [1.0])
    try:
        await eval_all(rules, T0)
    finally:
        await rules.stop()
    [status] = rules.status()
    assert status["health"] == "err"
    assert status["error"]
