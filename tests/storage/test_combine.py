"""combine(): union by labels, earlier sets win equal timestamps, no gap and no double."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.annotations import Annotations
from storage.combine import combine
from storage.interfaces import Series, SeriesSet
from storage.labels import Labels


def sset(d):
    return SeriesSet.from_series(
        [
            Series(
                Labels.from_dict({"s": k}),
                np.array([t for t, _ in v], dtype=np.int64),
                np.array([x for _, x in v], dtype=np.float64),
            )
            for k, v in d.items()
            if v
        ]
    )


def as_dict(ss):
    return {
        lbl.get("s"): list(zip(s.timestamps.tolist(), s.values.tolist(), strict=True))
        for lbl, s in zip(ss.labels, ss.series, strict=True)
    }


def test_disjoint_pieces_are_laid_end_to_end():
    old = sset({"a": [(1, 1.0), (2, 2.0)], "b": [(1, 9.0)]})
    new = sset({"a": [(3, 3.0)], "c": [(5, 5.0)]})
    got = combine([old, new])
    assert as_dict(got) == {"a": [(1, 1.0), (2, 2.0), (3, 3.0)], "b": [(1, 9.0)], "c": [(5, 5.0)]}
    assert got.labels == sorted(got.labels)


def test_equal_timestamps_keep_the_earlier_set():
    first = sset({"a": [(1, 1.0), (5, 5.0)]})
    second = sset({"a": [(1, 100.0), (3, 3.0), (5, 500.0), (7, 7.0)]})
    assert as_dict(combine([first, second])) == {"a": [(1, 1.0), (3, 3.0), (5, 5.0), (7, 7.0)]}
    assert as_dict(combine([second, first])) == {"a": [(1, 100.0), (3, 3.0), (5, 500.0), (7, 7.0)]}


def test_warnings_of_all_sets_are_kept():
    a = sset({"a": [(1, 1.0)]})
    a.warnings = Annotations()
    a.warnings.warn("one")
    b = SeriesSet.empty()
    b.warnings.warn("two")
    assert set(combine([a, b]).warnings.warning_list()) == {"one", "two"}


samples = st.dictionaries(
    st.sampled_from("abcd"),
    st.lists(st.tuples(st.integers(0, 30), st.integers(0, 5)), max_size=12),
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(samples, min_size=1, max_size=4))
def test_matches_a_plain_dict_merge(parts):
    sets = []
    want: dict[str, dict[int, float]] = {}
    for part in parts:
        d = {k: sorted({t: float(v) for t, v in rows}.items()) for k, rows in part.items()}
        sets.append(sset(d))
        for k, rows in d.items():
            for t, v in rows:
                want.setdefault(k, {}).setdefault(t, v)
    got = as_dict(combine(sets))
    assert got == {k: sorted(v.items()) for k, v in want.items() if v}
