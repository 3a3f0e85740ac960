"""Prometheus rule files: YAML -> checked `GroupSpec`s, or every reason they are not.

The format is Prometheus's (`groups: [{name, interval, limit, query_offset,
rules: [{alert | record, expr, for, keep_firing_for, labels,
annotations}]}]`) plus one key of our own on a group, `cluster: NAME`, which
limits the group's selectors to that cluster's series.

Checks are the ones `promtool check rules` makes, reported the way it reports
them, one line per problem naming the file, position, group, rule and
reason, e.g. `rules.yml: 8:11: group "g", rule 2, "x": could not parse
expression: ...`: unknown keys, duplicate keys, bad durations, a group name
missing or repeated in the file, `alert` and `record` both or neither, `expr`
missing or not PromQL, `for` / `keep_firing_for` / annotations on a recording
rule, bad metric, label and annotation names, and templates that do not
parse. A file with any problem loads nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from alerting.durations import format_duration_ms, parse_duration_ms
from alerting.template import AlertTemplate, TemplateError
from promql import ast
from promql.errors import ParseError
from promql.parser import parse_expr

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")

_GROUP_KEYS = ("name", "interval", "limit", "query_offset", "cluster", "rules")
_RULE_KEYS = ("record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations")


class RuleFileError(ValueError):
    """A rule file that cannot load: `problems` lists every reason, each naming the file."""

    def __init__(self, file: str, problems: list[str]) -> None:
        self.file = file
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One rule as written (equality ignores where it was written)."""

    kind: str  # "alert" or "record"
    name: str
    expr: str
    for_ms: int = 0
    keep_firing_for_ms: int = 0
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    parsed: ast.Expr | None = field(default=None, compare=False, repr=False)
    label_templates: tuple[AlertTemplate, ...] = field(default=(), compare=False, repr=False)
    annotation_templates: tuple[AlertTemplate, ...] = field(default=(), compare=False, repr=False)

    @property
    def is_alert(self) -> bool:
        return self.kind == "alert"

    def identity(self) -> str:
        """Name plus labels: how a reload matches a rule to its old self (Prometheus's
        `nameAndLabels`)."""
        return self.name + "{" + ",".join(f"{k}={v!r}" for k, v in self.labels) + "}"


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """One rule group: `file` names its source (a path, or a ruler-API namespace)."""

    file: str
    name: str
    rules: tuple[RuleSpec, ...]
    interval_ms: int | None = None  # None: the configured evaluation_interval
    limit: int = 0
    query_offset_ms: int | None = None  # None: the configured default
    cluster: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.file, self.name)


