"""Request parameters as Prometheus's HTTP API reads them.

- Parameters come from the URL query and, for form-encoded POSTs, the body
  (both are read; the body's values come first, as Go's `ParseForm` has them).
- Times are unix seconds with an optional fraction (rounded to milliseconds)
  or RFC 3339 (`2024-05-01T12:00:00.5Z`); absent `start`/`end` mean
  Prometheus's min/max time.
- Durations are seconds (`15`, `0.5`) or Prometheus durations (`1m30s`).
- Error messages are Prometheus's, e.g. `invalid parameter "start": Invalid
  time value for 'start': cannot parse "abc" to a valid timestamp`.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import TypeVar

from aiohttp import web
from multidict import MultiDict, MultiDictProxy, MultiMapping

from aggregator.api.context import CONFIG
from aggregator.errors import BadData, RequestTimeout
from aggregator.units import MAX_DURATION_MS, parse_duration_ms
from promql.errors import ParseError
from promql.parser import parse_series_selector
from storage.labels import Matcher

T = TypeVar("T")

MIN_TIME_MS = -9_223_309_901_257_974_000
"""Prometheus's minTime (the earliest time its API represents) in milliseconds."""
MAX_TIME_MS = 9_223_309_901_257_974_999
"""Prometheus's maxTime in milliseconds."""
_MIN_TIME_TEXT = "-292273086-05-16T16:47:06Z"
_MAX_TIME_TEXT = "292277025-08-18T07:12:54.999999999Z"

_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})"
)
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def within_body_timeout(request: web.Request, reading: Awaitable[T]) -> T:
    """`reading` (of the request body), bounded by `server.body_timeout` (408 past it)."""
    timeout_s = request.app[CONFIG].server.body_timeout_ms / 1000
    try:
        async with asyncio.timeout(timeout_s):
            return await reading
    except TimeoutError:
        raise RequestTimeout(
            f"the request body did not arrive within server.body_timeout ({timeout_s:g}s)"
        ) from None


async def read_params(request: web.Request) -> MultiMapping[str]:
    """The request's parameters: form body (for POST) then URL query."""
    if request.method == "POST" and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        form = await within_body_timeout(request, request.post())
        merged: MultiDict[str] = MultiDict()
        for key, value in form.items():
            if isinstance(value, str):
                merged.add(key, value)
        merged.extend(request.query)
        return MultiDictProxy(merged)
    return request.query


def parse_time(text: str) -> int:
    """Milliseconds of a unix-seconds or RFC 3339 time; ValueError with Prometheus's words."""
    if _FLOAT.fullmatch(text):
        seconds = float(text)
        if not math.isfinite(seconds):
            raise ValueError(f"cannot parse {_go_quote(text)} to a valid timestamp")
        frac, whole = math.modf(seconds)
        ms = int(whole) * 1000 + _round_half_away(frac * 1000)
        return min(max(ms, MIN_TIME_MS), MAX_TIME_MS)
    match = _RFC3339.fullmatch(text)
    if match is not None:
        try:
            return _rfc3339_ms(match)
        except ValueError:
            pass
    if text == _MIN_TIME_TEXT:
        return MIN_TIME_MS
    if text == _MAX_TIME_TEXT:
        return MAX_TIME_MS
    raise ValueError(f"cannot parse {_go_quote(text)} to a valid timestamp")


def parse_duration_param(text: str) -> int:
    """Milliseconds of a duration given as seconds (`15`, `0.5`) or `1m30s`."""
    if _FLOAT.fullmatch(text):
        seconds = float(text)
        if abs(seconds) * 1e9 > 2**63 - 1:
            raise ValueError(
                f"cannot parse {_go_quote(text)} to a valid duration. It overflows int64"
            )
        ns = int(seconds * 1e9)  # Go: time.Duration(float), truncated toward zero
        return ns // 1_000_000 if ns >= 0 else -(-ns // 1_000_000)
    try:
        ms = parse_duration_ms(text)
    except ValueError:
        raise ValueError(f"cannot parse {_go_quote(text)} to a valid duration") from None
    if ms > MAX_DURATION_MS:
        raise ValueError(f"cannot parse {_go_quote(text)} to a valid duration")
    return ms


