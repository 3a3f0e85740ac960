"""The dashboards' JSON in the shape Grafana loads (panels with ids, grid positions,
targets with refIds, the provisioned datasource through the `datasource` variable),
and every query parsing as PromQL. `tests/integration/test_dashboard_queries.py` runs
them against the service."""

from __future__ import annotations

import pytest
import yaml

from promql import parse_expr
from tests.helm.dashboards import (
    BUILTINS,
    DASHBOARDS,
    files,
    label_values_query,
    load,
    panels,
    substitute,
    targets,
    used_variables,
    variables,
)

DS_UID = yaml.safe_load((DASHBOARDS.parent / "values.yaml").read_text())["grafana"]["datasource"][
    "uid"
]
DS_REF = {"type": "prometheus", "uid": "${datasource}"}
PANEL_TYPES = {"timeseries", "stat", "table", "state-timeline", "gauge", "bargauge"}


def test_the_four_dashboards_the_issue_names_are_shipped() -> None:
    titles = {load(p)["title"] for p in files()}
    assert titles == {
        "Fleet overview",
        "Cluster resources",
        "Workspaces across clusters",
        "Aggregator health",
    }


@pytest.mark.parametrize("path", files(), ids=lambda p: p.stem)
def test_dashboard_has_grafanas_shape(path) -> None:
    board = load(path)
    assert isinstance(board["uid"], str)
    assert 0 < len(board["uid"]) <= 40
    assert isinstance(board["schemaVersion"], int)
    assert board["schemaVersion"] >= 36
    assert "id" not in board or board["id"] is None  # provisioned: Grafana assigns it
    ids = [p["id"] for p in board["panels"]] + [c["id"] for c in panels(board)]
    assert len(set(p["id"] for p in board["panels"])) == len(board["panels"])
    assert all(isinstance(i, int) for i in ids)
    for p in board["panels"]:
        pos = p["gridPos"]
        assert set(pos) == {"x", "y", "w", "h"}
        assert pos["x"] >= 0
        assert pos["x"] + pos["w"] <= 24
        assert pos["h"] > 0
    for p in panels(board):
        assert p["type"] in PANEL_TYPES, p["type"]
        assert p["title"]
        assert p["datasource"] == DS_REF
        assert p["targets"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(set(refs)) == len(refs)
        for t in p["targets"]:
            assert t["datasource"] == DS_REF
            assert t["expr"].strip()
    (ds,) = [v for v in variables(board) if v["name"] == "datasource"]
    assert ds["type"] == "datasource"
    assert ds["query"] == "prometheus"
    assert ds["current"]["value"] == DS_UID  # the chart's provisioned datasource


@pytest.mark.parametrize("path", files(), ids=lambda p: p.stem)
def test_every_variable_used_is_defined(path) -> None:
    board = load(path)
    defined = {v["name"] for v in variables(board)} | set(BUILTINS)
    for p in panels(board):
        for t in p["targets"]:
            assert used_variables(t["expr"]) <= defined, (p["title"], t["expr"])
    for v in variables(board):
        if v["type"] == "query":
            assert v["datasource"] == DS_REF
            label, selector = label_values_query(v["query"]["query"])
            assert label
            if selector:
                parse_expr(selector)


@pytest.mark.parametrize("target", targets(), ids=lambda t: t.id)
def test_every_query_parses(target) -> None:
    values = {name: "x" for name in used_variables(target.expr) - set(BUILTINS)}
    parse_expr(substitute(target.expr, values))
