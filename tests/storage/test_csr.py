"""Ragged rows in two arrays agree with plain lists of lists."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.csr import insert_into_rows, offsets_of, replace_rows, take_rows

ROWS = st.lists(st.lists(st.integers(0, 50), max_size=5), min_size=1, max_size=8)


def pack(rows):
    values = np.array([v for r in rows for v in r], dtype=np.int64)
    return values, offsets_of(np.array([len(r) for r in rows], dtype=np.int64))


def unpack(values, offsets):
    return [values[offsets[k] : offsets[k + 1]].tolist() for k in range(len(offsets) - 1)]


@settings(max_examples=200, deadline=None)
@given(ROWS, st.data())
def test_take_rows(rows, data):
    which = data.draw(st.lists(st.integers(0, len(rows) - 1), max_size=10))
    got = take_rows(*pack(rows), np.array(which, dtype=np.int64))
    assert unpack(*got) == [rows[k] for k in which]


@settings(max_examples=200, deadline=None)
@given(ROWS, st.data())
def test_replace_rows(rows, data):
    new = data.draw(
        st.dictionaries(
            st.integers(0, len(rows) - 1), st.lists(st.integers(0, 50), max_size=4), max_size=4
        )
    )
    got = replace_rows(*pack(rows), {k: np.array(v, dtype=np.int64) for k, v in new.items()})
    assert unpack(*got) == [new.get(k, r) for k, r in enumerate(rows)]


@settings(max_examples=200, deadline=None)
@given(ROWS, st.data())
def test_insert_into_rows(rows, data):
    chosen = sorted(data.draw(st.sets(st.integers(0, len(rows) - 1))))
    at = [data.draw(st.integers(0, len(rows[k]))) for k in chosen]
    got = insert_into_rows(
        *pack(rows), np.array(chosen, dtype=np.int64), np.array(at, dtype=np.int64), 99
    )
    expect = [list(r) for r in rows]
    for k, a in zip(chosen, at, strict=True):
        expect[k].insert(a, 99)
    assert unpack(*got) == expect
