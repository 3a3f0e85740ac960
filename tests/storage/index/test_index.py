"""Series index: matcher semantics (incl. regex, negation, empty values) and postings upkeep."""

import random

import numpy as np
import pytest

from storage.index import Index
from storage.labels import Labels, Matcher, matches_all
from storage.labels import MatchType as T

SERIES = [
    {"__name__": "up", "job": "api", "instance": "a:1"},
    {"__name__": "up", "job": "api", "instance": "b:1", "zone": "eu"},
    {"__name__": "up", "job": "db", "instance": "c:1", "zone": "us"},
    {"__name__": "http_requests_total", "job": "api", "code": "200"},
    {"__name__": "http_requests_total", "job": "api", "code": "500"},
    {"__name__": "http_requests_total", "job": "web", "code": "200", "zone": ""},
]


@pytest.fixture
def index():
    idx = Index()
    for s in SERIES:
        idx.add(Labels.from_dict(s))
    return idx


def names(index, ids):
    return sorted(str(index.labels(i)) for i in ids.tolist())


def brute(matchers):
    return sorted(
        str(Labels.from_dict(s)) for s in SERIES if matches_all(matchers, Labels.from_dict(s))
    )


@pytest.mark.parametrize(
    "matchers",
    [
        [Matcher(T.EQ, "__name__", "up")],
        [Matcher(T.EQ, "job", "api"), Matcher(T.EQ, "__name__", "up")],
        [Matcher(T.NEQ, "job", "api")],
        [Matcher(T.EQ, "zone", "")],  # series without zone
        [Matcher(T.NEQ, "zone", "")],  # series with zone
        [Matcher(T.RE, "zone", "e.*")],
        [Matcher(T.RE, "zone", "eu|")],  # matches eu and missing
        [Matcher(T.RE, "zone", ".*")],
        [Matcher(T.RE, "zone", ".+")],
        [Matcher(T.NRE, "zone", "eu")],  # missing zone counts as ""
        [Matcher(T.NRE, "zone", ".*")],  # nothing
        [Matcher(T.NRE, "zone", "")],  # only series with zone
        [Matcher(T.RE, "code", "200|500"), Matcher(T.NEQ, "job", "web")],
        [Matcher(T.RE, "job", "api|api|db")],
        [Matcher(T.RE, "job", "api|db"), Matcher(T.NRE, "instance", "a.*")],
        [Matcher(T.EQ, "missing", "x")],
        [Matcher(T.EQ, "__name__", "nope")],
        [Matcher(T.RE, "job", "(?i)API")],
        [],
    ],
    ids=str,
)
def test_select_agrees_with_matcher_semantics(index, matchers):
    assert names(index, index.select(matchers)) == brute(matchers)


def test_select_returns_sorted_unique_ids(index):
    ids = index.select([Matcher(T.RE, "job", "api|db|web")])
    assert list(ids) == sorted(set(ids.tolist()))
    assert len(ids) == len(SERIES)


def test_randomized_against_brute_force():
    rng = random.Random(7)
    values = ["a", "b", "c", "ab", "bc", ""]
    series = []
    idx = Index()
    seen = set()
    for _ in range(300):
        lbl = Labels.from_pairs(
            [("__name__", "m"), *((n, rng.choice(values)) for n in ("x", "y", "z"))]
        )
        if lbl in seen:
            continue
        seen.add(lbl)
        series.append(lbl)
        idx.add(lbl)
    patterns = ["a", "a|b", "a.*", ".*b", "", ".*", ".+", "b|", "(a|c)b?"]
    for _ in range(200):
        ms = [
            Matcher(rng.choice(list(T)), rng.choice("xyzw"), rng.choice(patterns))
            for _ in range(rng.randint(1, 3))
        ]
        got = sorted(str(idx.labels(i)) for i in idx.select(ms).tolist())
        want = sorted(str(s) for s in series if matches_all(ms, s))
        assert got == want, ms


def test_equal_label_sets_share_one_id(index):
    sid = index.get(Labels.from_dict(SERIES[0]))
    assert sid is not None
    assert index.get(Labels.from_dict(dict(reversed(list(SERIES[0].items()))))) == sid
    assert index.get(Labels.from_dict({"__name__": "up"})) is None


