"""Time, duration, limit and matcher parameters, with Prometheus's messages."""

from __future__ import annotations

import pytest
from multidict import MultiDict, MultiDictProxy

from aggregator.api.params import (
    MAX_TIME_MS,
    MIN_TIME_MS,
    check_label_name,
    duration_param,
    limit_param,
    matcher_sets,
    parse_duration_param,
    parse_time,
    required_time_param,
    time_param,
)
from aggregator.errors import BadData
from storage.labels import Matcher, MatchType


def params(**kw: str) -> MultiDictProxy[str]:
    return MultiDictProxy(MultiDict(kw))


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("0", 0),
        ("1700000000", 1_700_000_000_000),
        ("1.2345", 1234),
        ("1.2355", 1236),
        ("-100.25", -100_250),
        ("1e3", 1_000_000),
        (".5", 500),
        ("2020-01-01T00:00:00Z", 1_577_836_800_000),
        ("2020-01-01T00:00:00.123456789Z", 1_577_836_800_123),
        ("2020-01-01T01:00:00.5+01:00", 1_577_836_800_500),
        ("2019-12-31T23:30:00-00:30", 1_577_836_800_000),
        ("1969-12-31T23:59:59.999Z", -1),
        ("-292273086-05-16T16:47:06Z", MIN_TIME_MS),
        ("292277025-08-18T07:12:54.999999999Z", MAX_TIME_MS),
        ("1e300", MAX_TIME_MS),
    ],
)
def test_parse_time(text: str, ms: int) -> None:
    assert parse_time(text) == ms


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "NaN",
        "Inf",
        "2020-01-01T00:00:00",
        "2020-01-01 00:00:00Z",
        "2020-13-01T00:00:00Z",
        "1_000",
        "0x10",
    ],
)
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r'cannot parse ".*" to a valid timestamp'):
        parse_time(text)


def test_time_param_messages() -> None:
    assert time_param(params(), "start", 42) == 42
    with pytest.raises(BadData) as info:
        time_param(params(start="abc"), "start", 0)
    assert str(info.value) == (
        "invalid parameter \"start\": Invalid time value for 'start': "
        'cannot parse "abc" to a valid timestamp'
    )
    with pytest.raises(BadData) as info:
        required_time_param(params(), "start")
    assert str(info.value) == 'invalid parameter "start": cannot parse "" to a valid timestamp'


@pytest.mark.parametrize(
    ("text", "ms"),
    [("15", 15_000), ("0.5", 500), ("1m30s", 90_000), ("1ms", 1), ("0.0001", 0), ("-5", -5_000)],
)
def test_parse_duration_param(text: str, ms: int) -> None:
    assert parse_duration_param(text) == ms


def test_duration_param_messages() -> None:
    with pytest.raises(BadData) as info:
        duration_param(params(step="abc"), "step")
    assert str(info.value) == 'invalid parameter "step": cannot parse "abc" to a valid duration'
    with pytest.raises(BadData) as info:
        duration_param(params(), "step")
    assert str(info.value) == 'invalid parameter "step": cannot parse "" to a valid duration'
    with pytest.raises(BadData, match="It overflows int64"):
        duration_param(params(timeout="1e20"), "timeout")


def test_limit_param() -> None:
    assert limit_param(params()) is None
    assert limit_param(params(limit="0")) is None
    assert limit_param(params(limit="7")) == 7
    with pytest.raises(BadData, match='invalid parameter "limit": cannot parse "x" to a valid'):
        limit_param(params(limit="x"))
    with pytest.raises(BadData, match="limit must be non-negative"):
        limit_param(params(limit="-1"))


def test_matcher_sets() -> None:
    sets = matcher_sets(['up{job="a"}', '{__name__=~"x.*"}'], name_param=True)
    assert sets == [
        [Matcher(MatchType.EQ, "__name__", "up"), Matcher(MatchType.EQ, "job", "a")],
        [Matcher(MatchType.RE, "__name__", "x.*")],
    ]
    with pytest.raises(BadData) as info:
        matcher_sets(["up{"], name_param=True)
    assert str(info.value) == (
        'invalid parameter "match[]": 1:4: parse error: unexpected end of input inside braces'
    )
    with pytest.raises(BadData) as info:
        matcher_sets(["up{"], name_param=False)
    assert str(info.value) == "1:4: parse error: unexpected end of input inside braces"
    with pytest.raises(BadData, match="at least one non-empty matcher"):
        matcher_sets(['{a=""}'], name_param=False)


def test_label_name() -> None:
    assert check_label_name("job") == "job"
    with pytest.raises(BadData, match=r'^invalid label name: "1a"$'):
        check_label_name("1a")
