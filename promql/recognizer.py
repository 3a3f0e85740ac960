"""Where a PromQL query stops being PromQL, and the shape of one that is.

`Recognizer` is a small recursive-descent parser over `promql.tokens`: it
either raises `Unexpected` at the first token no PromQL expression can go on
with, named as Prometheus's parser names it (`describe`), with the context
and what was expected where Prometheus gives them, or returns a tree of
`Node`s with offsets: enough for `promql.parse_errors` to point at what a
type or modifier error is about. It accepts a little more than PromQL (it
checks no types), never less, and is only run on queries promql-parser
refused, so it has no need to be fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from promql.eval.gofmt import go_quote
from promql.tokens import Token

AGGREGATORS = frozenset(
    "sum avg count min max group stddev stdvar topk bottomk count_values quantile "
    "limitk limit_ratio".split()
)
WORD_OPERATORS = frozenset({"and", "or", "unless", "atan2"})
KEYWORDS = frozenset("by without on ignoring group_left group_right bool offset start end".split())
COMPARISONS = frozenset({"==", "!=", "<", ">", "<=", ">="})
SYMBOL_OPERATORS = frozenset({"+", "-", "*", "/", "%", "^", "=~", "!~", *COMPARISONS})
PRECEDENCE = {
    "or": 1,
    "and": 2,
    "unless": 2,
    **dict.fromkeys(COMPARISONS, 3),
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
    "atan2": 5,
    "^": 6,
}
NOT_METRIC_NAMES = frozenset({"bool", "on", "ignoring", "group_left", "group_right"})


class Unexpected(Exception):
    """The first token no PromQL expression can go on with; `reason` as Prometheus says it."""

    def __init__(self, token: Token, context: str = "", expected: str = "") -> None:
        super().__init__(token.text)
        self.token = token
        reason = f"unexpected {describe(token)}"
        if context:
            reason += f" in {context}"
        if expected:
            reason += f", expected {expected}"
        self.reason = reason


def describe(tok: Token) -> str:
    """A token as Prometheus's parser names it in "unexpected ..." (`Item.desc()`)."""
    if tok.kind == "eof":
        return "end of input"
    text, low = tok.text, tok.text.lower()
    if tok.kind == "ident":
        if low in AGGREGATORS:
            return f"<aggr:{text}>"
        if low in WORD_OPERATORS:
            return f"<op:{text}>"
        if low in KEYWORDS:
            return f"<{text}>"
        if low in ("inf", "nan"):
            return f"number {go_quote(text)}"
        kind = "metric identifier" if ":" in text else "identifier"
        return f"{kind} {go_quote(text)}"
    if tok.kind in ("number", "duration", "string"):
        shown = go_quote(text) if len(text) <= 10 else go_quote(text[:10]) + "..."
        return f"{tok.kind} {shown}"
    if text in SYMBOL_OPERATORS:
        return f"<op:{text}>"
    return go_quote(text)


@dataclass(slots=True)
class Node:
    """A node of the recognizer's tree: enough to find what a semantic error is about."""

    kind: str  # number string selector paren unary binary call agg
    start: int
    end: int
    name: str = ""  # function, aggregation or binary operator (lower case); metric name
    kids: list[Node] = field(default_factory=list)
    op_pos: int = -1  # a binary operator's token
    bool_: bool = False
    grouping: bool = False  # on / ignoring / group_x on a binary operator
    post: list[tuple[str, int]] = field(default_factory=list)
    """Modifiers after the node in order: ("range" | "subquery", `[`), ("offset", start
    of the node), ("at", its operand)."""
    matchers: list[tuple[str, str, str, int]] = field(default_factory=list)
    """A selector's (name, operator, quoted value, offset of the name)."""
    core_end: int = -1
    """Where the node ends before its modifiers (a call's closing parenthesis)."""

    def walk(self) -> Iterator[Node]:
        yield self
        for kid in self.kids:
            yield from kid.walk()


