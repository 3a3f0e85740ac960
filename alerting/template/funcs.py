"""The functions an alert template can call: Go's builtins and Prometheus's own.

Each is declared with its Go signature (parameter types), because Go converts
and checks arguments by it and its error messages name the types. Output
follows Prometheus 2.42 (`template/template.go`): `humanize` and friends
format with Go's `%.4g`, `title` is Go's `strings.Title`, regular expressions
are RE2 (Go's syntax), `reReplaceAll` expands `$1` / `${name}` as Go does.

Left out on purpose (a template using them fails to load): `call`, `slice`,
`js` (Go builtins no alert template needs) and `toTime` (it returns a
`time.Time` whose methods a template could call).
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import re2

from alerting.durations import parse_duration_ms
from alerting.template import builtins
from alerting.template.exec import ANY, Function, FunctionError
from alerting.template.values import (
    HTML,
    ArgsMap,
    QueryResult,
    Sample,
    go_type,
    is_true,
    sprint,
    sprintf,
    sprintln,
)

QueryRunner = Callable[[str], QueryResult]
"""Runs a PromQL instant query at the evaluation time; raises FunctionError on failure."""

SAMPLE = "*template.sample"
RESULT = "template.queryResult"

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


# -- Prometheus ---------------------------------------------------------------------


def _first(v: QueryResult | None) -> Sample:
    if v:
        return v[0]
    raise FunctionError("first() called on vector with no elements")


def _need_sample(s: Sample | None) -> Sample:
    if s is None:
        raise FunctionError("runtime error: invalid memory address or nil pointer dereference")
    return s


def _label(name: str, s: Sample | None) -> str:
    return _need_sample(s).Labels.get(name, "")


def _value(s: Sample | None) -> float:
    return _need_sample(s).Value


def _strvalue(s: Sample | None) -> str:
    return _need_sample(s).Labels.get("__value__", "")


def _args(*values: Any) -> ArgsMap:
    return ArgsMap({f"arg{i}": v for i, v in enumerate(values)})


def _compile(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise FunctionError(f"error parsing regexp: {reason}: `{pattern}`") from None


def _re_replace_all(pattern: str, repl: str, text: str) -> str:
    """Go `regexp.MustCompile(pattern).ReplaceAllString(text, repl)`."""
    try:
        regex = _compile(pattern)
    except FunctionError as exc:
        raise FunctionError(f"regexp: Compile({_backquote(pattern)}): {exc}") from None
    out = []
    last = 0  # end of the previous match
    search = 0
    prev_match_end = -1
    while search <= len(text):
        m = regex.search(text, search)
        if m is None:
            break
        start, end = m.span()
        # An empty match right after a previous match is skipped (Go's rule).
        if not (start == end and start == prev_match_end):
            out.append(text[last:start])
            out.append(_expand(repl, m, regex))
            last = end
        prev_match_end = end
        if end > start:
            search = end
        else:
            search = end + 1
    out.append(text[last:])
    return "".join(out)


def _expand(template: str, m: Any, regex: Any) -> str:
    """Go `Regexp.Expand`: `$1`, `${1}`, `$name`, `${name}`; `$$` is a dollar."""
    out = []
    i = 0
    groups = regex.groupindex
    while i < len(template):
        ch = template[i]
        if ch != "$":
            out.append(ch)
            i += 1
            continue
        rest = template[i + 1 :]
        if rest.startswith("$"):
            out.append("$")
            i += 2
            continue
        if rest.startswith("{"):
            close = rest.find("}")
            name = rest[1:close] if close > 0 else ""
            if close <= 0 or not name or not all(c.isalnum() or c == "_" for c in name):
                out.append("$")
                i += 1
                continue
            i += close + 2
        else:
            j = 0
            while j < len(rest) and (rest[j].isalnum() or rest[j] == "_"):
                j += 1
            name = rest[:j]
            if not name:
                out.append("$")
                i += 1
                continue
            i += 1 + j
        if name.isdigit():
            idx = int(name)
            if idx <= regex.groups:
                out.append(m.group(idx) or "")
        elif name in groups:
            out.append(m.group(name) or "")
    return "".join(out)


def _backquote(text: str) -> str:
    return "`" + text + "`" if "`" not in text else '"' + text + '"'


def _match(pattern: str, text: str) -> bool:
    return _compile(pattern).search(text) is not None


def _title(text: str) -> str:
    """Go `strings.Title`: upper-case the first letter of every word."""
    out = []
    prev = " "
    for ch in text:
        out.append(_to_title(ch) if _is_separator(prev) else ch)
        prev = ch
    return "".join(out)


def _is_separator(ch: str) -> bool:
    if ord(ch) <= 0x7F:
        return not (ch.isalnum() or ch == "_")
    if ch.isalpha() or ch.isdigit():
        return False
    return ch.isspace()


def _to_title(ch: str) -> str:
    t = ch.title()
    return t if len(t) == 1 else ch


def _to_upper(text: str) -> str:
    """Go `strings.ToUpper`: the simple (one-to-one) case mapping of every rune."""
    return "".join(u if len(u := c.upper()) == 1 else c for c in text)


def _to_lower(text: str) -> str:
    return "".join(u if len(u := c.lower()) == 1 else c for c in text)


def _link(expr: str, tab: int) -> str:
    return f"/graph?g0.expr={urllib.parse.quote_plus(expr, safe='')}&g0.tab={tab}"


def _sort_by_label(label: str, v: QueryResult | None) -> QueryResult:
    if v is None:
        return QueryResult()
    v.sort(key=lambda s: s.Labels.get(label, ""))  # stable, as sort.Stable
    return v


def to_float(value: Any) -> float:
    """Prometheus `convertToFloat`: float64, int and numeric strings."""
    if isinstance(value, bool) or value is None:
        raise FunctionError(f"can't convert {go_type(value)} to float")
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, str) and not isinstance(value, HTML):
        return parse_go_float(value)
    raise FunctionError(f"can't convert {go_type(value)} to float")


def parse_go_float(text: str) -> float:
    """Go `strconv.ParseFloat(text, 64)` with its error messages."""
    lowered = text.lower().lstrip("+-")
    hex_form = lowered.startswith("0x")
    try:
        if not text or text != text.strip() or ("_" in text and not hex_form):
            raise ValueError(text)
        result = float.fromhex(text.replace("_", "")) if hex_form else float(text)
    except ValueError:
        raise FunctionError(f'strconv.ParseFloat: parsing "{text}": invalid syntax') from None
    if math.isinf(result) and "inf" not in lowered:
        raise FunctionError(f'strconv.ParseFloat: parsing "{text}": value out of range')
    return result


def _humanize(value: Any) -> str:
    v = to_float(value)
    if v == 0 or math.isnan(v) or math.isinf(v):
        return sprintf("%.4g", v)
    prefix = ""
    if abs(v) >= 1:
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix = p
            v /= 1000
        return sprintf("%.4g", v) + prefix
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix = p
        v *= 1000
    return sprintf("%.4g", v) + prefix


def _humanize1024(value: Any) -> str:
    v = to_float(value)
    if abs(v) <= 1 or math.isnan(v) or math.isinf(v):
        return sprintf("%.4g", v)
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(v) < 1024:
            break
        prefix = p
        v /= 1024
    return sprintf("%.4g", v) + prefix


def _humanize_duration(value: Any) -> str:
    v = to_float(value)
    if math.isnan(v) or math.isinf(v):
        return sprintf("%.4g", v)
    if v == 0:
        return sprintf("%.4gs", v)
    if abs(v) >= 1:
        sign = ""
        if v < 0:
            sign = "-"
            v = -v
        duration = int(v)
        seconds = duration % 60
        minutes = (duration // 60) % 60
        hours = (duration // 3600) % 24
        days = duration // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return sign + sprintf("%.4gs", v)
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix = p
        v *= 1000
    return sprintf("%.4g", v) + prefix + "s"


def _humanize_percentage(value: Any) -> str:
    return sprintf("%.4g%%", to_float(value) * 100)


def _humanize_timestamp(value: Any) -> str:
    v = to_float(value)
    if math.isnan(v) or math.isinf(v):
        return sprintf("%.4g", v)
    nanos = v * 1e9
    if not -(2**63) <= nanos <= 2**63 - 1:
        raise FunctionError(
            f"{sprint(v)} cannot be represented as a nanoseconds timestamp since it overflows int64"
        )
    return go_time_string(int(nanos) // 1_000_000 * 1_000_000)


def go_time_string(unix_nanos: int) -> str:
    """Go `time.Time.String()` of a UTC time: `2006-01-02 15:04:05.999999999 +0000 UTC`."""
    seconds, nanos = divmod(unix_nanos, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    frac = f".{nanos:09d}".rstrip("0") if nanos else ""
    return f"{stamp}{frac} +0000 UTC"


def _parse_duration(text: str) -> float:
    try:
        return parse_duration_ms(text) / 1000
    except ValueError as exc:
        raise FunctionError(str(exc)) from None


def _not_available(name: str) -> Callable[..., Any]:
    def fail(*_: Any) -> Any:
        raise FunctionError(f"{name} is not available here")

    return fail


_STATIC: dict[str, Function] = {
    # Prometheus
    "first": Function((RESULT,), _first),
    "label": Function(("string", SAMPLE), _label),
    "value": Function((SAMPLE,), _value),
    "strvalue": Function((SAMPLE,), _strvalue),
    "args": Function((), _args, variadic=ANY),
    "reReplaceAll": Function(("string", "string", "string"), _re_replace_all),
    "safeHtml": Function(("string",), HTML),
    "match": Function(("string", "string"), _match),
    "title": Function(("string",), _title),
    "toUpper": Function(("string",), _to_upper),
    "toLower": Function(("string",), _to_lower),
    "graphLink": Function(("string",), lambda e: _link(e, 0)),
    "tableLink": Function(("string",), lambda e: _link(e, 1)),
    "sortByLabel": Function(("string", RESULT), _sort_by_label),
    "humanize": Function((ANY,), _humanize),
    "humanize1024": Function((ANY,), _humanize1024),
    "humanizeDuration": Function((ANY,), _humanize_duration),
    "humanizePercentage": Function((ANY,), _humanize_percentage),
    "humanizeTimestamp": Function((ANY,), _humanize_timestamp),
    "parseDuration": Function(("string",), _parse_duration),
    # Go builtins
    "and": Function((ANY,), lambda *a: a[-1], variadic=ANY, lazy=True),
    "or": Function((ANY,), lambda *a: a[-1], variadic=ANY, lazy=True),
    "not": Function((ANY,), lambda a: not is_true(a)),
    "len": Function((ANY,), builtins.length),
    "index": Function((ANY,), builtins.index, variadic=ANY),
    "eq": Function((ANY,), builtins.eq, variadic=ANY),
    "ne": Function((ANY, ANY), lambda a, b: not builtins.eq(a, b)),
    "lt": Function((ANY, ANY), builtins.lt),
    "le": Function((ANY, ANY), builtins.le),
    "gt": Function((ANY, ANY), lambda a, b: not builtins.le(a, b)),
    "ge": Function((ANY, ANY), lambda a, b: not builtins.lt(a, b)),
    "print": Function((), sprint, variadic=ANY),
    "printf": Function(("string",), sprintf, variadic=ANY),
    "println": Function((), sprintln, variadic=ANY),
    "html": Function((), builtins.html, variadic=ANY),
    "urlquery": Function((), builtins.urlquery, variadic=ANY),
}

DYNAMIC = ("query", "externalURL", "pathPrefix")
"""Functions whose result depends on the evaluation (bound by `functions()`)."""

NAMES = frozenset(_STATIC) | frozenset(DYNAMIC)
"""Every function a template may call; any other name fails at load."""

UNSUPPORTED = frozenset({"call", "slice", "js", "toTime"})
"""Functions Go or Prometheus have that this subset refuses (at load, saying so)."""


def functions(query: QueryRunner | None, external_url: str) -> dict[str, Function]:
    """The function table of one evaluation: the static functions plus query and the URL."""
    table = dict(_STATIC)
    table["query"] = Function(("string",), query or _not_available("query"))
    table["externalURL"] = Function((), lambda: external_url)
    path = urllib.parse.urlsplit(external_url).path
    table["pathPrefix"] = Function((), lambda: path)
    return table


__all__ = ["DYNAMIC", "NAMES", "UNSUPPORTED", "QueryRunner", "functions", "to_float"]
