"""Edge rule files: Prometheus rule groups with a `cluster:` selector, plus threshold filters.

The host's `edge.rule_files` hold groups in the Prometheus rule-file format
whose `cluster:` (the same group key global rules use) names the edge
cluster that runs them. Besides `alert:` and `record:` rules a group may hold
threshold filters:

```yaml
groups:
  - name: node
    cluster: edge-1
    interval: 15s
    rules:
      - record: instance:node_cpu:rate1m          # forwarded to the host
        expr: sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[1m]))
      - alert: HighLoad                           # sent to the host's Alertmanagers
        expr: node_load1 > 4
        for: 1m
      - filter: disk_filling                      # raw series forwarded while it holds
        expr: node_filesystem_avail_bytes / node_filesystem_size_bytes < 0.1
        series: node_filesystem_avail_bytes       # default: the series `expr` returns
        before: 5m                                # also what came before it held
        after: 5m                                 # and for this long after
```

Alerting and recording rules are checked by `alerting.rulefile` (the
global rules' own checks); filters here. The host checks the files when it
loads them; the agent checks again what it receives, since it may be older
or newer than the host, and reports what it cannot load.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from aggregator.units import parse_duration_ms
from alerting.rulefile import RuleFileError, RuleSpec, parse_group
from promql import ast
from promql.errors import ParseError
from promql.parser import parse_expr

_GROUP_KEYS = ("name", "cluster", "interval", "rules")
_FILTER_KEYS = ("filter", "expr", "series", "before", "after")
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_CLUSTER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


@dataclass(frozen=True, slots=True)
class FilterSpec:
    """Forward raw series while `expr` has results (plus `before_ms` / `after_ms`)."""

    name: str
    expr: str
    series: str | None = None
    before_ms: int = 0
    after_ms: int = 0


@dataclass(frozen=True, slots=True)
class EdgeGroup:
    name: str
    interval_ms: int | None
    rules: tuple[RuleSpec | FilterSpec, ...]
    raw: dict[str, Any]
    """The group as written (without `cluster`): what the host serves the agent."""


class EdgeRulesError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def parse_file_groups(text: str, where: str) -> list[tuple[str, dict[str, Any]]]:
    """(cluster, raw group) of every group of an edge rule file; raises EdgeRulesError."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EdgeRulesError([f"{where}: invalid YAML: {exc}"]) from None
    if doc is None:
        return []
    if not isinstance(doc, dict) or set(doc) - {"groups"}:
        raise EdgeRulesError([f"{where}: must be a mapping with one key, groups"])
    out: list[tuple[str, dict[str, Any]]] = []
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for i, raw in enumerate(doc.get("groups") or []):
        if not isinstance(raw, dict):
            problems.append(f"{where}: groups[{i}]: must be a mapping")
            continue
        name = raw.get("name")
        cluster = raw.get("cluster")
        at = f'{where}: group "{name}"'
        if not isinstance(cluster, str) or not _CLUSTER.fullmatch(cluster):
            problems.append(f"{at}: cluster: must name the edge cluster that runs the group")
            continue
        if (cluster, str(name)) in seen:
            problems.append(f"{at}: repeated for cluster {cluster!r}")
        seen.add((cluster, str(name)))
        group = {k: v for k, v in raw.items() if k != "cluster"}
        try:
            parse_group_obj(group, where)
        except EdgeRulesError as exc:
            problems.extend(exc.problems)
            continue
        out.append((cluster, group))
    if problems:
        raise EdgeRulesError(problems)
    return out


def parse_group_obj(raw: Any, where: str) -> EdgeGroup:
    """Check one group (a mapping as YAML or JSON gives it); raises EdgeRulesError."""
    if not isinstance(raw, dict):
        raise EdgeRulesError([f"{where}: a group must be a mapping"])
    name = raw.get("name")
    at = f'{where}: group "{name}"'
    problems = [f"{at}: unknown key {k!r}" for k in raw if k not in _GROUP_KEYS or k == "cluster"]
    if not isinstance(name, str) or not name:
        problems.append(f"{where}: a group needs a name")
    interval = _duration(raw.get("interval"), f"{at}: interval", problems)
    rules = raw.get("rules") or []
    if not isinstance(rules, list):
        raise EdgeRulesError([*problems, f"{at}: rules: must be a list"])
    plain: list[dict[str, Any]] = []
    filters: dict[int, FilterSpec] = {}
    for i, rule in enumerate(rules, start=1):
        if isinstance(rule, dict) and "filter" in rule:
            spec = _filter(rule, f"{at}, rule {i}", problems)
            if spec is not None:
                filters[i] = spec
        else:
            plain.append(rule)
    specs: list[RuleSpec] = []
    if plain:
        text = yaml.safe_dump({"name": name or "unnamed", "rules": plain}, sort_keys=False)
        try:
            specs = list(parse_group(text, file=where, where=where).rules)
        except RuleFileError as exc:
            problems.extend(exc.problems)
    if problems:
        raise EdgeRulesError(problems)
    ordered: list[RuleSpec | FilterSpec] = []
    it = iter(specs)
    for i in range(1, len(rules) + 1):
        ordered.append(filters[i] if i in filters else next(it))
    return EdgeGroup(str(name), interval, tuple(ordered), dict(raw))


def _filter(rule: dict[str, Any], at: str, problems: list[str]) -> FilterSpec | None:
    before = len(problems)
    for key in rule:
        if key not in _FILTER_KEYS:
            problems.append(f"{at}: unknown key {key!r} in a filter (allowed: {_FILTER_KEYS})")
    name = rule.get("filter")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.append(f"{at}: filter: invalid name {name!r}")
    expr = rule.get("expr")
    series = rule.get("series")
    for key, text in (("expr", expr), ("series", series)):
        if text is None and key == "series":
            continue
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{at}: {key}: must be a PromQL expression")
            continue
        try:
            parsed = parse_expr(text)
        except ParseError as exc:
            problems.append(f"{at}: {key}: could not parse expression: {exc}")
            continue
        if key == "series" and not isinstance(parsed, ast.VectorSelector):
            problems.append(f"{at}: series: {text!r} is not a series selector")
    before_ms = _duration(rule.get("before"), f"{at}: before", problems) or 0
    after_ms = _duration(rule.get("after"), f"{at}: after", problems) or 0
    if len(problems) > before:
        return None
    return FilterSpec(str(name), str(expr), series, before_ms, after_ms)


def _duration(value: Any, at: str, problems: list[str]) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration_ms(str(value))
    except ValueError as exc:
        problems.append(f"{at}: {exc}")
        return None
