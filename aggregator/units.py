"""Durations and byte sizes in the forms Prometheus users write them.

Durations follow Prometheus's `model.ParseDuration`: units `y w d h m s ms`
in that order, each at most once, e.g. `1h30m`, `90s`, `1d`, or `0`. A year is
365 days, a week 7 days. Byte sizes follow Prometheus's flags (`512MB`): a
plain integer is bytes; `KB MB GB TB` are powers of 1024, as are the explicit
`KiB MiB GiB TiB`.
"""

from __future__ import annotations

import re

_DURATION = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)
_DURATION_UNITS_MS = (
    365 * 86_400_000,
    7 * 86_400_000,
    86_400_000,
    3_600_000,
    60_000,
    1_000,
    1,
)
MAX_DURATION_MS = (2**63 - 1) // 1_000_000
"""Prometheus durations are Go `time.Duration`s (int64 nanoseconds); the same bound here."""

_BYTES = re.compile(r"(\d+)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?")
_BYTE_UNITS = {
    None: 1,
    "B": 1,
    "KB": 1 << 10,
    "KiB": 1 << 10,
    "MB": 1 << 20,
    "MiB": 1 << 20,
    "GB": 1 << 30,
    "GiB": 1 << 30,
    "TB": 1 << 40,
    "TiB": 1 << 40,
}


def parse_duration_ms(text: str) -> int:
    """Milliseconds of a Prometheus duration string; ValueError with the reason if invalid."""
    if text == "0":
        return 0
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"not a valid duration string: {text!r}")
    total = sum(
        int(g) * unit for g, unit in zip(match.groups(), _DURATION_UNITS_MS, strict=True) if g
    )
    if total > MAX_DURATION_MS:
        raise ValueError(f"duration {text!r} is out of range")
    return total


def format_duration_ms(ms: int) -> str:
    """The shortest Prometheus form of a duration (`90000` -> `1m30s`), for logs and docs."""
    if ms == 0:
        return "0s"
    out = []
    for suffix, unit in zip(("y", "w", "d", "h", "m", "s", "ms"), _DURATION_UNITS_MS, strict=True):
        count, ms = divmod(ms, unit)
        if count:
            out.append(f"{count}{suffix}")
    return "".join(out)


def parse_bytes(text: str) -> int:
    """Bytes of a size such as `32MiB`, `512MB` or `1048576`; ValueError if invalid."""
    match = _BYTES.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"not a valid size: {text!r} (use bytes or a unit: B, KB, MB, GB, TB, KiB, MiB, GiB)"
        )
    return int(match.group(1)) * _BYTE_UNITS[match.group(2)]


def format_bytes(n: int) -> str:
    """A byte size the way the config writes it: `512MiB`, `1.5GiB`, `300B`."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            value = n / size
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return f"{n}B"
