"""Our own PromQL token stream, with the offset of every token.

promql-parser's tree carries no positions, so `promql.parser` walks this
stream beside it to place nodes, and `promql.parse_errors` walks it to place
errors. It is a plain lexer: it never decides whether a query is valid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    """ident, number, duration, string, op (operators and punctuation), char
    (a character no PromQL token starts with) or eof."""
    text: str
    pos: int
    """0-based offset of the first character in the query."""

    @property
    def end(self) -> int:
        return self.pos + len(self.text)


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<duration>(?:[0-9]+(?:ms|[smhdwy]))+(?![A-Za-z0-9_]))
  | (?P<number>0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<ident>(?!:[0-9])[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<op>==|!=|>=|<=|=~|!~|[-+*/%^(){}\[\],:@=<>])
    """,
    re.VERBOSE | re.DOTALL,
)


def tokenize(text: str) -> list[Token]:
    """The tokens of `text`, comments and spaces left out, ending with an `eof` token."""
    out = []
    pos = 0
    n = len(text)
    while pos < n:
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            # an unterminated quote, or a character PromQL has no use for
            out.append(Token("char", text[pos], pos))
            pos += 1
            continue
        kind = m.lastgroup or "op"
        if kind != "ws":
            out.append(Token(kind, m.group(), pos))
        pos = m.end()
    out.append(Token("eof", "", n))
    return out


_ESCAPES = {
    "a": 7,
    "b": 8,
    "f": 12,
    "n": 10,
    "r": 13,
    "t": 9,
    "v": 11,
    "\\": 92,
    "'": 39,
    '"': 34,
    "`": 96,
}


def unquote(text: str) -> str:
    """Decode a PromQL (Go) string literal, quotes included.

    Escapes produce bytes (`\\xff`, octal) or code points (`\\u00e4`); the
    bytes are decoded as UTF-8 with `surrogateescape`, so invalid UTF-8 stays
    detectable (label names must be valid UTF-8) instead of turning into
    other characters.
    """
    quote, body = text[0], text[1:-1]
    if quote == "`":
        return body
    out = bytearray()
    i = 0
    n = len(body)
    while i < n:
        c = body[i]
        if c != "\\" or i + 1 >= n:
            out += c.encode("utf-8", "surrogateescape")
            i += 1
            continue
        e = body[i + 1]
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
        elif e == "x":
            out.append(int(body[i + 2 : i + 4], 16))
            i += 4
        elif e in "01234567":
            out.append(int(body[i + 1 : i + 4], 8) & 0xFF)
            i += 4
        elif e == "u":
            out += chr(int(body[i + 2 : i + 6], 16)).encode("utf-8", "surrogatepass")
            i += 6
        elif e == "U":
            out += chr(int(body[i + 2 : i + 10], 16)).encode("utf-8", "surrogatepass")
            i += 10
        else:
            out += ("\\" + e).encode()
            i += 2
    return out.decode("utf-8", "surrogateescape")
