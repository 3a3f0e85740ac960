"""Bulk index building: `add_many` equals `add`; queued postings, pair rows, pair sweeps."""

import random

import numpy as np

from storage.index import Index
from storage.index import index as index_module
from storage.index import postings as postings_module
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


def test_queued_postings_folded_on_any_schedule(monkeypatch):
    """Entries folded mid-way (a tiny queue limit) or only when read: same index."""
    sets = label_sets(400, 3)
    reference = Index()
    for lo in range(0, 400, 50):
        reference.add_many(sets[lo : lo + 50])
    monkeypatch.setattr(postings_module, "PENDING_POSTINGS", 7)
    eager = Index()
    for lo in range(0, 400, 50):
        eager.add_many(sets[lo : lo + 50])
    for matchers in MATCHERS:
        assert eager.select(matchers).tolist() == reference.select(matchers).tolist()
    assert eager.label_values("mode", eager.select([])) == ["a", "b"]


def test_removal_sees_queued_postings():
    sets = label_sets(120, 4)
    index = Index()
    index.add_many(sets[:60])
    index.add_many(sets[60:])  # queued, not yet read
    index.remove(range(0, 120, 3))
    kept = [sid for sid in range(120) if sid % 3]
    expect = [sid for sid in kept if sets[sid].get("__name__") == "m1"]
    assert index.select(MATCHERS[0]).tolist() == expect


def test_pairs_of_series_survive_row_compaction():
    index = Index()
    first = [Labels.from_dict({"__name__": "old", "i": str(i)}) for i in range(3000)]
    index.add_many(first)
    index.remove(range(3000))
    later = [Labels.from_dict({"__name__": "new", "i": str(i), "z": "x"}) for i in range(4000)]
    sids = index.add_many(later)  # the rows run out of room: removed series' rows go
    got = index.pair_ids(np.array([sids[0], sids[-1]]))
    assert index.pairs.pairs(got.tolist()) == [*later[0], *later[-1]]


def test_all_pairs_live_marks_rows_with_unknown_or_dead_pairs():
    index = Index()
    index.add_many([Labels.from_dict({"__name__": "a", "i": "1"})])
    live = index.pairs.ids_of([("__name__", "a"), ("i", "1")])
    pending = index.pairs.ids_of([("i", "2")])  # registered, no series holds it
    pids = np.concatenate([live, live[:1], pending])
    offsets = np.array([0, 2, 4])
    assert index.all_pairs_live(pids, offsets).tolist() == [True, False]


def test_sweep_forgets_pairs_without_series(monkeypatch):
    monkeypatch.setattr(index_module, "PAIR_SLACK", 3)
    index = Index()
    index.add_many([Labels.from_dict({"__name__": "a", "i": "1"})])
    index.pairs.ids_of([("i", str(k)) for k in range(2, 12)])  # refused series' labels
    assert index.sweep_pairs() == 10
    assert len(index.pairs) == 2
    assert index.select([Matcher(MatchType.EQ, "i", "1")]).tolist() == [0]
