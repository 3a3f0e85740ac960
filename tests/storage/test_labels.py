"""Labels and matchers: Prometheus semantics for absent labels, sorting and RE2 regexes."""

import time

import pytest

from storage.labels import InvalidRegex, Labels, Matcher, MatchType, format_labels


def test_labels_sort_and_drop_empty_values():
    lbl = Labels.from_pairs([("job", "api"), ("__name__", "up"), ("zone", "")])
    assert lbl == Labels.from_dict({"__name__": "up", "job": "api"})
    assert lbl.names() == ["__name__", "job"]
    assert lbl.metric_name == "up"
    assert hash(lbl) == hash(Labels.from_pairs([("__name__", "up"), ("job", "api")]))


def test_labels_edits_return_new_sets():
    lbl = Labels.from_dict({"__name__": "up", "job": "api", "instance": "a:1"})
    assert lbl.without("job") == Labels.from_dict({"__name__": "up", "instance": "a:1"})
    assert lbl.keep("job") == Labels.from_dict({"job": "api"})
    assert lbl.with_("cluster", "eu").get("cluster") == "eu"
    assert lbl.with_("job", "") == lbl.without("job")
    assert lbl.without_metric_name().metric_name == ""
    odd = Labels.from_dict({"__address__": "a:1", "__name__": "up", "job": "x"})
    assert odd.without_metric_name() == Labels.from_dict({"__address__": "a:1", "job": "x"})
    assert lbl.get("missing") == ""


def test_format_labels_quotes_like_prometheus():
    lbl = Labels.from_dict({"__name__": "up", "path": 'a"b\\c\n'})
    assert format_labels(lbl) == 'up{path="a\\"b\\\\c\\n"}'
    assert str(Labels.from_dict({"__name__": "up"})) == "up"
    assert str(Labels()) == "{}"


@pytest.mark.parametrize(
    ("mtype", "value", "candidate", "expected"),
    [
        (MatchType.EQ, "a", "a", True),
        (MatchType.EQ, "", "", True),
        (MatchType.NEQ, "a", "", True),
        (MatchType.RE, "a|b", "b", True),
        (MatchType.RE, "a", "ab", False),  # fully anchored
        (MatchType.RE, ".*", "", True),
        (MatchType.RE, "a.b", "a\nb", True),  # dot matches newline (Prometheus 3)
        (MatchType.NRE, "a.*", "abc", False),
        (MatchType.NRE, "a.*", "", True),
    ],
)
def test_matcher_semantics(mtype, value, candidate, expected):
    assert Matcher(mtype, "x", value).matches(candidate) is expected


def test_bad_regex_names_the_pattern():
    with pytest.raises(InvalidRegex, match=r"invalid regular expression '\(a'"):
        Matcher(MatchType.RE, "x", "(a")


def test_hostile_regex_runs_in_linear_time():
    m = Matcher(MatchType.RE, "x", "(a+)+$")
    started = time.perf_counter()
    assert not m.matches("a" * 50_000 + "b")
    # A backtracking engine needs longer than the age of the universe here.
    assert time.perf_counter() - started < 1.0