class Recognizer:
    """Recursive descent over the tokens: raises `Unexpected` or returns the tree."""

    def __init__(self, tokens: list[Token]) -> None:
        self.toks = tokens
        self.i = 0
        self.last_end = 0

    def peek(self, k: int = 0) -> Token:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def word(self, k: int = 0) -> str:
        t = self.peek(k)
        return t.text.lower() if t.kind == "ident" else ""

    def take(self) -> Token:
        t = self.peek()
        if t.kind != "eof":
            self.i += 1
            self.last_end = t.end
        return t

    def expect(self, text: str, context: str = "", expected: str = "") -> Token:
        if self.peek().text != text or self.peek().kind not in ("op", "ident"):
            raise Unexpected(self.peek(), context, expected)
        return self.take()

    def query(self) -> Node:
        node = self.expr(1)
        if self.peek().kind != "eof":
            raise Unexpected(self.peek())
        return node

    def binary_op(self) -> str:
        t = self.peek()
        if t.kind == "op" and t.text in PRECEDENCE:
            return t.text
        return self.word() if self.word() in WORD_OPERATORS else ""

    def expr(self, min_prec: int) -> Node:
        lhs = self.unary()
        while (op := self.binary_op()) and PRECEDENCE[op] >= min_prec:
            op_tok = self.take()
            has_bool = grouping = False
            if self.word() == "bool":
                self.take()
                has_bool = True
            if self.word() in ("on", "ignoring"):
                self.take()
                self.label_list()
                grouping = True
                if self.word() in ("group_left", "group_right"):
                    self.take()
                    if self.peek().text == "(":
                        self.label_list()
            rhs = self.expr(PRECEDENCE[op] + (0 if op == "^" else 1))
            lhs = Node("binary", lhs.start, rhs.end, op, [lhs, rhs], op_tok.pos, has_bool, grouping)
        return lhs

    def unary(self) -> Node:
        t = self.peek()
        if t.kind == "op" and t.text in ("+", "-"):
            self.take()
            inner = self.unary()
            return Node("unary", t.pos, inner.end, t.text, [inner])
        return self.postfix(self.primary())

    def primary(self) -> Node:
        t = self.peek()
        if t.kind in ("number", "string") or (t.kind == "ident" and self.word() in ("inf", "nan")):
            self.take()
            kind = "string" if t.kind == "string" else "number"
            return Node(kind, t.pos, t.end)
        if t.kind == "op" and t.text == "(":
            self.take()
            inner = self.expr(1)
            self.expect(")")
            return Node("paren", t.pos, self.last_end, kids=[inner])
        if t.kind == "op" and t.text == "{":
            node = Node("selector", t.pos, t.end)
            self.matchers(node)
            return node
        if t.kind != "ident" or self.word() in NOT_METRIC_NAMES:
            raise Unexpected(t)
        word = self.word()
        if word in AGGREGATORS and (self.peek(1).text == "(" or self.word(1) in ("by", "without")):
            return self.aggregation()
        self.take()
        if self.peek().text == "(":
            args = self.arguments()
            return Node("call", t.pos, self.last_end, t.text, args, core_end=self.last_end)
        node = Node("selector", t.pos, t.end, t.text)
        if self.peek().text == "{":
            self.matchers(node)
        return node

    def arguments(self) -> list[Node]:
        self.expect("(")
        args: list[Node] = []
        if self.peek().text != ")":
            args.append(self.expr(1))
            while self.peek().text == ",":
                self.take()
                args.append(self.expr(1))
        self.expect(")")
        return args

    def aggregation(self) -> Node:
        t = self.take()
        clause = self.word() in ("by", "without")
        if clause:
            self.take()
            self.label_list()
        args = self.arguments()
        if not clause and self.word() in ("by", "without"):
            self.take()
            self.label_list()
        return Node("agg", t.pos, self.last_end, t.text.lower(), args)

    def label_list(self) -> None:
        context = "grouping opts"
        self.expect("(", context, '"("')
        if self.peek().text == ")":
            self.take()
            return
        while True:
            t = self.peek()
            if t.kind not in ("ident", "string"):
                raise Unexpected(t, context, "label")
            self.take()
            t = self.peek()
            if t.text == ",":
                self.take()
                if self.peek().text == ")":
                    self.take()
                    return
                continue
            if t.text == ")":
                self.take()
                return
            raise Unexpected(t, context, '"," or ")"')

    def matchers(self, node: Node) -> None:
        context = "label matching"
        self.take()  # {
        while True:
            t = self.peek()
            if t.text == "}" and t.kind == "op":
                self.take()
                node.end = t.end
                return
            if t.kind not in ("ident", "string"):
                raise Unexpected(t, context, 'identifier or "}"')
            name = self.take()
            op = self.peek()
            if op.kind == "op" and op.text in ("=", "!=", "=~", "!~"):
                self.take()
                value = self.peek()
                if value.kind != "string":
                    raise Unexpected(value, context, "string")
                self.take()
                node.matchers.append((name.text, op.text, value.text, name.pos))
            elif not (name.kind == "string" and op.text in (",", "}")):
                raise Unexpected(op, context, "label matching operator")
            t = self.peek()
            if t.text == "," or (t.kind == "ident" and t.text.lower() == "or"):
                self.take()
            elif t.text != "}":
                raise Unexpected(t, context, '"," or "}"')

    def postfix(self, node: Node) -> Node:
        while True:
            t = self.peek()
            if t.kind == "op" and t.text == "[":
                self.take()
                self.duration()
                kind = "range"
                if self.peek().text == ":":
                    self.take()
                    kind = "subquery"
                    if self.peek().text != "]":
                        self.duration()
                self.expect("]")
                node.post.append((kind, t.pos))
            elif self.word() == "offset":
                self.take()
                while self.peek().text in ("+", "-"):
                    self.take()
                if self.peek().kind not in ("duration", "number"):
                    raise Unexpected(self.peek(), "offset", "duration")
                self.take()
                node.post.append(("offset", node.start))
            elif t.kind == "op" and t.text == "@":
                self.take()
                operand = self.peek()
                if self.word() in ("start", "end"):
                    self.take()
                    self.expect("(")
                    self.expect(")")
                else:
                    while self.peek().text in ("+", "-"):
                        self.take()
                    if self.peek().kind not in ("number", "duration"):
                        raise Unexpected(self.peek(), "@", "timestamp")
                    self.take()
                node.post.append(("at", operand.pos))
            else:
                node.end = max(node.end, self.last_end)
                return node

    def duration(self) -> None:
        if self.peek().kind not in ("duration", "number"):
            raise Unexpected(self.peek())
        self.take()
