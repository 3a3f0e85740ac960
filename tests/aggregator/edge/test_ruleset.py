"""Edge rule files: groups with a cluster selector; alert, record and filter rules."""

from __future__ import annotations

import pytest

from aggregator.edge.ruleset import EdgeRulesError, FilterSpec, parse_file_groups, parse_group_obj

FILE = """
groups:
  - name: g
    cluster: edge-1
    interval: 30s
    rules:
      - record: a:sum
        expr: sum(up)
      - filter: hot
        expr: node_load1 > 4
        series: node_load1
        before: 1m
        after: 2m
      - alert: Down
        expr: up == 0
        for: 1m
"""


def test_groups_keep_their_cluster_and_rule_order() -> None:
    [(cluster, raw)] = parse_file_groups(FILE, "edge.yml")
    assert cluster == "edge-1"
    assert "cluster" not in raw
    group = parse_group_obj(raw, "edge.yml")
    assert group.interval_ms == 30_000
    kinds = [type(r).__name__ if isinstance(r, FilterSpec) else r.kind for r in group.rules]
    assert kinds == ["record", "FilterSpec", "alert"]
    hot = group.rules[1]
    assert hot == FilterSpec("hot", "node_load1 > 4", "node_load1", 60_000, 120_000)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("    cluster: edge-1\n", ""), 'edge.yml: group "g": cluster: must name the edge cluster'),
        (("expr: node_load1 > 4", "expr: node_load1 >"), "rule 2: expr: could not parse"),
        (("before: 1m", "before: soon"), "rule 2: before:"),
        (
            ("        series: node_load1\n", "        series: x\n        every: 1m\n"),
            "unknown key 'every'",
        ),
        (("expr: up == 0", "expr: up =="), "could not parse expression"),
    ],
)
def test_problems_name_the_file_group_and_rule(change: tuple[str, str], message: str) -> None:
    with pytest.raises(EdgeRulesError) as err:
        parse_file_groups(FILE.replace(*change), "edge.yml")
    assert any(message in p for p in err.value.problems), err.value.problems


def test_a_filters_series_must_be_a_selector() -> None:
    text = FILE.replace("series: node_load1", "series: rate(node_load1[1m])")
    with pytest.raises(EdgeRulesError, match="is not a series selector"):
        parse_file_groups(text, "edge.yml")
