"""Tokens of Go's text/template, as Go 1.19's `text/template/parse/lex.go` cuts them.

Text outside `{{ }}` is one token; inside an action the lexer yields fields,
variables, identifiers, literals, `|`, `(`, `)`, `:=`, `=`, `,` and spaces
(spaces separate the arguments of a command, so they are tokens too). Trim
markers (`{{- ` and ` -}}`) remove the whitespace next to the action from the
neighbouring text, and `{{/* */}}` comments vanish. Positions are byte offsets
into the UTF-8 text, as Go reports them in error messages.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from promql.eval.gofmt import go_quote

LEFT = "{{"
RIGHT = "}}"
_SPACE = " \t\r\n"
_SPACE_CHARS = frozenset(_SPACE)
_KEYWORDS = {
    "block",
    "break",
    "continue",
    "define",
    "else",
    "end",
    "if",
    "range",
    "nil",
    "template",
    "with",
}


class Kind(enum.Enum):
    TEXT = "text"
    LEFT = "{{"
    RIGHT = "}}"
    SPACE = "space"
    FIELD = "field"  # .Name
    VARIABLE = "variable"  # $name or $
    IDENTIFIER = "identifier"
    KEYWORD = "keyword"
    BOOL = "bool"
    NUMBER = "number"
    STRING = "string"
    RAW_STRING = "raw string"
    CHAR_CONSTANT = "char constant"
    DOT = "."
    PIPE = "|"
    LPAREN = "("
    RPAREN = ")"
    DECLARE = ":="
    ASSIGN = "="
    PUNCT = "char"  # any other printable ASCII character (Go's itemChar), ',' included
    ERROR = "error"
    EOF = "EOF"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    text: str
    pos: int  # byte offset
    line: int

    def describe(self) -> str:
        """How Go's parser names a token in "unexpected ..." messages (`item.String()`)."""
        if self.kind is Kind.EOF:
            return "EOF"
        if self.kind in (Kind.KEYWORD, Kind.DOT, Kind.BOOL):
            return f"<{self.text}>"
        if len(self.text) > 10:
            return go_quote(self.text[:10]) + "..."
        return go_quote(self.text)