def load_file(path: str, *, display: str | None = None) -> list[GroupSpec]:
    """Read and check one rule file; `display` replaces the path as the groups' `file`."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise RuleFileError(path, [f"{path}: file does not exist"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError(path, [f"{path}: cannot read the file: {exc}"]) from None
    return parse_groups(text, file=display or path, where=path)


def parse_groups(text: str, *, file: str, where: str | None = None) -> list[GroupSpec]:
    """Check the text of a rule file; raises RuleFileError listing every problem."""
    where = where or file
    root = _compose(text, where)
    if root is None:
        return []
    problems: list[str] = []
    groups: list[GroupSpec] = []
    top = _mapping(root, "rulefmt.RuleGroups", ("groups",), where)
    items = top.get("groups")
    if items is None:
        return []
    if not isinstance(items, yaml.SequenceNode):
        raise _unmarshal(where, items, "cannot unmarshal into []rulefmt.RuleGroup")
    seen: set[str] = set()
    for node in items.value:
        group = _mapping(node, "rulefmt.RuleGroup", _GROUP_KEYS, where)
        name = _string(group.get("name"), where) or ""
        pos = _pos(node)
        if not name:
            problems.append(f"{where}: {pos}: Groupname must not be empty")
        elif name in seen:
            problems.append(f'{where}: {pos}: groupname: "{name}" is repeated in the same file')
        seen.add(name)
        spec, found = _group(group, name, file, where)
        problems.extend(found)
        groups.append(spec)
    if problems:
        raise RuleFileError(where, problems)
    return groups


def parse_group(text: str, *, file: str, where: str) -> GroupSpec:
    """Check one group given on its own (the ruler API's request body)."""
    root = _compose(text, where)
    if root is None or _is_null(root):
        raise RuleFileError(where, [f"{where}: the body holds no rule group"])
    group = _mapping(root, "rulefmt.RuleGroup", _GROUP_KEYS, where)
    name = _string(group.get("name"), where) or ""
    spec, problems = _group(group, name, file, where)
    if not name:
        problems.insert(0, f"{where}: {_pos(root)}: Groupname must not be empty")
    if problems:
        raise RuleFileError(where, problems)
    return spec


def _group(
    group: dict[str, yaml.Node], name: str, file: str, where: str
) -> tuple[GroupSpec, list[str]]:
    problems: list[str] = []
    interval = _duration(group.get("interval"), where)
    query_offset = _duration(group.get("query_offset"), where)
    limit = _integer(group.get("limit"), where)
    cluster = _string(group.get("cluster"), where)
    if cluster is not None and not _CLUSTER_NAME.fullmatch(cluster):
        problems.append(
            f'{where}: {_pos(group["cluster"])}: group "{name}": invalid cluster name '
            f"{cluster!r}: use letters, digits, '.', '_' or '-'"
        )
    rules: list[RuleSpec] = []
    rule_nodes = group.get("rules")
    if rule_nodes is not None and not _is_null(rule_nodes):
        if not isinstance(rule_nodes, yaml.SequenceNode):
            raise _unmarshal(where, rule_nodes, "cannot unmarshal into []rulefmt.RuleNode")
        for i, node in enumerate(rule_nodes.value, start=1):
            rule, found = _rule(node, where, name, i)
            problems.extend(found)
            if rule is not None:
                rules.append(rule)
    spec = GroupSpec(
        file=file,
        name=name,
        rules=tuple(rules),
        interval_ms=interval or None,
        limit=limit or 0,
        query_offset_ms=query_offset,
        cluster=cluster,
    )
    return spec, problems


def _rule(node: yaml.Node, where: str, group: str, index: int) -> tuple[RuleSpec | None, list[str]]:
    fields = _mapping(node, "rulefmt.RuleNode", _RULE_KEYS, where)
    record = _string(fields.get("record"), where) or ""
    alert = _string(fields.get("alert"), where) or ""
    expr = _string(fields.get("expr"), where) or ""
    for_ms = _duration(fields.get("for"), where) or 0
    keep_ms = _duration(fields.get("keep_firing_for"), where) or 0
    labels = _string_map(fields.get("labels"), where)
    annotations = _string_map(fields.get("annotations"), where)
    name = alert or record
    prefix = f'group "{group}", rule {index}, "{name}"'
    problems: list[str] = []

    def problem(at: yaml.Node | None, reason: str, alt: yaml.Node | None = None) -> None:
        place = ""
        if at is not None:
            place = f"{_pos(at)}: "
            if alt is not None:
                place += f"{_pos(alt)}: "
        problems.append(f"{where}: {place}{prefix}: {reason}")

    record_node = fields.get("record") or fields.get("alert") or node
    if record and alert:
        problem(fields["record"], "only one of 'record' and 'alert' must be set", fields["alert"])
    if not record and not alert:
        problem(record_node, "one of 'record' or 'alert' must be set")
    parsed = None
    if not expr:
        problem(fields.get("expr", node), "field 'expr' must be set in rule")
    else:
        try:
            parsed = parse_expr(expr)
        except ParseError as exc:
            problem(fields["expr"], f"could not parse expression: {exc}")
    if record:
        if annotations:
            problem(record_node, "invalid field 'annotations' in recording rule")
        if for_ms:
            problem(record_node, "invalid field 'for' in recording rule")
        if keep_ms:
            problem(record_node, "invalid field 'keep_firing_for' in recording rule")
        if not _METRIC_NAME.fullmatch(record):
            problem(record_node, f"invalid recording rule name: {record}")
    for key in labels:
        if not _LABEL_NAME.fullmatch(key) or key == "__name__":
            problem(None, f"invalid label name: {key}")
    for key in annotations:
        if not _LABEL_NAME.fullmatch(key):
            problem(None, f"invalid annotation name: {key}")
    label_templates: list[AlertTemplate] = []
    annotation_templates: list[AlertTemplate] = []
    if alert:
        for kind, mapping, out in (
            ("label", labels, label_templates),
            ("annotation", annotations, annotation_templates),
        ):
            for key, value in sorted(mapping.items()):
                try:
                    out.append(AlertTemplate.parse(alert, value))
                except TemplateError as exc:
                    problem(None, f'{kind} "{key}": {exc}')
    if problems:
        return None, problems
    rule = RuleSpec(
        kind="alert" if alert else "record",
        name=name,
        expr=expr,
        for_ms=for_ms,
        keep_firing_for_ms=keep_ms,
        labels=tuple(sorted(labels.items())),
        annotations=tuple(sorted(annotations.items())),
        parsed=parsed,
        label_templates=tuple(label_templates),
        annotation_templates=tuple(annotation_templates),
    )
    return rule, []


# -- writing (the ruler API answers with YAML) ----------------------------------------


def group_to_dict(group: GroupSpec) -> dict[str, Any]:
    """A group in rule-file form (keys in Prometheus's order, empty ones left out)."""
    out: dict[str, Any] = {"name": group.name}
    if group.interval_ms:
        out["interval"] = format_duration_ms(group.interval_ms)
    if group.limit:
        out["limit"] = group.limit
    if group.query_offset_ms is not None:
        out["query_offset"] = format_duration_ms(group.query_offset_ms)
    if group.cluster is not None:
        out["cluster"] = group.cluster
    out["rules"] = [rule_to_dict(r) for r in group.rules]
    return out


def rule_to_dict(rule: RuleSpec) -> dict[str, Any]:
    out: dict[str, Any] = {rule.kind: rule.name, "expr": rule.expr}
    if rule.for_ms:
        out["for"] = format_duration_ms(rule.for_ms)
    if rule.keep_firing_for_ms:
        out["keep_firing_for"] = format_duration_ms(rule.keep_firing_for_ms)
    if rule.labels:
        out["labels"] = dict(rule.labels)
    if rule.annotations:
        out["annotations"] = dict(rule.annotations)
    return out


def dump_yaml(data: Any) -> str:
    """YAML as the ruler API and the rules directory write it (block style, keys in order)."""
    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True))


