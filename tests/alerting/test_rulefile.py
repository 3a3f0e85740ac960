"""Rule files: the problems `promtool check rules` finds are found here, said the same way."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.rulefile import (
    GroupSpec,
    RuleFileError,
    dump_yaml,
    group_to_dict,
    parse_group,
    parse_groups,
)
from tests.alerting.conftest import Promtool

BROKEN = """groups:
- name: g
  rules:
  - alert: A
    record: b
    expr: up
  - record: "bad name"
    expr: up +
    for: 5m
    annotations: {a: b}
    labels: {"__name__": x, "1x": y}
  - alert: C
    expr: ""
    labels: {sev: 1, t: true}
    annotations: {"1a": x}
- name: g
  rules: []
- name: ""
  rules:
  - alert: D
    expr: up
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(RuleFileError) as info:
        parse_groups(text, file="r.yml")
    return info.value.problems


def test_same_problems_as_promtool(tmp_path: Path, promtool: Promtool) -> None:
    (tmp_path / "r.yml").write_text(BROKEN)
    proc = promtool("check", "rules", "r.yml", cwd=tmp_path)
    theirs = [line for line in proc.stdout.splitlines() if line.startswith("r.yml: ")]
    ours = problems_of(BROKEN)
    assert len(ours) == len(theirs) == 11
    # promtool walks a rule's labels as a Go map, in random order, so two problems of one
    # rule may come either way round: compare the sets of lines, not their order.
    assert sorted(map(_comparable, ours)) == sorted(map(_comparable, theirs))


def _comparable(problem: str) -> str:
    """The place and the reason; the PromQL parser's own wording differs from Prometheus's."""
    return problem.split("could not parse expression:")[0]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("groupz: []\n", "line 1: field groupz not found in type rulefmt.RuleGroups"),
        (
            "groups:\n- name: a\n  rules:\n  - alert: x\n    expr: up\n    expr: up\n",
            'line 6: mapping key "expr" already defined at line 5',
        ),
        ("groups:\n- name: a\n  interval: 5\n", 'not a valid duration string: "5"'),
        (
            "groups:\n- name: a\n  rules:\n  - alert: x\n    expr: up\n    limit: 2\n",
            "field limit not found in type rulefmt.RuleNode",
        ),
        ("groups:\n- name: a\n  rules:\n  - alert: x\n   expr: up\n", "r.yml: yaml: line 5"),
    ],
)
def test_structural_problems(text: str, problem: str, tmp_path: Path, promtool: Promtool) -> None:
    [mine] = problems_of(text)
    assert problem in mine
    (tmp_path / "r.yml").write_text(text)
    assert promtool("check", "rules", "r.yml", cwd=tmp_path).returncode != 0


def test_cluster_scope_is_checked() -> None:
    [group] = parse_groups("groups:\n- name: a\n  cluster: eu-1\n  rules: []\n", file="r.yml")
    assert group.cluster == "eu-1"
    [problem] = problems_of("groups:\n- name: a\n  cluster: 'eu 1'\n  rules: []\n")
    assert "invalid cluster name 'eu 1'" in problem


def test_a_group_on_its_own_round_trips() -> None:
    text = """
name: nodes
interval: 30s
limit: 10
query_offset: 1m
rules:
- alert: Down
  expr: up == 0
  for: 1h30m
  keep_firing_for: 5m
  labels: {severity: page}
  annotations: {summary: '{{ $labels.instance }}'}
- record: r
  expr: sum(up)
"""
    group = parse_group(text, file="ns", where="ns")
    assert (group.interval_ms, group.limit, group.query_offset_ms) == (30_000, 10, 60_000)
    again = parse_group(dump_yaml(group_to_dict(group)), file="ns", where="ns")
    assert again == group
    assert group_to_dict(group)["rules"][0]["for"] == "1h30m"
    with pytest.raises(RuleFileError, match="Groupname must not be empty"):
        parse_group("rules: []\n", file="ns", where="ns")


def test_equal_specs_ignore_positions() -> None:
    a: list[GroupSpec] = parse_groups(
        "groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n", file="f"
    )
    b = parse_groups(
        "# moved\n\ngroups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n", file="f"
    )
    assert a == b
