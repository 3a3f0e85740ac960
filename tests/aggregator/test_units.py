"""Durations and sizes in Prometheus's forms."""

from __future__ import annotations

import pytest

from aggregator.units import format_duration_ms, parse_bytes, parse_duration_ms


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("0", 0),
        ("30s", 30_000),
        ("5m", 300_000),
        ("1h30m", 5_400_000),
        ("1d", 86_400_000),
        ("2w", 14 * 86_400_000),
        ("1y", 365 * 86_400_000),
        ("250ms", 250),
        ("1m0s5ms", 60_005),
    ],
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "5", "1.5h", "5M", "1s1m", "1h1h", "-1s", " 1s", "1 s"])
def test_invalid_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a valid duration"):
        parse_duration_ms(text)


def test_duration_out_of_range() -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_duration_ms("300y")


@pytest.mark.parametrize("ms", [0, 1, 999, 60_000, 5_400_000, 86_400_000 * 8 + 1])
def test_format_duration_round_trips(ms: int) -> None:
    assert parse_duration_ms(format_duration_ms(ms)) == ms if ms else format_duration_ms(0) == "0s"


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1024", 1024),
        ("10B", 10),
        ("1KiB", 1024),
        ("32MiB", 32 << 20),
        ("512MB", 512 << 20),
        ("2GB", 2 << 30),
        ("1 GiB", 1 << 30),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_bytes(text) == size


@pytest.mark.parametrize("text", ["", "1.5MiB", "12 parsecs", "-1", "MiB"])
def test_invalid_sizes(text: str) -> None:
    with pytest.raises(ValueError, match="not a valid size"):
        parse_bytes(text)
