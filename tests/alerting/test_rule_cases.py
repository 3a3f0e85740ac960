"""The rule cases in tests/alerting/cases pass the real `promtool test rules` and this
service's rules alike (the same unit-test files, see tests/support/ruletest.py).

Their expectations were checked against promtool, which is Prometheus 2.42's rule
evaluation and template code; passing both means the alerts, their states,
labels, rendered annotations and the recorded values agree.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.alerting.conftest import Promtool
from tests.support.ruletest import run_rule_tests

CASES = Path(__file__).parent / "cases"
TEST_FILES = sorted(CASES.glob("*.test.yml"))


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_passes(test_file: Path, promtool: Promtool) -> None:
    proc = promtool("test", "rules", test_file.name, cwd=CASES)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
async def test_service_passes(test_file: Path) -> None:
    failures = await run_rule_tests(test_file)
    assert failures == [], "\n".join(failures)


async def test_a_wrong_expectation_fails_in_both(tmp_path: Path, promtool: Promtool) -> None:
    """The runner is not a rubber stamp: a changed annotation fails here and in promtool."""
    for name in ("fleet.rules.yml", "fleet.test.yml"):
        shutil.copy(CASES / name, tmp_path / name)
    spec = yaml.safe_load((tmp_path / "fleet.test.yml").read_text())
    case = spec["tests"][0]["alert_rule_test"][1]
    assert case["alertname"] == "NodeDown"
    case["exp_alerts"][0]["exp_annotations"]["host"] = "eu-2"
    (tmp_path / "fleet.test.yml").write_text(yaml.safe_dump(spec))

    proc = promtool("test", "rules", "fleet.test.yml", cwd=tmp_path)
    assert proc.returncode != 0
    assert 'host="eu-1"' in proc.stdout

    failures = await run_rule_tests(tmp_path / "fleet.test.yml")
    assert len(failures) == 1
    assert "alertname: NodeDown, time: 3m" in failures[0]
    assert "('host', 'eu-1')" in failures[0]
