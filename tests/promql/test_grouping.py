"""Group ids of aggregations: the column fast paths agree with the plain definition."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from promql.eval.aggregations import group_labels
from storage.labels import METRIC_NAME, Labels

NAMES = ["__name__", "a", "b", "cluster", "le"]


def reference(labels: list[Labels], grouping: tuple[str, ...], without: bool):
    """Group of each series by first appearance, and each group's labels."""
    keys = []
    for lbl in labels:
        d = dict(lbl)
        if without:
            key = tuple((n, v) for n, v in sorted(d.items()) if n not in {*grouping, METRIC_NAME})
        else:
            key = tuple((n, d[n]) for n in sorted(set(grouping)) if d.get(n))
        keys.append(key)
    order = list(dict.fromkeys(keys))
    return [order.index(k) for k in keys], [Labels.from_sorted(k) for k in order]


label_sets = st.lists(
    st.dictionaries(st.sampled_from(NAMES), st.sampled_from(["x", "y", "z"]), max_size=5),
    min_size=1,
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(
    label_sets,
    st.lists(st.sampled_from([*NAMES, "missing"]), max_size=3),
    st.booleans(),
    st.booleans(),
)
def test_grouping_matches_the_definition(
    dicts: list[dict[str, str]], grouping: list[str], without: bool, same_shape: bool
) -> None:
    if same_shape:  # every series with the first one's names (the fast paths)
        names = sorted(dicts[0])
        dicts = [{n: d.get(n, "x") for n in names} for d in dicts]
    labels = [Labels.from_dict(d) for d in dicts]
    ids, out = group_labels(labels, tuple(grouping), without)
    want_ids, want_out = reference(labels, tuple(grouping), without)
    assert ids.tolist() == want_ids
    assert out == want_out