def test_label_names_and_values(index):
    assert index.label_names() == ["__name__", "code", "instance", "job", "zone"]
    assert index.label_values("job") == ["api", "db", "web"]
    ups = index.select([Matcher(T.EQ, "__name__", "up")])
    assert index.label_names(ups) == ["__name__", "instance", "job", "zone"]
    assert index.label_values("zone", ups) == ["eu", "us"]
    assert index.label_values("code", ups) == []
    many = index.select([])
    assert index.label_values("code", many) == ["200", "500"]


def test_remove_cleans_postings(index):
    gone = index.select([Matcher(T.EQ, "zone", "us")])
    index.remove(gone.tolist())
    assert len(index) == len(SERIES) - 1
    assert index.select([Matcher(T.EQ, "job", "db")]).size == 0
    assert "db" not in index.label_values("job")
    assert index.label_values("zone") == ["eu"]
    assert index.labels(int(gone[0])) is None
    # The same labels come back as a new series with a new id.
    again = index.add(Labels.from_dict(SERIES[2]))
    assert again != int(gone[0])
    assert names(index, index.select([Matcher(T.EQ, "job", "db")])) == brute(
        [Matcher(T.EQ, "job", "db")]
    )


def test_label_pairs_are_shared_between_series(index):
    a = index.labels(int(index.select([Matcher(T.EQ, "instance", "a:1")])[0]))
    b = index.labels(int(index.select([Matcher(T.EQ, "instance", "b:1")])[0]))
    assert a[0] is b[0]  # ("__name__", "up") stored once


def test_all_ids_after_growth():
    idx = Index()
    for i in range(3000):
        idx.add(Labels.from_dict({"__name__": "m", "i": str(i)}))
    assert np.array_equal(idx.all_ids(), np.arange(3000))
    assert idx.select([Matcher(T.EQ, "i", "2999")]).tolist() == [2999]


def test_regexes_over_many_values_agree_with_brute_force():
    # Enough distinct values that regexes run as one scan over all of them.
    idx = Index()
    series = []
    for i in range(500):
        lbl = Labels.from_dict({"__name__": "m", "pod": f"pod-{i}", "zone": f"z{i % 7}"})
        if i % 50 == 0:
            lbl = lbl.without("pod")
        series.append(lbl)
        idx.add(lbl)
    for mtype in (T.RE, T.NRE):
        for pattern in ["pod-1.*", "pod-[0-9]{1,2}", ".*", ".+", "", "pod-4.*|", "(?i)POD-3"]:
            ms = [Matcher(mtype, "pod", pattern)]
            got = sorted(str(idx.labels(i)) for i in idx.select(ms).tolist())
            assert got == sorted(str(s) for s in series if matches_all(ms, s)), ms
    # The cached text follows the values as series come and go.
    idx.remove(idx.select([Matcher(T.RE, "pod", "pod-1.*")]).tolist())
    idx.add(Labels.from_dict({"__name__": "m", "pod": "pod-1000"}))
    got = sorted(idx.labels(i).get("pod") for i in idx.select([Matcher(T.RE, "pod", "pod-1.*")]))
    assert got == ["pod-1000"]


def test_label_order_stays_right_as_series_come_and_go():
    rng = random.Random(3)
    idx = Index()
    live = {}
    for _ in range(6):
        for _ in range(rng.choice([5, 300])):
            lbl = Labels.from_dict({"__name__": rng.choice("abc"), "i": str(rng.randint(0, 10**6))})
            if idx.get(lbl) is None:
                live[idx.add(lbl)] = lbl
        dead = rng.sample(sorted(live), k=len(live) // 10)
        idx.remove(dead)
        for sid in dead:
            del live[sid]
        if rng.random() < 0.5:
            idx.refresh_order()
        sids = np.array(sorted(rng.sample(sorted(live), k=len(live) // 2)), dtype=np.int64)
        got = [idx.labels(i) for i in idx.sort_by_labels(sids).tolist()]
        assert got == sorted(live[i] for i in sids.tolist())


def test_regex_runs_once_per_distinct_value_not_per_series(monkeypatch):
    idx = Index()
    for i in range(40):
        idx.add(Labels.from_dict({"__name__": "m", "job": ["api", "db"][i % 2], "i": str(i)}))
    calls = []
    real = Matcher.matches

    def counting(self, value):
        calls.append(value)
        return real(self, value)

    monkeypatch.setattr(Matcher, "matches", counting)
    ids = idx.select([Matcher(T.RE, "job", "a.*")])
    assert len(ids) == 20
    # Each distinct value once, plus "" once (does the matcher select series without job?).
    assert sorted(calls) == ["", "api", "db"]
