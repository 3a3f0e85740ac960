"""One-pass regex scans over label values agree with matching each value on its own."""

import random

import pytest

from storage.index.valuescan import ValueScan, scan_safe
from storage.labels import Matcher, MatchType

VALUES = [
    "api",
    "api-2",
    "API",
    "db",
    "10.0.0.1:9100",
    "ünïcödé",
    "日本",
    "a.b",
    "x" * 300,
    "with space",
    "tab\there",
    "b",
    "ab",
    "ba",
]
PATTERNS = [
    "api.*",
    ".*",
    ".+",
    "a|b",
    "(?i)api",
    "[^a]*",
    "a.b",
    "a\\.b",
    "ü.*",
    ".本",
    "x{300}",
    "(a|b)+",
    "\\d+\\.\\d+.*",
    "^api$",
    "nothing",
    "(?i:API)-2",
    "(?P<g>db)",
    "\\S+",
    "[[:alpha:]]+",
    "b$|^a",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_scan_matches_per_value_matching(pattern):
    rng = random.Random(pattern)
    values = [*VALUES, *(f"v{rng.randint(0, 10**6)}-{i}" for i in range(100))]
    scan = ValueScan(values)
    assert scan.usable
    assert scan_safe(pattern)
    got = sorted(values[i] for i in scan.matching(pattern).tolist())
    m = Matcher(MatchType.RE, "x", pattern)
    assert got == sorted(v for v in values if m.matches(v))


def test_values_with_newlines_make_the_scan_unusable():
    assert not ValueScan(["a", "b\nc"]).usable


@pytest.mark.parametrize("pattern", ["\\Aa", "a\\z", "(?s).*", "(?m)^a", "(?-i)a", "(?U)a+"])
def test_patterns_that_change_meaning_are_not_scanned(pattern):
    assert not scan_safe(pattern)
