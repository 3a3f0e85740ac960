"""`promtool test rules` over this service's rules: the same unit-test files, our engine.

A test file (`rule_files`, `evaluation_interval`, `tests: [{interval,
input_series, alert_rule_test, promql_expr_test, external_labels,
external_url}]`) is run the way promtool 2.42 runs it (`cmd/promtool/
unittest.go`): the input series are written (value `i` at `i * interval`),
every group is evaluated at `0, evaluation_interval, ...` up to the last
`eval_time`, alerting rules write ALERTS from the first evaluation, and after
the evaluation at `ts` the alert tests with `ts <= eval_time < ts +
evaluation_interval` compare the firing alerts (labels and annotations) with
`exp_alerts`; `promql_expr_test`s compare an instant query with `exp_samples`.

Returns the failures as text, like promtool's output, so a test can show them.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from alerting.clock import ManualClock
from alerting.durations import parse_duration_ms
from alerting.group import RuleOptions
from alerting.loader import RuleSource, load_rule_files
from alerting.manager import RuleManager
from alerting.metrics import RuleMetrics
from alerting.rules import AlertingRule
from alerting.types import AlertState
from promql.engine import Engine
from promql.value import Scalar, Vector
from remote_write.batch import WriteBatch
from storage.db import Storage
from storage.labels import Labels
from storage.options import StorageOptions
from tests.promql.promqltest import parse_labels, parse_points


def _ms(text: str | int) -> int:
    return parse_duration_ms(str(text))


Observed = dict[tuple[str, str], list[tuple[Labels, tuple[tuple[str, str], ...]]]]
"""(alertname, eval_time) -> the firing alerts seen there: labels and sorted annotations."""


async def run_rule_tests(test_file: Path, observed: Observed | None = None) -> list[str]:
    """Run every test of a promtool unit-test file; returns the failures (empty: passed).

    `observed`, if given, receives the firing alerts each alert test looked at.
    """
    spec = yaml.safe_load(await asyncio.to_thread(test_file.read_text))
    base = test_file.parent
    sources = [RuleSource(base / f, f) for f in spec.get("rule_files", [])]
    eval_interval = _ms(spec.get("evaluation_interval", "1m"))
    failures: list[str] = []
    for i, test in enumerate(spec.get("tests", [])):
        name = test.get("name", f"test {i}")
        for problem in await _run_one(test, sources, eval_interval, observed):
            failures.append(f"{test_file.name}: {name}: {problem}")
    return failures


async def _run_one(
    test: dict[str, Any], sources: list[RuleSource], eval_ms: int, observed: Observed | None
) -> list[str]:
    interval = _ms(test.get("interval", "1m"))
    with tempfile.TemporaryDirectory(prefix="ruletest-") as tmp:
        # Series start at 1970; keep everything (retention measured back from the newest).
        storage = await Storage.open(Path(tmp), StorageOptions(retention_ms=1 << 50))
        try:
            await _load_series(storage, test.get("input_series", []), interval)
            return await _evaluate(storage, test, sources, eval_ms, observed)
        finally:
            await storage.close()


async def _load_series(storage: Storage, items: list[dict[str, str]], interval: int) -> None:
    series = []
    for item in items:
        labels, _ = parse_labels(item["series"])
        points = parse_points(item["values"])
        ts = [k * interval for k, p in enumerate(points) if not p.omitted]
        values = [p.value for p in points if not p.omitted]
        series.append((tuple(labels), ts, values))
    if series:
        appender = storage.appender()
        result = appender.append(WriteBatch.from_series(series))
        assert not result.rejected, result.rejected
        await appender.commit()


async def _evaluate(
    storage: Storage,
    test: dict[str, Any],
    sources: list[RuleSource],
    eval_ms: int,
    observed: Observed | None,
) -> list[str]:
    alert_tests = sorted(test.get("alert_rule_test", []), key=lambda t: _ms(t["eval_time"]))
    expr_tests = test.get("promql_expr_test", [])
    external_labels = tuple(sorted((test.get("external_labels") or {}).items()))
    options = RuleOptions(
        evaluation_interval_ms=eval_ms,
        external_url=test.get("external_url", ""),
        external_labels=external_labels,
    )
    engine = Engine()
    manager = RuleManager(
        engine=engine,
        queryable=storage,
        appendable=storage,
        notify=lambda alerts: None,
        metrics=RuleMetrics(CollectorRegistry()),
        options=options,
        clock=ManualClock(0),
    )
    await manager.update(load_rule_files(sources), run=False)
    groups = manager.groups()
    for group in groups:
        for rule in group.rules:
            if isinstance(rule, AlertingRule):
                rule.restored = True  # promtool writes ALERTS from the first evaluation
    times = [_ms(t["eval_time"]) for t in alert_tests] + [_ms(t["eval_time"]) for t in expr_tests]
    end = max(times, default=0)
    failures: list[str] = []
    pending = list(alert_tests)
    ts = 0
    while ts <= end:
        for group in groups:
            await group.eval(ts)
            for rule in group.rules:
                if rule.status.last_error:
                    return [f"rule: {rule.name}, time: {ts}ms, err: {rule.status.last_error}"]
        while pending and ts <= _ms(pending[0]["eval_time"]) < ts + eval_ms:
            failures += _check_alerts(pending.pop(0), groups, observed)
        ts += eval_ms
    for case in expr_tests:
        failures += await _check_expr(engine, storage, case)
    return failures


def _check_alerts(case: dict[str, Any], groups: list[Any], observed: Observed | None) -> list[str]:
    name = case["alertname"]
    got = []
    for group in groups:
        for rule in group.rules:
            if isinstance(rule, AlertingRule) and rule.name == name:
                got += [
                    (a.labels, tuple(sorted(a.annotations)))
                    for a in rule.active.values()
                    if a.state is AlertState.FIRING
                ]
    if observed is not None:
        observed[(name, str(case["eval_time"]))] = sorted(got)
    expected = []
    for exp in case.get("exp_alerts") or []:
        labels = dict(exp.get("exp_labels") or {})
        labels["alertname"] = name
        notes = tuple(sorted((exp.get("exp_annotations") or {}).items()))
        expected.append((Labels.from_dict(labels), notes))
    if sorted(got) != sorted(expected):
        return [
            f"alertname: {name}, time: {case['eval_time']},\n"
            f"        exp: {sorted(expected)},\n        got: {sorted(got)}"
        ]
    return []


async def _check_expr(engine: Engine, storage: Storage, case: dict[str, Any]) -> list[str]:
    ts = _ms(case["eval_time"])
    result = await engine.instant_query(storage, case["expr"], ts)
    value = result.value
    if isinstance(value, Scalar):
        got = [(Labels(), value.value)]
    else:
        assert isinstance(value, Vector)
        got = list(zip(value.labels, value.values.tolist(), strict=True))
    expected = [
        (parse_labels(s.get("labels", "{}"))[0], float(s["value"]))
        for s in case.get("exp_samples") or []
    ]
    ok = len(got) == len(expected) and all(
        gl == el and (gv == ev or math.isclose(gv, ev, rel_tol=1e-9))
        for (gl, gv), (el, ev) in zip(sorted(got), sorted(expected), strict=True)
    )
    if not ok:
        return [
            f"expr: {case['expr']!r}, time: {case['eval_time']},\n"
            f"        exp: {sorted(expected)},\n        got: {sorted(got)}"
        ]
    return []
