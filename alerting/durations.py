"""Durations as Prometheus rule files write them (`model.ParseDuration` / `String`).

`1h30m`, `90s`, `1d`, `500ms` or a bare `0`; units `y w d h m s ms` in that
order, each at most once (a year is 365 days). Rule files, the ruler API and
`parseDuration` in templates all read this form, and the ruler API writes it.
"""

from __future__ import annotations

import re

_DURATION = re.compile(
    r"(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?"
    r"(?:([0-9]+)s)?(?:([0-9]+)ms)?"
)
_UNITS_MS = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1_000, 1)
_MAX_MS = (2**63 - 1) // 1_000_000  # a Go time.Duration is int64 nanoseconds


def parse_duration_ms(text: str) -> int:
    """Milliseconds of a duration; ValueError with Prometheus's message if invalid."""
    if text == "0":
        return 0
    if text == "":
        raise ValueError("empty duration string")
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f'not a valid duration string: "{text}"')
    total = sum(int(g) * unit for g, unit in zip(match.groups(), _UNITS_MS, strict=True) if g)
    if total > _MAX_MS:
        raise ValueError("duration out of range")
    return total


def format_duration_ms(ms: int) -> str:
    """Prometheus's `model.Duration.String()`: `1h30m`, `0s`; years and weeks only if exact."""
    if ms == 0:
        return "0s"
    out = []
    for unit, mult, exact in (
        ("y", _UNITS_MS[0], True),
        ("w", _UNITS_MS[1], True),
        ("d", _UNITS_MS[2], False),
        ("h", _UNITS_MS[3], False),
        ("m", _UNITS_MS[4], False),
        ("s", _UNITS_MS[5], False),
        ("ms", 1, False),
    ):
        if exact and ms % mult:
            continue
        if value := ms // mult:
            out.append(f"{value}{unit}")
            ms -= value * mult
    return "".join(out)
