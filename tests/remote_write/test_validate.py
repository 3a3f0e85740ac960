"""Series validation: each reason, with a message that names the series."""

import pytest

from remote_write.validate import SeriesLimits, check_series

LIMITS = SeriesLimits(max_label_names=4, max_label_name_length=10, max_label_value_length=8)


def test_valid_series_passes():
    assert check_series((("__name__", "up"), ("job", "api"), ("le", "+Inf")), LIMITS) is None


def test_metric_names_may_contain_colons():
    assert check_series((("__name__", "job:rate5m:sum"),), SeriesLimits()) is None


@pytest.mark.parametrize(
    ("pairs", "reason", "message"),
    [
        (
            (("job", "api"),),
            "missing_metric_name",
            'no metric name (__name__ label) in series {job="api"}',
        ),
        ((("__name__", ""), ("job", "a")), "missing_metric_name", "no metric name"),
        (
            (("__name__", "up"), ("", "x")),
            "empty_label_name",
            'empty label name in series up{="x"}',
        ),
        ((("__name__", "up"), ("1abc", "x")), "invalid_label_name", "invalid label name '1abc'"),
        ((("__name__", "up"), ("a-b", "x")), "invalid_label_name", "invalid label name 'a-b'"),
        ((("__name__", "9up"),), "invalid_metric_name", "invalid metric name '9up'"),
        (
            (("__name__", "up"), ("job", "a"), ("job", "b")),
            "duplicate_label_name",
            'duplicate label name \'job\' in series up{job="a", job="b"}',
        ),
        (
            tuple([("__name__", "up")] + [(f"l{i}", "v") for i in range(4)]),
            "too_many_labels",
            "series has 5 labels, more than the limit of 4",
        ),
        (
            (("__name__", "up"), ("a" * 11, "x")),
            "label_name_too_long",
            "label name of length 11 exceeds the limit of 10",
        ),
        (
            (("__name__", "up"), ("path", "/a/very/long")),
            "label_value_too_long",
            "value of label 'path' has length 12, more than the limit of 8",
        ),
        (
            (("__name__", "up"), ("a", b"\xff".decode("utf-8", "surrogateescape"))),
            "invalid_label_value",
            "value of label 'a' is not valid UTF-8",
        ),
    ],
)
def test_each_problem_has_reason_and_message(pairs, reason, message):
    problem = check_series(pairs, LIMITS)
    assert problem is not None
    assert problem.reason == reason
    assert message in problem.message
    assert "in series " in problem.message


def test_zero_disables_limits():
    pairs = tuple([("__name__", "up")] + [(f"l{i}", "v" * 5000) for i in range(50)])
    assert check_series(pairs, SeriesLimits(0, 0, 0)) is None
