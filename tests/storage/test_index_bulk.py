"""`Index.add_many` builds the same index as `add` one series at a time."""

import random

from storage.index import Index
from storage.labels import Labels, Matcher, MatchType


def label_sets(n, seed):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        pairs = {
            "__name__": f"m{rng.randint(0, 3)}",
            "pod": f"p{i}",
            "zone": f"z{rng.randint(0, 2)}",
        }
        if rng.random() < 0.5:
            pairs["mode"] = rng.choice(["a", "b"])
        out.append(Labels.from_dict(pairs))
    return out


MATCHERS = [
    [Matcher(MatchType.EQ, "__name__", "m1")],
    [Matcher(MatchType.EQ, "zone", "z2"), Matcher(MatchType.NEQ, "mode", "a")],
    [Matcher(MatchType.RE, "pod", "p1.*")],
    [Matcher(MatchType.EQ, "mode", "")],
]


def test_add_many_equals_add():
    sets = label_sets(300, 1)
    one, bulk = Index(), Index()
    for lbl in sets:
        one.add(lbl)
    ids = []
    for lo in range(0, 300, 70):  # several calls: postings grow from int to array
        ids.extend(bulk.add_many(sets[lo : lo + 70]))
    assert ids == list(range(300))
    assert len(bulk) == 300
    assert bulk.num_pairs == one.num_pairs
    for sid, lbl in enumerate(sets):
        assert bulk.labels(sid) == lbl
        assert bulk.get(lbl) == sid
    for matchers in MATCHERS:
        assert bulk.select(matchers).tolist() == one.select(matchers).tolist()
    assert bulk.label_values("zone") == one.label_values("zone")


def test_add_many_then_remove_and_add_again():
    sets = label_sets(50, 2)
    index = Index()
    index.add_many(sets)
    index.remove(range(0, 50, 2))
    again = index.add_many(sets[0:50:2])
    assert list(again) == list(range(50, 75))
    assert index.select(MATCHERS[0]).tolist() == sorted(
        sid for sid in range(1, 75) if (index.labels(sid) or Labels()).get("__name__") == "m1"
    )


def test_add_many_shares_pairs_between_series():
    index = Index()
    a, b = Labels.from_dict({"job": "x", "i": "1"}), Labels.from_dict({"job": "x", "i": "2"})
    index.add_many([a, b])
    assert index.labels(0)[1] is index.labels(1)[1]  # one ("job", "x") tuple