class TemplateSyntaxError(Exception):
    """A template that does not parse; `line` is 1-based, as Go reports it."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class Lexer:
    """Cuts a template into tokens (call `tokens()` once)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.out: list[Token] = []
        self.paren_depth = 0
        self._byte_base: list[int] | None = None

    def byte_pos(self, i: int) -> int:
        """Byte offset of character `i` (differs from `i` only after non-ASCII text)."""
        if self.text.isascii():
            return i
        if self._byte_base is None:
            acc = [0]
            for ch in self.text:
                acc.append(acc[-1] + len(ch.encode("utf-8", "surrogatepass")))
            self._byte_base = acc
        return self._byte_base[i]

    def emit(self, kind: Kind, start: int, end: int) -> None:
        text = self.text[start:end]
        self.out.append(Token(kind, text, self.byte_pos(start), self.line))
        self.line += text.count("\n")

    def error(self, message: str) -> TemplateSyntaxError:
        return TemplateSyntaxError(message, self.line)

    def tokens(self) -> list[Token]:
        """Every token; a lexical error ends the list as an ERROR token, as Go's
        lexer ends its stream, so that the parser reports what comes first."""
        try:
            return self._tokens()
        except TemplateSyntaxError as exc:
            self.out.append(Token(Kind.ERROR, str(exc), self.byte_pos(self.pos), exc.line))
            return self.out

    def _tokens(self) -> list[Token]:
        text = self.text
        while True:
            start = self.pos
            at = text.find(LEFT, start)
            if at < 0:
                if start < len(text):
                    self.emit(Kind.TEXT, start, len(text))
                self.out.append(Token(Kind.EOF, "", self.byte_pos(len(text)), self.line))
                return self.out
            trim_left = text.startswith("-", at + 2) and text[at + 3 : at + 4] in _SPACE_CHARS
            end_text = at
            if trim_left:
                while end_text > start and text[end_text - 1] in _SPACE:
                    end_text -= 1
            if end_text > start:
                self.emit(Kind.TEXT, start, end_text)
            self.line += text.count("\n", end_text, at)
            self.pos = at
            self._action(trim_left)

    def _action(self, trim_left: bool) -> None:
        text = self.text
        after_delim = self.pos + 2 + (2 if trim_left else 0)
        if text.startswith("/*", after_delim):
            self._comment(after_delim)
            return
        self.emit(Kind.LEFT, self.pos, self.pos + 2)
        self.pos = after_delim
        self.paren_depth = 0
        while True:
            # A right delimiter, possibly with a trim marker before it.
            trim_right = self._at_right_trim()
            if trim_right or text.startswith(RIGHT, self.pos):
                if self.paren_depth:
                    raise self.error("unclosed left paren")
                if trim_right:
                    self.pos += 2  # the space and the dash
                self.emit(Kind.RIGHT, self.pos, self.pos + 2)
                self.pos += 2
                if trim_right:
                    while self.pos < len(text) and text[self.pos] in _SPACE:
                        if text[self.pos] == "\n":
                            self.line += 1
                        self.pos += 1
                return
            if self.pos >= len(text):
                raise self.error("unclosed action")
            self._inside()

    def _at_right_trim(self) -> bool:
        return self._at_right_trim_at(self.pos)

    def _comment(self, start: int) -> None:
        text = self.text
        close = text.find("*/", start + 2)
        if close < 0:
            raise self.error("unclosed comment")
        self.line += text.count("\n", start, close)
        after = close + 2
        trim_right = self._at_right_trim_at(after)
        if trim_right:
            after += 2
        if not text.startswith(RIGHT, after):
            raise self.error("comment ends before closing delimiter")
        self.pos = after + 2
        if trim_right:
            while self.pos < len(text) and text[self.pos] in _SPACE:
                if text[self.pos] == "\n":
                    self.line += 1
                self.pos += 1

    def _inside(self) -> None:
        text = self.text
        start = self.pos
        ch = text[start]
        if ch in _SPACE:
            end = start
            while end < len(text) and text[end] in _SPACE:
                if self._at_right_trim_at(end):
                    break
                end += 1
            if end > start:
                self.emit(Kind.SPACE, start, end)
                self.pos = end
            return
        if ch == "=":
            self._single(Kind.ASSIGN)
        elif ch == ":":
            if not text.startswith(":=", start):
                raise self.error("expected :=")
            self.emit(Kind.DECLARE, start, start + 2)
            self.pos += 2
        elif ch == "|":
            self._single(Kind.PIPE)
        elif ch == '"':
            self._quote(start)
        elif ch == "`":
            close = text.find("`", start + 1)
            if close < 0:
                raise self.error("unterminated raw quoted string")
            self.emit(Kind.RAW_STRING, start, close + 1)
            self.pos = close + 1
        elif ch == "'":
            self._char(start)
        elif ch == "$":
            end = self._word_end(start + 1)
            self.emit(Kind.VARIABLE, start, end)
            self.pos = end
            self._check_terminator()
        elif ch == ".":
            nxt = text[start + 1 : start + 2]
            if nxt.isdigit():
                self._number(start)
                return
            if nxt and _alnum(nxt):
                end = self._word_end(start + 1)
                self.emit(Kind.FIELD, start, end)
                self.pos = end
                self._check_terminator()
                return
            self._single(Kind.DOT)
        elif ch in "+-" or ch.isdigit():
            self._number(start)
        elif _alnum(ch):
            end = self._word_end(start)
            word = text[start:end]
            if word in _KEYWORDS:
                kind = Kind.KEYWORD
            elif word in ("true", "false"):
                kind = Kind.BOOL
            else:
                kind = Kind.IDENTIFIER
            self.emit(kind, start, end)
            self.pos = end
            self._check_terminator()
        elif ch == "(":
            self.paren_depth += 1
            self._single(Kind.LPAREN)
        elif ch == ")":
            self._single(Kind.RPAREN)
            self.paren_depth -= 1
            if self.paren_depth < 0:
                raise self.error(f"unexpected right paren {_go_rune(ch)}")
        elif ch.isascii() and ch.isprintable():
            self._single(Kind.PUNCT)
        else:
            raise self.error(f"unrecognized character in action: {_go_rune(ch)}")

    def _at_right_trim_at(self, i: int) -> bool:
        """A space, then `-}}`: the right delimiter with a trim marker."""
        return self.text[i : i + 1] in _SPACE_CHARS and self.text.startswith("-" + RIGHT, i + 1)

    def _single(self, kind: Kind) -> None:
        self.emit(kind, self.pos, self.pos + 1)
        self.pos += 1

    def _word_end(self, i: int) -> int:
        text = self.text
        while i < len(text) and _alnum(text[i]):
            i += 1
        return i

    def _check_terminator(self) -> None:
        text = self.text
        if self.pos >= len(text):
            return
        ch = text[self.pos]
        if ch in _SPACE or ch in ".,|:)(" or text.startswith(RIGHT, self.pos):
            return
        raise self.error(f"bad character {_go_rune(ch)}")

    def _quote(self, start: int) -> None:
        text = self.text
        i = start + 1
        while True:
            if i >= len(text) or text[i] == "\n":
                raise self.error("unterminated quoted string")
            if text[i] == "\\":
                i += 2
                continue
            if text[i] == '"':
                break
            i += 1
        self.emit(Kind.STRING, start, i + 1)
        self.pos = i + 1

    def _char(self, start: int) -> None:
        text = self.text
        i = start + 1
        while True:
            if i >= len(text) or text[i] == "\n":
                raise self.error("unterminated character constant")
            if text[i] == "\\":
                i += 2
                continue
            if text[i] == "'":
                break
            i += 1
        self.emit(Kind.CHAR_CONSTANT, start, i + 1)
        self.pos = i + 1

    def _number(self, start: int) -> None:
        text = self.text
        i = start
        if text[i] in "+-":
            i += 1
        digits = "0123456789_"
        if text.startswith(("0x", "0X"), i):
            i += 2
            digits = "0123456789abcdefABCDEF_"
        elif text.startswith(("0o", "0O"), i):
            i += 2
            digits = "01234567_"
        elif text.startswith(("0b", "0B"), i):
            i += 2
            digits = "01_"
        while i < len(text) and text[i] in digits:
            i += 1
        if text[i : i + 1] == ".":
            i += 1
            while i < len(text) and text[i] in digits:
                i += 1
        if len(digits) == 11 and text[i : i + 1] in ("e", "E"):
            i += 1
            if text[i : i + 1] in ("+", "-"):
                i += 1
            while i < len(text) and text[i] in "0123456789_":
                i += 1
        if i < len(text) and (_alnum(text[i]) or text[i] == "."):
            raise self.error(f"bad number syntax: {text[start : i + 1]!r}".replace("'", '"'))
        self.emit(Kind.NUMBER, start, i)
        self.pos = i


def _alnum(ch: str) -> bool:
    return ch == "_" or ch.isalnum()


def _go_rune(ch: str) -> str:
    """Go's `%#U` of a rune: `U+0021 '!'`."""
    return f"U+{ord(ch):04X} '{ch}'" if ch.isprintable() else f"U+{ord(ch):04X}"
