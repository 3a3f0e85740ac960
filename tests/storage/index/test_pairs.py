"""The index's pair table: ids by label key, shared tuples, name order."""

import numpy as np

from remote_write.labelkeys import label_key
from storage.index.pairs import PairTable


def test_registered_pairs_are_found_by_key():
    table = PairTable()
    keys = [label_key("job", "api"), label_key("pod", "p-1")]
    ids = table.register(keys, ["job", "pod"], ["api", "p-1"])
    assert table.lookup([*keys, label_key("job", "db")]).tolist() == [*ids.tolist(), -1]
    assert table.pairs(ids.tolist()) == [("job", "api"), ("pod", "p-1")]


def test_ids_of_registers_what_is_missing_once():
    table = PairTable()
    first = table.ids_of([("job", "api"), ("zone", "eu"), ("job", "api")])
    assert first[0] == first[2]
    assert len(table) == 2
    again = table.ids_of([("zone", "eu"), ("job", "api")])
    assert again.tolist() == [first[1], first[0]]
    assert len(table) == 2


def test_names_are_interned_and_shared():
    table = PairTable()
    ids = table.ids_of([("".join(["jo", "b"]), "a"), ("".join(["j", "ob"]), "b")])
    one, two = table.pairs(ids.tolist())
    assert one[0] is two[0]


def test_name_ranks_compare_like_names():
    table = PairTable()
    names = ["zone", "__name__", "Job", "job", "a_b", "__address__", "é"]
    ids = table.ids_of([(n, "v") for n in names])
    ranks = table.name_rank[table.name_ids(ids)]
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            assert (ranks[i] < ranks[j]) == (a < b)


def test_forgotten_pairs_are_gone_and_ids_not_reused():
    table = PairTable()
    ids = table.ids_of([("job", "a"), ("job", "b")])
    table.forget([int(ids[0])])
    assert table.lookup([label_key("job", "a")]).tolist() == [-1]
    again = table.ids_of([("job", "a")])
    assert int(again[0]) not in ids.tolist()
    assert len(table) == 2
    assert np.array_equal(table.lookup([label_key("job", "b")]), ids[1:])
