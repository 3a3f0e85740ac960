"""Fixtures for the alerting tests: the real promtool (Debian's Prometheus 2.42), and
rules over the real storage driven by hand (`rig`)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from alerting.clock import ManualClock
from alerting.group import Group, RuleOptions
from alerting.manager import RuleManager
from alerting.metrics import RuleMetrics
from alerting.rulefile import parse_groups
from alerting.rules import AlertingRule
from alerting.types import Alert
from promql.engine import Engine
from promql.value import Vector
from remote_write.batch import WriteBatch
from storage.db import Storage
from tests.promql.promqltest import parse_labels

Promtool = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def promtool() -> Promtool:
    """Run `promtool ARGS...` (in `cwd`); its output is stdout and stderr together."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed: run scripts/system-deps (or scripts/test)")

    def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [binary, *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
            check=False,
        )

    return run


# -- rules over the real storage, driven by hand ---------------------------------------


@dataclass
class Rig:
    """A RuleManager over a real Storage, with a manual clock and a notification log."""

    storage: Storage
    manager: RuleManager
    clock: ManualClock
    sent: list[Alert]
    registry: CollectorRegistry

    def write(self, ts: int, series: dict[str, float]) -> None:
        """Write one sample per series (`'up{job="a"}': 1.0`) at `ts`."""
        batch = []
        for text, value in series.items():
            labels, _ = parse_labels(text)
            batch.append((tuple(labels), [ts], [value]))
        result = self.storage.appender().append(WriteBatch.from_series(batch))
        assert not result.rejected, result.rejected

    async def load(self, rules: str, *, restore: bool = False, file: str = "rules.yml") -> Group:
        """Make `rules` (a rule file's text) the running groups; returns the first."""
        await self.manager.update(parse_groups(rules, file=file), run=False)
        groups = self.manager.groups()
        if not restore:  # as if running for a while: ALERTS are written from the start
            for group in groups:
                group.should_restore = False
                for rule in group.rules:
                    if isinstance(rule, AlertingRule):
                        rule.restored = True
        return groups[0]

    async def query(self, expr: str, ts: int) -> dict[str, float]:
        result = await Engine().instant_query(self.storage, expr, ts)
        assert isinstance(result.value, Vector)
        return {
            str(lbl): v
            for lbl, v in zip(result.value.labels, result.value.values.tolist(), strict=True)
        }

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


def make_manager(
    storage: Storage,
    clock: ManualClock,
    sent: list[Alert],
    registry: CollectorRegistry,
    options: RuleOptions | None = None,
) -> RuleManager:
    return RuleManager(
        engine=Engine(),
        queryable=storage,
        appendable=storage,
        notify=sent.extend,
        metrics=RuleMetrics(registry),
        options=options or RuleOptions(evaluation_interval_ms=10_000, resend_delay_ms=30_000),
        clock=clock,
    )


T0 = 1_700_000_000_000  # a round 10 s, so that evaluation times read easily


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    storage = await Storage.open(tmp_path / "data")
    clock = ManualClock(T0)
    sent: list[Alert] = []
    registry = CollectorRegistry()
    manager = make_manager(storage, clock, sent, registry)
    try:
        yield Rig(storage, manager, clock, sent, registry)
    finally:
        await manager.stop()
        await storage.close()
