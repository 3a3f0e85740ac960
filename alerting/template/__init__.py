"""Alert templates: the subset of Go's text/template Prometheus alert rules use.

A label or annotation value of an alerting rule is parsed once, when the rule
file loads, exactly as Prometheus parses it: the four definitions
`{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}
{{$externalURL := .ExternalURL}}{{$value := .Value}}` are put in front of the
text, so positions in error messages match Prometheus's. Anything outside
the subset (see `funcs` and `parser`) is a load-time `TemplateError`.

At each evaluation `expand` renders it for one alert. A failure renders as
Prometheus renders it, `<error expanding template: ...>` with Go's message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from alerting.template import nodes
from alerting.template.exec import Executor, Function, TemplateRuntimeError
from alerting.template.funcs import NAMES, UNSUPPORTED, QueryRunner, functions
from alerting.template.lexer import TemplateSyntaxError
from alerting.template.parser import Parser
from alerting.template.values import AlertData, LabelMap, Unsupported

DEFINITIONS = (
    "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}"
    "{{$externalURL := .ExternalURL}}{{$value := .Value}}"
)


class TemplateError(ValueError):
    """A template that does not parse (or uses what this subset leaves out)."""


@dataclass(frozen=True, slots=True)
class AlertTemplate:
    """One label or annotation value of an alerting rule, parsed."""

    name: str
    text: str
    root: nodes.ListNode | None  # None: no actions, the text is the output
    uses_query: bool

    @classmethod
    def parse(cls, rule_name: str, text: str) -> AlertTemplate:
        """Parse `text` for the rule `rule_name`; raises TemplateError with Go's message."""
        name = "__alert_" + rule_name
        if "{{" not in text:
            return cls(name, text, None, False)
        try:
            root = Parser(DEFINITIONS + text, NAMES, UNSUPPORTED).parse()
        except TemplateSyntaxError as exc:
            raise TemplateError(f"template: {name}:{exc.line}: {exc}") from None
        uses_query = any(
            isinstance(a, nodes.IdentifierNode) and a.name == "query" for a in _operands(root)
        )
        return cls(name, text, root, uses_query)

    def expand(self, data: AlertData, funcs: Mapping[str, Function]) -> str:
        """The text for one alert, or Prometheus's `<error expanding template: ...>`."""
        if self.root is None:
            return self.text
        try:
            return Executor(self.name, DEFINITIONS + self.text, funcs).run(self.root, data)
        except TemplateRuntimeError as exc:
            return f"<error expanding template: error executing template {self.name}: {exc}>"
        except Unsupported as exc:
            return f"<error expanding template: {exc}>"
        except RecursionError:
            return f"<error expanding template: template {self.name} nests too deeply>"


def alert_data(
    labels: Mapping[str, str], external_labels: Mapping[str, str], external_url: str, value: float
) -> AlertData:
    """What one alert's templates see as `.` (`$labels`, `$externalLabels`, ...)."""
    return AlertData(LabelMap(labels), LabelMap(external_labels), external_url, float(value))


def _operands(node: nodes.Node) -> list[nodes.Node]:
    """Every node of a tree (the parse tree is small; recursion is fine)."""
    out: list[nodes.Node] = [node]
    children: list[nodes.Node] = []
    if isinstance(node, nodes.ListNode):
        children = list(node.nodes)
    elif isinstance(node, nodes.ActionNode):
        children = [node.pipe]
    elif isinstance(node, nodes.BranchNode):
        children = [node.pipe, node.body] + ([node.else_body] if node.else_body else [])
    elif isinstance(node, nodes.PipeNode):
        children = list(node.cmds)
    elif isinstance(node, nodes.CommandNode):
        children = list(node.args)
    elif isinstance(node, nodes.ChainNode):
        children = [node.node]
    for child in children:
        out.extend(_operands(child))
    return out


__all__ = [
    "DEFINITIONS",
    "AlertData",
    "AlertTemplate",
    "Function",
    "QueryRunner",
    "TemplateError",
    "alert_data",
    "functions",
]
