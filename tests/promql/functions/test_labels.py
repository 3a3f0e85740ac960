"""label_replace and label_join: Go template expansion, RE2, errors, name marks."""

from __future__ import annotations

import numpy as np
import pytest

from promql.errors import ExecutionError
from tests.promql.functions.helpers import as_dict, call, string, vector_of

TESTMETRIC = vector_of(
    [
        'testmetric{src="source-value-10",dst="original-destination-value"}',
        'testmetric{src="source-value-20",dst="original-destination-value"}',
    ],
    [[0], [1]],
)


def replace(vec, dst, repl, src, regex, **kw):
    return call(
        "label_replace", [0], vec, string(dst), string(repl), string(src), string(regex), **kw
    )


@pytest.mark.parametrize(
    ("args", "dst_values"),
    [
        (
            ("dst", "destination-value-$1", "src", "source-value-(.*)"),
            ["destination-value-10", "destination-value-20"],
        ),
        (("dst", "destination-value-$1", "src", "value-(.*)"), ["original-destination-value"] * 2),
        (("dst", "$1-value-$2", "src", "(.*)-value-(.*)"), ["source-value-10", "source-value-20"]),
        (
            ("dst", "value-$1", "nonexistent-src", "source-value-(.*)"),
            ["original-destination-value"] * 2,
        ),
        (("dst", "value-$1", "nonexistent-src", "(.*)"), ["value-", "value-"]),
        (("dst", "value-$1", "src", "non-matching-regex"), ["original-destination-value"] * 2),
        (("dst", "", "dst", ".*"), ["", ""]),
    ],
)
def test_label_replace_cases_from_the_test_data(args, dst_values):
    out = replace(TESTMETRIC, *args)
    assert [lbl.get("dst") for lbl in out.labels] == dst_values
    assert [lbl.metric_name for lbl in out.labels] == ["testmetric", "testmetric"]
    assert out.values.tolist() == [[0], [1]]


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${1}x", "ax"),
        ("$1x", ""),  # Go reads the name "1x", which is no group
        ("$$1", "$1"),
        ("${name}-$name", "b-b"),
        ("$0", "a-b"),
        ("$9", ""),
        ("$", "$"),
        ("${1", "${1"),
        ("$01", ""),
    ],
)
def test_template_expansion_follows_go(template, expected):
    vec = vector_of(['m{src="a-b"}'], [[1]])
    out = replace(vec, "dst", template, "src", "(a)-(?P<name>b)")
    assert out.labels[0].get("dst") == expected


def test_label_replace_errors():
    with pytest.raises(
        ExecutionError, match=r"invalid regular expression in label_replace\(\): \(\.\*"
    ):
        replace(TESTMETRIC, "dst", "value-$1", "src", "(.*")
    with pytest.raises(ExecutionError, match="invalid destination label name in label_replace"):
        replace(TESTMETRIC, "", "", "src", "(.*)")
    with pytest.raises(ExecutionError, match="invalid destination label name"):
        replace(TESTMETRIC, "\udcff", "", "src", "(.*)")  # an invalid UTF-8 byte


@pytest.mark.timeout(20)
def test_regex_is_re2_and_linear_time():
    # a backtracking engine would never finish this match
    vec = vector_of(['m{src="' + "a" * 5000 + '!"}'], [[1]])
    out = replace(vec, "dst", "x", "src", "(a+)+$")
    assert out.labels[0].get("dst") == ""


def test_label_replace_can_keep_a_name_that_rate_would_drop():
    vec = vector_of(['metric_total{env="1"}'], [[0.2]])
    vec.drop_name = np.array([True])
    kept = replace(vec, "__name__", "rate_$1", "__name__", "(.+)", delayed=True)
    assert as_dict(kept) == {'rate_metric_total{env="1"}': 0.2}
    assert kept.drop_name.tolist() == [False]
    other = replace(vec, "my_name", "rate_$1", "__name__", "(.+)", delayed=True)
    assert other.drop_name.tolist() == [True]
    assert other.labels[0].get("my_name") == "rate_metric_total"


def join(vec, dst, sep, *srcs, **kw):
    return call("label_join", [0], vec, string(dst), string(sep), *map(string, srcs), **kw)


def test_label_join():
    vec = vector_of(
        [
            'testmetric{src="a",src1="b",src2="c",dst="original-destination-value"}',
            'testmetric{src="d",src1="e",src2="f",dst="original-destination-value"}',
        ],
        [[0], [1]],
    )
    assert [lbl.get("dst") for lbl in join(vec, "dst", "-", "src", "src1", "src2").labels] == [
        "a-b-c",
        "d-e-f",
    ]
    assert [lbl.get("dst") for lbl in join(vec, "dst", "-", "src", "src3", "src1").labels] == [
        "a--b",
        "d--e",
    ]
    assert [lbl.has("dst") for lbl in join(vec, "dst", "", "emptysrc", "emptysrc1").labels] == [
        False,
        False,
    ]
    assert [lbl.has("dst") for lbl in join(vec, "dst", ", ").labels] == [False, False]


def test_label_join_errors():
    with pytest.raises(ExecutionError, match="invalid source label name in label_join"):
        join(TESTMETRIC, "dst", "-", "")
    with pytest.raises(ExecutionError, match="invalid destination label name in label_join"):
        join(TESTMETRIC, "", "-", "src")


def test_duplicates_are_left_for_the_evaluator():
    vec = vector_of(['dup{label="a", this="a"}', 'dup{label="b", this="a"}'], [[1], [1]])
    out = join(vec, "label", "", "this")
    assert out.labels[0] == out.labels[1]
