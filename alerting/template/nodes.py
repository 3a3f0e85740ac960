"""The parse tree of a template, shaped like Go's `text/template/parse` nodes.

`str(node)` prints a node the way Go's `Node.String()` does: execution errors
quote it as their context (`executing "x" at <humanize $value>: ...`).
Positions are byte offsets into the template text.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class Node:
    pos: int


@dataclass(slots=True)
class TextNode(Node):
    pos: int
    text: str


@dataclass(slots=True)
class DotNode(Node):
    pos: int

    def __str__(self) -> str:
        return "."


@dataclass(slots=True)
class NilNode(Node):
    pos: int

    def __str__(self) -> str:
        return "nil"


@dataclass(slots=True)
class BoolNode(Node):
    pos: int
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass(slots=True)
class NumberNode(Node):
    """A numeric constant; which of int/float it can be decides its type in a call."""

    pos: int
    text: str
    int_value: int | None
    float_value: float | None

    def __str__(self) -> str:
        return self.text


@dataclass(slots=True)
class StringNode(Node):
    pos: int
    quoted: str
    text: str

    def __str__(self) -> str:
        return self.quoted


@dataclass(slots=True)
class IdentifierNode(Node):
    """A function name."""

    pos: int
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(slots=True)
class VariableNode(Node):
    """`$x` or `$x.Field.Key`: idents[0] is the variable name."""

    pos: int
    idents: list[str]

    def __str__(self) -> str:
        return ".".join(self.idents)


@dataclass(slots=True)
class FieldNode(Node):
    """`.Field.Key` on dot."""

    pos: int
    idents: list[str]

    def __str__(self) -> str:
        return "".join("." + i for i in self.idents)


@dataclass(slots=True)
class ChainNode(Node):
    """`(pipeline).Field`: fields on the result of a term that is not dot or a variable."""

    pos: int
    node: Node
    fields: list[str]

    def __str__(self) -> str:
        inner = f"({self.node})" if isinstance(self.node, PipeNode) else str(self.node)
        return inner + "".join("." + f for f in self.fields)


@dataclass(slots=True)
class CommandNode(Node):
    pos: int
    args: list[Node] = field(default_factory=list)

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, PipeNode) else str(a) for a in self.args)


@dataclass(slots=True)
class PipeNode(Node):
    pos: int
    line: int
    decl: list[VariableNode] = field(default_factory=list)
    is_assign: bool = False
    cmds: list[CommandNode] = field(default_factory=list)

    def __str__(self) -> str:
        head = ""
        if self.decl:
            head = ", ".join(str(d) for d in self.decl) + (" = " if self.is_assign else " := ")
        return head + " | ".join(str(c) for c in self.cmds)


@dataclass(slots=True)
class ActionNode(Node):
    pos: int
    pipe: PipeNode

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


@dataclass(slots=True)
class ListNode(Node):
    pos: int
    nodes: list[Node] = field(default_factory=list)


@dataclass(slots=True)
class BranchNode(Node):
    """`if`, `with` or `range` with its body and optional `else` body."""

    kind: str
    pos: int
    pipe: PipeNode
    body: ListNode
    else_body: ListNode | None

    def __str__(self) -> str:
        return "{{" + self.kind + " " + str(self.pipe) + "}}"


@dataclass(slots=True)
class BreakNode(Node):
    pos: int

    def __str__(self) -> str:
        return "{{break}}"


@dataclass(slots=True)
class ContinueNode(Node):
    pos: int

    def __str__(self) -> str:
        return "{{continue}}"


@dataclass(slots=True)
class EndNode(Node):
    """`{{end}}`: only while parsing, never in a finished tree."""

    pos: int

    def __str__(self) -> str:
        return "{{end}}"


@dataclass(slots=True)
class ElseNode(Node):
    """`{{else}}`: only while parsing, never in a finished tree."""

    pos: int

    def __str__(self) -> str:
        return "{{else}}"