def time_param(params: MultiMapping[str], name: str, default: int) -> int:
    """An optional time parameter (Prometheus `parseTimeParam`)."""
    text = params.get(name, "")
    if text == "":
        return default
    try:
        return parse_time(text)
    except ValueError as exc:
        raise BadData(
            f"invalid parameter {_go_quote(name)}: Invalid time value for '{name}': {exc}"
        ) from None


def required_time_param(params: MultiMapping[str], name: str) -> int:
    """A required time parameter (Prometheus `parseTime` on the raw value)."""
    try:
        return parse_time(params.get(name, ""))
    except ValueError as exc:
        raise BadData(f"invalid parameter {_go_quote(name)}: {exc}") from None


def duration_param(params: MultiMapping[str], name: str) -> int:
    """A duration parameter in milliseconds; "" is invalid, as in Prometheus."""
    try:
        return parse_duration_param(params.get(name, ""))
    except ValueError as exc:
        raise BadData(f"invalid parameter {_go_quote(name)}: {exc}") from None


def check_time_range(start_ms: int, end_ms: int) -> None:
    """Refuse `end` before `start` with Prometheus's query_range message."""
    if end_ms < start_ms:
        raise BadData('invalid parameter "end": end timestamp must not be before start time')


def limit_param(params: MultiMapping[str], name: str = "limit") -> int | None:
    """A non-negative result limit; None when absent or 0 (no limit)."""
    text = params.get(name, "")
    if text == "":
        return None
    try:
        limit = int(text, 10)
    except ValueError:
        raise BadData(
            f"invalid parameter {_go_quote(name)}: cannot parse {_go_quote(text)} to a valid limit"
        ) from None
    if limit < 0:
        raise BadData(f"invalid parameter {_go_quote(name)}: limit must be non-negative")
    return limit or None


def matcher_sets(values: Sequence[str], *, name_param: bool) -> list[list[Matcher]]:
    """Parse every `match[]` selector; each must have a matcher that rejects the empty string.

    Errors are the parser's (`1:4: parse error: ...`); with `name_param` they start
    with `invalid parameter "match[]": `, as Prometheus's series endpoint words them
    (its label endpoints do not).
    """
    out = []
    for text in values:
        try:
            out.append(parse_series_selector(text))
        except ParseError as exc:
            raise BadData(
                f'invalid parameter "match[]": {exc}' if name_param else str(exc)
            ) from None
    return out


def check_label_name(name: str) -> str:
    """A label name from a URL path, as Prometheus checks it for `label/<name>/values`."""
    if not _LABEL_NAME.fullmatch(name):
        raise BadData(f"invalid label name: {_go_quote(name)}")
    return name


def format_time_ms(ms: int) -> str:
    """RFC 3339 with milliseconds, for messages."""
    return (
        (_EPOCH + timedelta(milliseconds=ms))
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _rfc3339_ms(match: re.Match[str]) -> int:
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    frac, zone = match.group(7) or "", match.group(8)
    if zone == "Z":
        tz = UTC
    else:
        sign = -1 if zone[0] == "-" else 1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    moment = datetime(year, month, day, hour, minute, second, tzinfo=tz)
    delta = moment - _EPOCH
    # Whole seconds exactly, then the fraction truncated to ms (Prometheus `FromTime`).
    seconds = delta.days * 86_400 + delta.seconds
    return seconds * 1000 + int(frac[:3].ljust(3, "0"))


def _round_half_away(x: float) -> int:
    """Go's math.Round: halves away from zero (Python's round() goes to even)."""
    return math.floor(abs(x) + 0.5) * (1 if x >= 0 else -1)


def _go_quote(text: str) -> str:
    """Go's %q for the common cases: double quotes, backslash escapes."""
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    )
    return f'"{escaped}"'
