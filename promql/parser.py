"""The only importer of `promql_parser`: PromQL text in, our types out.

Errors from the parser are translated here, once, into `ParseError`.
"""

from __future__ import annotations

import promql_parser

from promql.errors import ParseError
from storage.labels import InvalidRegex, Matcher, MatchType

_MATCH_TYPES = {
    str(promql_parser.MatchOp.Equal): MatchType.EQ,
    str(promql_parser.MatchOp.NotEqual): MatchType.NEQ,
    str(promql_parser.MatchOp.Re): MatchType.RE,
    str(promql_parser.MatchOp.NotRe): MatchType.NRE,
}


def _parse(text: str) -> object:
    try:
        return promql_parser.parse(text)
    except ValueError as exc:
        raise ParseError(f"parse error: {exc}", query=text) from None


def convert_matchers(selector: object) -> list[Matcher]:
    """The matchers of a parsed vector selector, the metric name included as `__name__`."""
    out = []
    name = getattr(selector, "name", None)
    if name:
        out.append(Matcher(MatchType.EQ, "__name__", name))
    for m in selector.matchers.matchers:  # type: ignore[attr-defined]
        out.append(Matcher(_MATCH_TYPES[str(m.op)], m.name, m.value))
    return out


def parse_series_selector(text: str) -> list[Matcher]:
    """Parse a `match[]` series selector such as `up{job=~"api|web"}`.

    Like Prometheus, a selector must have at least one matcher that does not
    match the empty string, so that it cannot select every series.
    """
    expr = _parse(text)
    if not isinstance(expr, promql_parser.VectorSelector):
        raise ParseError(
            f"parse error: expected a series selector, got {type(expr).__name__}: {text!r}",
            query=text,
        )
    if expr.matchers.or_matchers:
        raise ParseError("parse error: 'or' inside a series selector is not supported", query=text)
    try:
        matchers = convert_matchers(expr)
    except InvalidRegex as exc:
        raise ParseError(f"parse error: {exc}", query=text) from None
    if not any(not m.matches_empty for m in matchers):
        raise ParseError(
            "parse error: vector selector must contain at least one non-empty matcher",
            query=text,
        )
    return matchers
