"""Parse errors worded and placed as Prometheus does: `1:5: parse error: <reason>`.

promql-parser says what is wrong but not where, sometimes in other words than
Prometheus, and for a syntax error its grammar cannot explain only "invalid
promql query". `locate(text, message, reparse)` turns its message into
Prometheus's reason and the offset Prometheus reports, from our own token
stream:

- input that ends too early (open parenthesis, brace or bracket; `offset` or
  `@` without operand): the end of the text;
- lexer errors (a closer without opener, a stray character, an unterminated
  string): that character;
- "invalid promql query": a recursive-descent recognizer (`Recognizer`)
  walks the tokens and stops at the first one no PromQL expression can go on
  with, worded as Prometheus's parser words it (`unexpected identifier "bar"`,
  plus the context and what it expected where Prometheus names them);
- type, arity and modifier errors: the node Prometheus points at, found in the
  recognizer's tree (for a wrongly typed argument, by putting a value of the
  expected type in its place and parsing again).

Anything else keeps promql-parser's words and no position. Only failed parses
come here, so none of this is on a hot path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from promql.recognizer import COMPARISONS, Node, Recognizer, Unexpected, describe
from promql.tokens import Token, tokenize, unquote
from storage.labels import InvalidRegex, Matcher, MatchType, compile_anchored

_TYPE_WORDS = {"matrix": "range vector", "vector": "instant vector"}
_DUMMY = {"scalar": "0", "string": '""', "vector": "up", "matrix": "up[1m]"}


@dataclass(frozen=True, slots=True)
class Reparse:
    """promql-parser asked again about other texts (`promql.parser` is its only importer)."""

    error: Callable[[str], str | None]
    """Its message for a text, None when the text parses."""
    call_type: Callable[[str], str | None]
    """scalar, vector, matrix or string: what the function call written in a text returns."""


@dataclass(frozen=True, slots=True)
class _Job:
    """One query being located: its text, its tokens, and promql-parser to ask again."""

    text: str
    tokens: list[Token]
    reparse: Reparse


def locate(text: str, message: str, reparse: Reparse) -> tuple[str, int | None]:
    """Prometheus's reason for promql-parser's `message` about `text`, and its offset."""
    job = _Job(text, tokenize(text), reparse)
    for pattern, handler in _HANDLERS:
        m = pattern.fullmatch(message)
        if m is not None:
            try:
                return handler(job, m)
            except RecursionError:  # nested deeper than our recursive descent goes
                return message, None
    return message, None


def regex_position(text: str, pattern: str) -> int | None:
    """Where the matcher with regex `pattern` names its label (Prometheus points there)."""
    tree = _tree(tokenize(text))
    if tree is None:
        return None
    return _regex_in(tree, pattern)


def selector_error(text: str) -> tuple[str, int]:
    """Why valid PromQL `text` is no series selector: Prometheus's selector parser stops
    at the first token after a leading `name{...}` (`unexpected "("` in `rate(x[5m])`)."""
    tokens = tokenize(text)
    i = 0
    if tokens[0].kind == "ident":
        i = 1
    if tokens[i].kind == "op" and tokens[i].text == "{":
        depth = 0
        for j in range(i, len(tokens)):
            depth += {"{": 1, "}": -1}.get(tokens[j].text, 0) if tokens[j].kind == "op" else 0
            if depth == 0:
                i = j + 1
                break
    tok = tokens[min(i, len(tokens) - 1)]
    return f"unexpected {describe(tok)}", tok.pos


# --- the end of the input, lexer errors --------------------------------------------


def _at_end(reason: str) -> Handler:
    return lambda job, m: (reason or m.group(0), len(job.text))


def _unclosed_bracket(job: _Job, m: re.Match[str]) -> tuple[str, int]:
    # Prometheus's lexer reports an open parenthesis before an open bracket
    depth = sum(1 if t.text == "(" else -1 if t.text == ")" else 0 for t in job.tokens)
    return ("unclosed left parenthesis" if depth > 0 else "unclosed left bracket"), len(job.text)


def _first_unbalanced(tokens: list[Token], opener: str, closer: str) -> Token | None:
    depth = 0
    for t in tokens:
        if t.kind == "op" and t.text == opener:
            depth += 1
        elif t.kind == "op" and t.text == closer:
            depth -= 1
            if depth < 0:
                return t
    return None


def _stray(reason: str, opener: str, closer: str, after: bool = False) -> Handler:
    def handler(job: _Job, m: re.Match[str]) -> tuple[str, int | None]:
        t = _first_unbalanced(job.tokens, opener, closer)
        return reason, None if t is None else t.pos + (1 if after else 0)

    return handler


def _unexpected_char(job: _Job, m: re.Match[str]) -> tuple[str, int | None]:
    char = m.group(1)
    t = next((t for t in job.tokens if t.kind == "char" and t.text == char), None)
    return m.group(0), None if t is None else t.pos


def _unterminated(job: _Job, m: re.Match[str]) -> tuple[str, int | None]:
    t = next((t for t in job.tokens if t.kind == "char" and t.text in "\"'`"), None)
    return "unterminated quoted string", None if t is None else t.pos


def _second_colon(job: _Job, m: re.Match[str]) -> tuple[str, int | None]:
    depth, colons = 0, 0
    for t in job.tokens:
        if t.text == "[":
            depth, colons = depth + 1, 0
        elif t.text == "]":
            depth -= 1
        elif t.text == ":" and depth > 0:
            colons += 1
            if colons == 2:
                return "unexpected colon ':'", t.pos
    return "unexpected colon ':'", None


def _escape(job: _Job, m: re.Match[str]) -> tuple[str, int | None]:
    char = m.group(1)
    reason = f"unknown escape sequence U+{ord(char):04X} {m.group(0)[-3:]}"
    t = next((t for t in job.tokens if t.kind == "string" and "\\" + char in t.text), None)
    return reason, None if t is None else t.pos


def _bad_number(job: _Job, m: re.Match[str]) -> tuple[str, int | None]:
    where = job.text.find(m.group(1))
    return m.group(0), None if where < 0 else where


def _syntax(job: _Job, m: re.Match[str]) -> tuple[str, int | None]:
    try:
        Recognizer(job.tokens).query()
    except Unexpected as exc:
        return exc.reason, exc.token.pos
    return m.group(0), None


# --- semantic errors: the node they are about ------------------------------------------


def _tree(tokens: list[Token]) -> Node | None:
    try:
        return Recognizer(tokens).query()
    except Unexpected:
        return None


def _value_type(job: _Job, node: Node) -> str:
    """scalar, vector, matrix or string: what `node` evaluates to."""
    base = node.kind
    if base == "number":
        t = "scalar"
    elif base == "string":
        t = "string"
    elif base in ("paren", "unary"):
        t = _value_type(job, node.kids[0])
    elif base == "binary":
        both = {_value_type(job, k) for k in node.kids}
        t = "scalar" if both == {"scalar"} else "vector"
    elif base == "call":
        t = _call_type(job, node)
    else:
        t = "vector"
    if any(kind in ("range", "subquery") for kind, _ in node.post):
        t = "matrix"
    return t


def _call_type(job: _Job, node: Node) -> str:
    return job.reparse.call_type(job.text[node.start : node.core_end]) or "vector"


def _fixes(job: _Job, node: Node, want: str, got: str, message: str) -> bool:
    """Does a `want` value in place of `node` take `message` away?

    It does when the query then parses, or fails for another reason than this
    mismatch or the reverse one (a `want` value where a `got` one belonged).
    """
    error = job.reparse.error(job.text[: node.start] + _DUMMY[want] + job.text[node.end :])
    swapped = message.replace(f"type {want} ", f"type {got} ").replace(f"got {got}", f"got {want}")
    return error not in (message, swapped)


def _semantic(find: Finder, reason: str) -> Handler:
    """A handler placing `reason` (a template over the message's groups) at `find`'s node."""

    def handler(job: _Job, m: re.Match[str]) -> tuple[str, int | None]:
        words = dict(m.groupdict())
        for k in ("want", "got"):
            if k in words:
                words[k] = _TYPE_WORDS.get(words[k], words[k])
        tree = _tree(job.tokens)
        return reason.format(**words), None if tree is None else find(job, tree, m)

    return handler


def _first(nodes: Iterator[Node], test: Callable[[Node], bool]) -> Node | None:
    return next((n for n in nodes if test(n)), None)


def _start(node: Node | None) -> int | None:
    return None if node is None else node.start


def _find_call(job: _Job, tree: Node, m: re.Match[str]) -> int | None:
    name = m.group("f")
    got = m.groupdict().get("got")
    return _start(
        _first(
            tree.walk(),
            lambda n: (
                n.kind == "call" and n.name == name and (got is None or len(n.kids) == int(got))
            ),
        )
    )


def _find_agg(job: _Job, tree: Node, m: re.Match[str]) -> int | None:
    got = int(m.groupdict().get("got") or 0)
    name = m.groupdict().get("f")
    return _start(
        _first(
            tree.walk(),
            lambda n: n.kind == "agg" and len(n.kids) == got and (name is None or n.name == name),
        )
    )


def _find_argument(job: _Job, tree: Node, m: re.Match[str]) -> int | None:
    want, got = m.group("want"), m.group("got")
    if m.groupdict().get("f"):
        holders = [n for n in tree.walk() if n.kind == "call" and n.name == m.group("f")]
        args = [a for n in holders for a in n.kids]
    else:  # an aggregation's parameter
        args = [n.kids[0] for n in tree.walk() if n.kind == "agg" and len(n.kids) == 2]
    candidates = [a for a in args if _value_type(job, a) == got]
    for arg in candidates:
        if _fixes(job, arg, want, got, m.group(0)):
            return arg.start
    return candidates[0].start if candidates else None


def _find_set_operator(job: _Job, tree: Node, m: re.Match[str]) -> int | None:
    op = m.group("op")
    grouping = m.group(0).startswith("no grouping")
    return _start(
        _first(
            tree.walk(),
            lambda n: (
                n.kind == "binary"
                and n.name == op
                and (n.grouping if grouping else "scalar" in {_value_type(job, k) for k in n.kids})
            ),
        )
    )


def _find_operand(job: _Job, tree: Node, m: re.Match[str]) -> int | None:
    for n in tree.walk():
        if n.kind == "binary":
            for side in n.kids:
                if _value_type(job, side) in ("matrix", "string"):
                    return side.start
    return None


def _find_unary(job: _Job, tree: Node, m: re.Match[str]) -> int | None:
    return _start(
        _first(
            tree.walk(),
            lambda n: n.kind == "unary" and _value_type(job, n.kids[0]) in ("matrix", "string"),
        )
    )


def _find_operator(job: _Job, tree: Node, m: re.Match[str]) -> int | None:
    scalars = m.group(0).startswith("comparisons")
    for n in tree.walk():
        if n.kind != "binary":
            continue
        if scalars and n.name in COMPARISONS and not n.bool_:
            if {_value_type(job, k) for k in n.kids} == {"scalar"}:
                return n.op_pos
        if not scalars and n.bool_ and n.name not in COMPARISONS:
            return n.op_pos
    return None


def _find_range(job: _Job, tree: Node, m: re.Match[str]) -> int | None:
    for n in tree.walk():
        selector = n.kind == "selector"
        for kind, pos in n.post:
            if kind == "range" and not selector:
                return pos
            if kind in ("range", "subquery"):
                selector = False
    return None


def _find_modifier_twice(kind: str) -> Finder:
    def find(job: _Job, tree: Node, m: re.Match[str]) -> int | None:
        return _start(_first(tree.walk(), lambda n: sum(1 for k, _ in n.post if k == kind) > 1))

    return find


def _find_misplaced(kind: str) -> Finder:
    """A node an `offset` or `@` follows that is neither a selector nor a range of one."""

    def find(job: _Job, tree: Node, m: re.Match[str]) -> int | None:
        for n in tree.walk():
            ranged = False
            for k, _ in n.post:
                if k == kind and n.kind != "selector" and not ranged:
                    return n.start
                ranged = ranged or k in ("range", "subquery")
        return None

    return find


def _find_misplaced_modifier(job: _Job, tree: Node, m: re.Match[str]) -> int | None:
    return _find_misplaced("offset" if m.group("mod") == "offset" else "at")(job, tree, m)


def _find_subquery(job: _Job, tree: Node, m: re.Match[str]) -> int | None:
    for n in tree.walk():
        matrix = False
        for kind, _ in n.post:
            if kind == "subquery" and matrix:
                return n.start
            matrix = matrix or kind in ("range", "subquery")
    return None


def _find_at_operand(job: _Job, tree: Node, m: re.Match[str]) -> int | None:
    return next((pos for n in tree.walk() for k, pos in n.post if k == "at"), None)


def _find_selector(
    test: Callable[[Node], bool],
) -> Finder:
    return lambda job, tree, m: _start(
        _first(tree.walk(), lambda n: n.kind == "selector" and test(n))
    )


def _all_match_empty(node: Node) -> bool:
    if node.name:
        return False
    kinds = {"=": MatchType.EQ, "!=": MatchType.NEQ, "=~": MatchType.RE, "!~": MatchType.NRE}
    try:
        return all(
            Matcher(kinds[op], name, unquote(value)).matches_empty
            for name, op, value, _ in node.matchers
        )
    except InvalidRegex:
        return False


_RE2_TO_GO = {
    "missing )": "missing closing )",
    "missing ]": "missing closing ]",
    "bad repetition operator": "invalid nested repetition operator",
    "invalid repetition size": "invalid repeat count",
}


def regex_reason(pattern: str) -> str | None:
    """Go's `error parsing regexp: <what>: `<where>`` for a pattern RE2 refuses, else None.

    RE2 and Go's regexp package name errors alike (Go's is modelled on RE2); the
    few that differ in words are translated.
    """
    try:
        compile_anchored(pattern)
    except InvalidRegex as exc:
        prefix = f"invalid regular expression {pattern!r}: "
        what, _, where = str(exc).removeprefix(prefix).partition(": ")
        return f"error parsing regexp: {_RE2_TO_GO.get(what, what)}: `{where}`"
    return None


def _illegal_regex(job: _Job, m: re.Match[str]) -> tuple[str, int | None]:
    tree = _tree(job.tokens)
    position = None if tree is None else _regex_in(tree, m.group("re"))
    return regex_reason(m.group("re")) or m.group(0), position


def _regex_in(tree: Node, pattern: str) -> int | None:
    for n in tree.walk():
        for _, op, value, pos in n.matchers:
            if op in ("=~", "!~") and unquote(value) == pattern:
                return pos
    return None


Handler = Callable[[_Job, re.Match[str]], tuple[str, int | None]]
Finder = Callable[[_Job, Node, re.Match[str]], int | None]

_Q = r"'(?P<f>[^']*)'"
_T = r"(?P<{}>scalar|vector|matrix|string)"
_HANDLERS: list[tuple[re.Pattern[str], Handler]] = [
    (re.compile(p), h)
    for p, h in [
        (r"unclosed left parenthesis", _at_end("")),
        (r"unexpected end of input inside brackets", _unclosed_bracket),
        (r"unexpected end of input.*", _at_end("")),
        (r"no expression found in input", lambda job, m: (m.group(0), 0)),
        (
            r"unexpected right parenthesis '\)'",
            _stray(r"unexpected right parenthesis ')'", "(", ")", True),
        ),
        (r"unexpected right bracket '\]'", _stray("unexpected right bracket ']'", "[", "]")),
        (r"unexpected right brace '\}'", _stray("unexpected character: '}'", "{", "}")),
        (r"unexpected character: '(.)'", _unexpected_char),
        (r"unterminated quoted string.*", _unterminated),
        (r"unexpected second colon\(:\) in brackets", _second_colon),
        (r"unknown escape sequence '(.)'", _escape),
        (r"bad number or duration syntax: (.+)", _bad_number),
        (r"invalid promql query", _syntax),
        (r"unexpected .*", _syntax),
        (
            rf"unknown function with name {_Q}",
            _semantic(_find_call, 'unknown function with name "{f}"'),
        ),
        (
            rf"expected (?P<n>\d+) argument\(s\) in call to {_Q}, got (?P<got>\d+)",
            _semantic(_find_call, 'expected {n} argument(s) in call to "{f}", got {got}'),
        ),
        (
            r"wrong number of arguments for aggregate expression provided, "
            r"expected (?P<n>\d+), got (?P<got>\d+)",
            _semantic(
                _find_agg,
                "wrong number of arguments for aggregate expression provided, "
                "expected {n}, got {got}",
            ),
        ),
        (
            rf"no arguments for aggregate expression {_Q} provided",
            _semantic(_find_agg, "no arguments for aggregate expression provided"),
        ),
        (
            rf"expected type {_T.format('want')} in call to function {_Q}, "
            rf"got {_T.format('got')}",
            _semantic(_find_argument, 'expected type {want} in call to function "{f}", got {got}'),
        ),
        (
            rf"expected type {_T.format('want')} in aggregation expression, "
            rf"got {_T.format('got')}",
            _semantic(_find_argument, "expected type {want} in aggregation parameter, got {got}"),
        ),
        (
            r"set operator '(?P<op>\w+)' not allowed in binary scalar expression",
            _semantic(
                _find_set_operator, 'set operator "{op}" not allowed in binary scalar expression'
            ),
        ),
        (
            r"no grouping allowed for '(?P<op>\w+)' operation",
            _semantic(_find_set_operator, 'no grouping allowed for "{op}" operation'),
        ),
        (
            r"binary expression must contain only scalar and instant vector types",
            _semantic(
                _find_operand, "binary expression must contain only scalar and instant vector types"
            ),
        ),
        (
            rf"unary expression only allowed on expressions of type scalar or vector, "
            rf"got: {_T.format('got')}",
            _semantic(
                _find_unary,
                "unary expression only allowed on expressions of type scalar or instant "
                'vector, got "{got}"',
            ),
        ),
        (
            r"comparisons between scalars must use BOOL modifier",
            _semantic(_find_operator, "comparisons between scalars must use BOOL modifier"),
        ),
        (
            r"bool modifier can only be used on comparison operators",
            _semantic(_find_operator, "bool modifier can only be used on comparison operators"),
        ),
        (
            r"ranges only allowed for vector selectors",
            _semantic(_find_range, "ranges only allowed for vector selectors"),
        ),
        (
            r"offset may not be set multiple times",
            _semantic(_find_modifier_twice("offset"), "offset may not be set multiple times"),
        ),
        (
            r"@ <timestamp> may not be set multiple times",
            _semantic(_find_modifier_twice("at"), "@ <timestamp> may not be set multiple times"),
        ),
        (
            rf"subquery is only allowed on vector, got {_T.format('kind')} instead",
            _semantic(
                _find_subquery, "subquery is only allowed on instant vector, got {kind} instead"
            ),
        ),
        (
            r"(?P<mod>offset|@) modifier must be preceded by an vector selector or matrix "
            r"selector or a subquery",
            _semantic(
                _find_misplaced_modifier,
                "{mod} modifier must be preceded by an instant vector selector or range vector "
                "selector or a subquery",
            ),
        ),
        (
            r"timestamp out of bounds for @ modifier: (?P<v>.*)",
            _semantic(_find_at_operand, "timestamp out of bounds for @ modifier: {v}"),
        ),
        (
            r"metric name must not be set twice: '(?P<a>.*)' or '(?P<b>.*)'",
            _semantic(
                _find_selector(
                    lambda n: bool(n.name) and any(x[0] == "__name__" for x in n.matchers)
                ),
                'metric name must not be set twice: "{a}" or "{b}"',
            ),
        ),
        (
            r"vector selector must contain at least one non-empty matcher",
            _semantic(
                _find_selector(_all_match_empty),
                "vector selector must contain at least one non-empty matcher",
            ),
        ),
        (r"illegal regex for (?P<re>.*)", _illegal_regex),
    ]
]
