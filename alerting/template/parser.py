"""Parse a template into a tree, with the checks Go makes at parse time.

Go's parser (`text/template/parse/parse.go`, Go 1.19) rejects undefined
functions, undeclared variables, empty commands, literals used as later
pipeline stages and `break`/`continue` outside `range`, all before anything
runs; these are load-time errors here too. The constructs this subset leaves
out (`define`, `template`, `block`, functions such as `call`) are refused the
same way, so a rule file that uses them fails to load instead of rendering a
wrong message later.
"""

from __future__ import annotations

from collections.abc import Collection

from alerting.template import nodes as n
from alerting.template.lexer import Kind, Lexer, TemplateSyntaxError, Token

_OPERAND_START = {
    Kind.BOOL,
    Kind.CHAR_CONSTANT,
    Kind.DOT,
    Kind.FIELD,
    Kind.IDENTIFIER,
    Kind.NUMBER,
    Kind.RAW_STRING,
    Kind.STRING,
    Kind.VARIABLE,
    Kind.LPAREN,
}
_UNSUPPORTED_KEYWORDS = {"define", "template", "block"}


class Parser:
    """One template's parse; `parse()` returns the root list."""

    def __init__(
        self, text: str, functions: Collection[str], unsupported: Collection[str] = ()
    ) -> None:
        self.tokens = Lexer(text).tokens()
        self.i = 0
        self.functions = functions
        self.unsupported = unsupported
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.last_line = 1

    # -- token stream (Go's next / backup / peekNonSpace) ------------------------

    def next(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind is Kind.ERROR:
            raise TemplateSyntaxError(tok.text, tok.line)
        if tok.kind is not Kind.EOF:
            self.i += 1
        self.last_line = tok.line
        return tok

    def backup(self, count: int = 1) -> None:
        self.i -= count

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next_non_space(self) -> Token:
        tok = self.next()
        while tok.kind is Kind.SPACE:
            tok = self.next()
        return tok

    def peek_non_space(self) -> Token:
        """The next token that is not a space; the spaces before it are consumed."""
        while self.tokens[self.i].kind is Kind.SPACE:
            self.i += 1
        tok = self.tokens[self.i]
        if tok.kind is Kind.ERROR:
            raise TemplateSyntaxError(tok.text, tok.line)
        return tok

    def error(self, message: str) -> TemplateSyntaxError:
        return TemplateSyntaxError(message, self.last_line)

    def unexpected(self, tok: Token, context: str) -> TemplateSyntaxError:
        return self.error(f"unexpected {tok.describe()} in {context}")

    def expect(self, kind: Kind, context: str) -> Token:
        tok = self.next_non_space()
        if tok.kind is not kind:
            raise self.unexpected(tok, context)
        return tok

    # -- structure ---------------------------------------------------------------

    def parse(self) -> n.ListNode:
        root = n.ListNode(0)
        while self.peek().kind is not Kind.EOF:
            node = self.text_or_action()
            if isinstance(node, n.EndNode | n.ElseNode):
                raise self.error(f"unexpected {node}")
            root.nodes.append(node)
        return root

    def item_list(self) -> tuple[n.ListNode, n.Node]:
        body = n.ListNode(self.peek_non_space().pos)
        while self.peek_non_space().kind is not Kind.EOF:
            node = self.text_or_action()
            if isinstance(node, n.EndNode | n.ElseNode):
                return body, node
            body.nodes.append(node)
        raise self.error("unexpected EOF")

    def text_or_action(self) -> n.Node:
        tok = self.next_non_space()
        if tok.kind is Kind.TEXT:
            return n.TextNode(tok.pos, tok.text)
        if tok.kind is Kind.LEFT:
            return self.action()
        raise self.unexpected(tok, "input")

    def action(self) -> n.Node:
        tok = self.next_non_space()
        if tok.kind is Kind.KEYWORD:
            word = tok.text
            if word in _UNSUPPORTED_KEYWORDS:
                raise self.error(f"{{{{{word}}}}} is not supported in alert templates")
            if word == "break" or word == "continue":
                end = self.next_non_space()
                if end.kind is not Kind.RIGHT:
                    raise self.unexpected(end, f"{{{{{word}}}}}")
                if self.range_depth == 0:
                    raise self.error(f"{{{{{word}}}}} outside {{{{range}}}}")
                return n.BreakNode(tok.pos) if word == "break" else n.ContinueNode(tok.pos)
            if word == "else":
                peek = self.peek_non_space()
                if peek.kind is Kind.KEYWORD and peek.text == "if":
                    return n.ElseNode(peek.pos)  # "else if": the "if" stays pending
                return n.ElseNode(self.expect(Kind.RIGHT, "else").pos)
            if word == "end":
                return n.EndNode(self.expect(Kind.RIGHT, "end").pos)
            if word in ("if", "with", "range"):
                return self.control(word)
        self.backup()
        start = self.peek()
        # Variables declared here live until the enclosing control's {{end}}.
        return n.ActionNode(start.pos, self.pipeline("command", Kind.RIGHT))

    def control(self, kind: str) -> n.BranchNode:
        mark = len(self.vars)
        try:
            pipe = self.pipeline(kind, Kind.RIGHT)
            if kind == "range":
                self.range_depth += 1
            body, nxt = self.item_list()
            if kind == "range":
                self.range_depth -= 1
            else_body = None
            if isinstance(nxt, n.ElseNode):
                peek = self.peek()
                if kind == "if" and peek.kind is Kind.KEYWORD and peek.text == "if":
                    self.next()
                    else_body = n.ListNode(nxt.pos, [self.control("if")])
                else:
                    else_body, nxt = self.item_list()
                    if not isinstance(nxt, n.EndNode):
                        raise self.error(f"expected end; found {nxt}")
            return n.BranchNode(kind, pipe.pos, pipe, body, else_body)
        finally:
            del self.vars[mark:]

    # -- pipelines -----------------------------------------------------------------

    def pipeline(self, context: str, end: Kind) -> n.PipeNode:
        first = self.peek_non_space()
        pipe = n.PipeNode(first.pos, first.line)
        self._declarations(pipe, context)
        while True:
            tok = self.next_non_space()
            if tok.kind is end:
                self._check_pipeline(pipe, context)
                return pipe
            if tok.kind in _OPERAND_START or (tok.kind is Kind.KEYWORD and tok.text == "nil"):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                raise self.unexpected(tok, context)

    def _declarations(self, pipe: n.PipeNode, context: str) -> None:
        while True:
            var = self.peek_non_space()
            if var.kind is not Kind.VARIABLE:
                return
            mark = self.i
            self.next_non_space()
            nxt = self.peek_non_space()
            if nxt.kind in (Kind.DECLARE, Kind.ASSIGN):
                pipe.is_assign = nxt.kind is Kind.ASSIGN
                self.next_non_space()
                if pipe.is_assign and var.text not in self.vars:
                    raise self.error(f"undefined variable {_q(var.text)}")
                pipe.decl.append(n.VariableNode(var.pos, [var.text]))
                self.vars.append(var.text)
                return
            if nxt.kind is Kind.PUNCT and nxt.text == ",":
                self.next_non_space()
                pipe.decl.append(n.VariableNode(var.pos, [var.text]))
                self.vars.append(var.text)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().kind in (Kind.VARIABLE, Kind.RIGHT, Kind.RPAREN):
                        continue
                    raise self.error("range can only initialize variables")
                raise self.error(f"too many declarations in {context}")
            self.i = mark  # "$x foo": the variable is an argument, not a declaration
            return

    def _check_pipeline(self, pipe: n.PipeNode, context: str) -> None:
        if not pipe.cmds:
            raise self.error(f"missing value for {context}")
        for stage, cmd in enumerate(pipe.cmds[1:], start=2):
            if isinstance(cmd.args[0], n.BoolNode | n.DotNode | n.NilNode | n.NumberNode):
                raise self.error(f"non executable command in pipeline stage {stage}")
            if isinstance(cmd.args[0], n.StringNode):
                raise self.error(f"non executable command in pipeline stage {stage}")

    def command(self) -> n.CommandNode:
        cmd = n.CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            tok = self.next()
            if tok.kind is Kind.SPACE:
                continue
            if tok.kind in (Kind.RIGHT, Kind.RPAREN):
                self.backup()
            elif tok.kind is not Kind.PIPE:
                raise self.unexpected(tok, "operand")
            break
        if not cmd.args:
            raise self.error("empty command")
        return cmd

    def operand(self) -> n.Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().kind is Kind.FIELD:
            pos = self.peek().pos
            fields = []
            while self.peek().kind is Kind.FIELD:
                fields.append(self.next().text[1:])
            # Go places a chained field or variable at its first chained field.
            if isinstance(node, n.FieldNode):
                return n.FieldNode(pos, node.idents + fields)
            if isinstance(node, n.VariableNode):
                return n.VariableNode(pos, node.idents + fields)
            if isinstance(node, n.BoolNode | n.StringNode | n.NumberNode | n.NilNode | n.DotNode):
                raise self.error(f"unexpected . after term {_q(str(node))}")
            return n.ChainNode(pos, node, fields)
        return node

    def term(self) -> n.Node | None:
        tok = self.next_non_space()
        kind = tok.kind
        if kind is Kind.IDENTIFIER:
            if tok.text not in self.functions:
                if tok.text in self.unsupported:
                    raise self.error(
                        f"function {_q(tok.text)} is not supported in alert templates here"
                    )
                raise self.error(f"function {_q(tok.text)} not defined")
            return n.IdentifierNode(tok.pos, tok.text)
        if kind is Kind.DOT:
            return n.DotNode(tok.pos)
        if kind is Kind.KEYWORD and tok.text == "nil":
            return n.NilNode(tok.pos)
        if kind is Kind.VARIABLE:
            if tok.text not in self.vars:
                raise self.error(f"undefined variable {_q(tok.text)}")
            return n.VariableNode(tok.pos, [tok.text])
        if kind is Kind.FIELD:
            return n.FieldNode(tok.pos, [tok.text[1:]])
        if kind is Kind.BOOL:
            return n.BoolNode(tok.pos, tok.text == "true")
        if kind in (Kind.NUMBER, Kind.CHAR_CONSTANT):
            return self.number(tok)
        if kind is Kind.LPAREN:
            return self.pipeline("parenthesized pipeline", Kind.RPAREN)
        if kind is Kind.STRING:
            return n.StringNode(tok.pos, tok.text, unquote_go(tok.text, self))
        if kind is Kind.RAW_STRING:
            return n.StringNode(tok.pos, tok.text, tok.text[1:-1].replace("\r", ""))
        self.backup()
        return None

    def number(self, tok: Token) -> n.NumberNode:
        text = tok.text
        if tok.kind is Kind.CHAR_CONSTANT:
            body = unquote_go('"' + text[1:-1].replace('"', '\\"') + '"', self)
            if len(body) != 1:
                raise self.error(f"malformed character constant: {text}")
            code = ord(body)
            return n.NumberNode(tok.pos, text, code, float(code))
        clean = text.replace("_", "")
        int_value: int | None = None
        float_value: float | None = None
        digits = clean.lstrip("+-")
        try:
            if len(digits) > 1 and digits[0] == "0" and digits.isdigit():
                int_value = int(clean, 8)  # Go reads a leading zero as octal
            else:
                int_value = int(clean, 0)
        except ValueError:
            pass
        if int_value is not None:
            if not -(1 << 63) <= int_value < (1 << 64):
                raise self.error(f"integer overflow: {_q(text)}")
            float_value = float(int_value)
        else:
            try:
                float_value = float(clean)
            except ValueError:
                raise self.error(f"illegal number syntax: {_q(text)}") from None
            if float_value.is_integer() and abs(float_value) < 2**63:
                int_value = int(float_value)
        return n.NumberNode(tok.pos, text, int_value, float_value)


_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}


def unquote_go(quoted: str, parser: Parser) -> str:
    """Go's `strconv.Unquote` of a double-quoted literal."""
    out = []
    body = quoted[1:-1]
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        esc = body[i + 1 : i + 2]
        if esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            i += 2
        elif esc in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i + 2 : i + 2 + width]
            try:
                code = int(digits, 16)
            except ValueError:
                raise parser.error("invalid syntax") from None
            if len(digits) != width:
                raise parser.error("invalid syntax")
            # \x is a byte; as text, a byte above 0x7f stands for itself (Latin-1 here).
            out.append(chr(code))
            i += 2 + width
        elif esc and esc in "01234567":
            digits = body[i + 1 : i + 4]
            try:
                out.append(chr(int(digits, 8)))
            except ValueError:
                raise parser.error("invalid syntax") from None
            i += 4
        else:
            raise parser.error("invalid syntax")
    return "".join(out)


def _q(text: str) -> str:
    """Go's `%q` for the identifiers and texts in parse errors (plain ASCII here)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
