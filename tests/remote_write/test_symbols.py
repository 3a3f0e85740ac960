"""SymbolIds: stable ids per string, and kept tables for senders repeating a table."""

from __future__ import annotations

import numpy as np

from remote_write.symbols import SymbolIds


def table(prefix: str, n: int = 100) -> list[bytes]:
    return [b""] + [f"{prefix}{i}".encode() for i in range(n)]


def test_a_repeated_table_gets_the_same_ids_as_string_by_string() -> None:
    kept, plain = SymbolIds(), SymbolIds(table_bytes=0)
    for prefix in ("a", "b", "a", "c", "b"):
        got, want = kept.ids(table(prefix)), plain.ids(table(prefix))
        assert got.tolist() == want.tolist()
    assert not kept.ids(table("a")).flags.writeable  # shared: nobody may change it


def test_tables_that_join_alike_are_told_apart() -> None:
    ids = SymbolIds()
    one = [b""] + [b"x\x00y", b"z"] + [b"p%d" % i for i in range(70)]
    two = [b""] + [b"x", b"y\x00z"] + [b"p%d" % i for i in range(70)]
    a, b = ids.ids(one), ids.ids(two)
    assert a[1] != b[1]
    assert a[2] != b[2]
    assert ids.ids(one).tolist() == a.tolist()
    assert ids.ids(two).tolist() == b.tolist()


def test_a_kept_table_stays_right_after_its_strings_drop_out() -> None:
    ids = SymbolIds(generation_size=150)
    first = ids.ids(table("a")).tolist()
    others: set[int] = set()
    for prefix in "bcdefg":  # pushes the "a" strings out of both generations
        others.update(ids.ids(table(prefix)).tolist())
    assert ids.ids(table("a")).tolist() == first  # kept: the old ids, still theirs
    assert not (set(first[1:]) & others)  # ids are never reused for other strings
    # The same strings in another table are looked up again: new ids, also exact.
    other_table = [*table("a"), b"extra"]
    renewed = ids.ids(other_table).tolist()
    assert len(set(renewed)) == len(renewed)
    assert not (set(renewed[1:101]) & (others | set(first[1:])))


def test_kept_tables_stay_within_their_bound() -> None:
    ids = SymbolIds(table_bytes=8_000)
    for k in range(50):
        ids.ids(table(f"t{k}-"))
    assert ids._tables_size <= 8_000
    assert 0 < len(ids._tables) < 50
    assert np.array_equal(ids.ids(table("t49-")), ids.ids(table("t49-")))