# -- YAML nodes -------------------------------------------------------------------------


def _compose(text: str, where: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f"line {mark.line + 1}: " if mark else ""
        raise RuleFileError(where, [f"{where}: yaml: {line}{exc.problem}"]) from None
    except yaml.YAMLError as exc:
        raise RuleFileError(where, [f"{where}: yaml: {exc}"]) from None


def _pos(node: yaml.Node) -> str:
    return f"{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _unmarshal(where: str, node: yaml.Node, reason: str) -> RuleFileError:
    return RuleFileError(
        where, [f"{where}: yaml: unmarshal errors:\n  line {node.start_mark.line + 1}: {reason}"]
    )


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _mapping(
    node: yaml.Node, type_name: str, allowed: tuple[str, ...], where: str
) -> dict[str, yaml.Node]:
    """A mapping node's keys -> value nodes; unknown or repeated keys are errors."""
    if _is_null(node):
        return {}
    if not isinstance(node, yaml.MappingNode):
        raise _unmarshal(where, node, f"cannot unmarshal {_kind(node)} into {type_name}")
    out: dict[str, yaml.Node] = {}
    lines: dict[str, int] = {}
    for key_node, value in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
        line = key_node.start_mark.line + 1
        if key in out:
            raise _unmarshal(
                where, key_node, f'mapping key "{key}" already defined at line {lines[key]}'
            )
        if key not in allowed:
            raise _unmarshal(where, key_node, f"field {key} not found in type {type_name}")
        out[key] = value
        lines[key] = line
    return out


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "!!seq"
    if isinstance(node, yaml.MappingNode):
        return "!!map"
    tag = node.tag.rsplit(":", 1)[-1]
    return f"!!{tag} `{node.value}`"


def _string(node: yaml.Node | None, where: str) -> str | None:
    """A scalar's text (numbers and booleans as written, as Go's YAML decoder gives them)."""
    if node is None or _is_null(node):
        return None
    if not isinstance(node, yaml.ScalarNode):
        raise _unmarshal(where, node, f"cannot unmarshal {_kind(node)} into string")
    return str(node.value)


def _integer(node: yaml.Node | None, where: str) -> int | None:
    text = _string(node, where)
    if text is None:
        return None
    try:
        return int(text, 0)
    except ValueError:
        assert node is not None
        raise _unmarshal(where, node, f"cannot unmarshal {_kind(node)} into int") from None


def _duration(node: yaml.Node | None, where: str) -> int | None:
    text = _string(node, where)
    if text is None:
        return None
    try:
        return parse_duration_ms(text)
    except ValueError as exc:
        raise RuleFileError(where, [f"{where}: {exc}"]) from None


def _string_map(node: yaml.Node | None, where: str) -> dict[str, str]:
    if node is None or _is_null(node):
        return {}
    if not isinstance(node, yaml.MappingNode):
        raise _unmarshal(where, node, f"cannot unmarshal {_kind(node)} into map[string]string")
    out: dict[str, str] = {}
    lines: dict[str, int] = {}
    for key_node, value in node.value:
        key = _string(key_node, where) or ""
        if key in out:
            raise _unmarshal(
                where, key_node, f'mapping key "{key}" already defined at line {lines[key]}'
            )
        out[key] = _string(value, where) or ""
        lines[key] = key_node.start_mark.line + 1
    return out


def iter_rules(groups: list[GroupSpec]) -> Iterator[tuple[GroupSpec, RuleSpec]]:
    """Every (group, rule) pair, in file order."""
    for group in groups:
        for rule in group.rules:
            yield group, rule
