"""The index as a state machine: any interleaving of adds, removals, pair sweeps,
folds, re-ranks and reads keeps it consistent and agreeing with brute force.

After every step the index checks its own invariants (`Index.check_invariants`:
each pair's series live in exactly one of the single-owner column or an array,
plus the fold queue; postings equal the pairs of the live series' rows; name
lists equal the live pairs; the label order ranks every live series) and the
model (series id -> labels) agrees with it. Every read is compared with a
brute-force answer over the model's label sets. The fold queue limit, the
pair-sweep slack and the one-pass regex threshold are drawn small at the start
of each run, so folds mid-write, sweeps and value scans all happen on a few
dozen series.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from remote_write.labelkeys import label_key
from storage.index import Index
from storage.index import index as index_module
from storage.index import postings as postings_module
from storage.index import values as values_module
from storage.labels import Labels, Matcher, MatchType, matches_all

# Per name, its values: few for `job` (label_values reads postings for many
# series), many for `pod` (regexes run as one scan once the threshold is low).
VALUES = {
    "__name__": ["up", "http_total", "m"],
    "job": ["api", "db"],
    "zone": ["eu", "us", "eu-1", "ap"],
    "pod": [f"p{i}" for i in range(16)],
}
NAMES = [*VALUES, "missing"]
PATTERNS = [
    "",
    ".*",
    ".+",
    "eu",
    "eu|us",
    "eu|",
    "(eu|us)?",
    "e.*",
    ".*1",
    "p1.*",
    "p[0-9]",
    "api|api|db",
    "(?i)API",
    "x|y",
    "up|m",
]

label_sets = st.lists(
    st.sampled_from(list(VALUES)).flatmap(
        lambda name: st.tuples(st.just(name), st.sampled_from(VALUES[name]))
    ),
    min_size=1,
    max_size=4,
).map(Labels.from_pairs)


@st.composite
def matchers(draw: st.DrawFn) -> Matcher:
    kind = draw(st.sampled_from(list(MatchType)))
    name = draw(st.sampled_from(NAMES))
    if kind in (MatchType.EQ, MatchType.NEQ):
        value = draw(st.sampled_from(["", *VALUES.get(name, ["x"])]))
    else:
        value = draw(st.sampled_from(PATTERNS))
    return Matcher(kind, name, value)


class IndexMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.index = Index()
        self.model: dict[int, Labels] = {}
        self.created = 0
        self.saved = (
            postings_module.PENDING_POSTINGS,
            index_module.PAIR_SLACK,
            values_module.SCAN_MIN_VALUES,
        )

    @initialize(
        pending=st.sampled_from([1, 4, 1 << 17]),
        slack=st.sampled_from([0, 2, 1 << 16]),
        scan_min=st.sampled_from([1, 3, 64]),
        preload=st.sampled_from([0, 0, 100]),
    )
    def limits(self, pending: int, slack: int, scan_min: int, preload: int) -> None:
        postings_module.PENDING_POSTINGS = pending
        index_module.PAIR_SLACK = slack
        values_module.SCAN_MIN_VALUES = scan_min
        # A larger start, so that few new series are ranked by binary search.
        names, pods, zones = VALUES["__name__"], VALUES["pod"], VALUES["zone"]
        jobs = {0: "api", 1: "db"}  # `job="api"`: a value held by one series
        self.add(
            [
                Labels.from_dict(
                    {
                        "__name__": names[k // 48],
                        "job": jobs.get(k % 5 + (k > 0), ""),
                        "pod": pods[k % 12],
                        "zone": zones[k // 12 % 4],
                    }
                )
                for k in range(preload)
            ]
        )
        self.index.refresh_order()

    def teardown(self) -> None:
        (
            postings_module.PENDING_POSTINGS,
            index_module.PAIR_SLACK,
            values_module.SCAN_MIN_VALUES,
        ) = self.saved

    def live_subset(self, data: st.DataObject) -> list[int]:
        if not self.model:
            return []
        return data.draw(st.lists(st.sampled_from(sorted(self.model)), unique=True))

    # -- changes ---------------------------------------------------------------------

    @rule(sets=st.lists(label_sets, max_size=8))
    def add(self, sets: list[Labels]) -> None:
        live = set(self.model.values())
        fresh = [lbl for lbl in dict.fromkeys(sets) if lbl not in live]
        ids = self.index.add_many(fresh)
        assert list(ids) == list(range(self.created, self.created + len(fresh)))
        self.model.update(zip(ids, fresh, strict=True))
        self.created += len(fresh)

    @precondition(lambda self: self.created > 0)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        # Ids of removed series too: removing twice is a no-op.
        self.drop(data.draw(st.lists(st.integers(0, self.created - 1), max_size=6)))

    def drop(self, sids: list[int]) -> None:
        self.index.remove(sids)
        for sid in sids:
            self.model.pop(sid, None)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def remove_all_with(self, data: st.DataObject) -> None:
        """All series of one label value go at once (a pod goes away)."""
        pairs = sorted({pair for lbl in self.model.values() for pair in lbl})
        pair = data.draw(st.sampled_from(pairs))
        self.drop([sid for sid, lbl in self.model.items() if pair in lbl])

    @rule(
        pairs=st.lists(
            st.tuples(
                st.sampled_from(NAMES),
                st.sampled_from(["eu", "p1"]) | st.integers(0, 60).map("r{}".format),
            ),
            max_size=12,
        )
    )
    def register_pairs_without_series(self, pairs: list[tuple[str, str]]) -> None:
        """What the write path does for the labels of a series it then refuses."""
        self.index.pairs.ids_of(pairs)

    @precondition(lambda self: any(lbl.has("pod") for lbl in self.model.values()))
    @rule(data=st.data(), pattern=st.sampled_from(["p1.*", ".*1", "p[0-9]"]))
    def pod_churn(self, data: st.DataObject, pattern: str) -> None:
        """A pod goes and another comes between two queries with the same regex:
        the name keeps its number of values, but not the values."""
        query = [Matcher(MatchType.RE, "pod", pattern)]
        self.select(query)
        live = {lbl.get("pod") for lbl in self.model.values()} - {""}
        old = data.draw(st.sampled_from(sorted(live)))
        new = data.draw(st.sampled_from(sorted(set(VALUES["pod"]) - live) or ["p99"]))
        held = [sid for sid, lbl in self.model.items() if lbl.get("pod") == old]
        moved = [self.model[sid].with_("pod", new) for sid in held]
        self.drop(held)
        self.add(moved)
        self.select(query)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), extra=st.sampled_from(["a", "job"]))
    def add_neighbours(self, data: st.DataObject, extra: str) -> None:
        """New series that sort next to each other (and next to a live one), created
        in descending label order: after a refresh they share one gap of the order."""
        base = data.draw(st.sampled_from(sorted(self.model.values())))
        near = [base.with_(extra, v) for v in ("3", "2", "1")]
        self.refresh_order()
        self.add(near)
        self.index.refresh_order()
        self.check_sorting(sorted(self.model))

    @rule()
    def sweep(self) -> None:
        before = len(self.index.pairs)
        swept = self.index.sweep_pairs()
        assert len(self.index.pairs) == before - swept

    @rule()
    def fold(self) -> None:
        self.index.postings.fold()

    @rule()
    def refresh_order(self) -> None:
        self.index.refresh_order()
        assert self.index.unranked == 0

    # -- reads against brute force -----------------------------------------------------

    @rule(ms=st.lists(matchers(), max_size=3))
    def select(self, ms: list[Matcher]) -> None:
        got = self.index.select(ms).tolist()
        want = sorted(sid for sid, lbl in self.model.items() if matches_all(ms, lbl))
        assert got == want, ms

    @rule(
        regex=st.sampled_from(PATTERNS),
        negated=st.booleans(),
        others=st.lists(matchers(), max_size=2),
    )
    def select_by_pod_regex(self, regex: str, negated: bool, others: list[Matcher]) -> None:
        """Regexes over the name with the most values (one scan over them all)."""
        kind = MatchType.NRE if negated else MatchType.RE
        self.select([Matcher(kind, "pod", regex), *others])

    @precondition(lambda self: self.model)
    @rule(data=st.data(), everything=st.booleans())
    def sort_by_labels(self, data: st.DataObject, everything: bool) -> None:
        self.check_sorting(sorted(self.model) if everything else sorted(self.live_subset(data)))

    def check_sorting(self, sids: list[int]) -> None:
        got = self.index.sort_by_labels(np.array(sids, dtype=np.int64)).tolist()
        assert [self.model[s] for s in got] == sorted(self.model[s] for s in sids)

    @rule(
        data=st.data(),
        name=st.sampled_from(NAMES),
        scope=st.sampled_from(["all", "ids", "most", "some"]),
    )
    def label_names_and_values(self, data: st.DataObject, name: str, scope: str) -> None:
        """Over all series (None), all of them by id, all but those of one value, or
        some (few series per value read their labels; many read postings)."""
        chosen = self.live_subset(data) if scope == "some" else list(self.model)
        held = sorted({lbl.get(name) for lbl in self.model.values()} - {""})
        if scope == "most" and held:  # as for `label_values(name, {name!="v"})`
            gone = data.draw(st.sampled_from(held))
            chosen = [sid for sid in chosen if self.model[sid].get(name) != gone]
        sids = None if scope == "all" else np.array(sorted(chosen), dtype=np.int64)
        sets = [self.model[s] for s in chosen]
        assert self.index.label_names(sids) == sorted({n for lbl in sets for n, _ in lbl})
        values = {lbl.get(name) for lbl in sets} - {""}
        assert self.index.label_values(name, sids) == sorted(values)

    @rule(
        rows=st.lists(
            st.lists(
                st.sampled_from(list(VALUES)).flatmap(
                    lambda name: st.tuples(st.just(name), st.sampled_from(VALUES[name]))
                ),
                min_size=1,
                max_size=3,
            ),
            max_size=4,
        )
    )
    def all_pairs_live(self, rows: list[list[tuple[str, str]]]) -> None:
        held = {pair for lbl in self.model.values() for pair in lbl}
        keys = [label_key(n, v) for row in rows for n, v in row]
        pids = self.index.pairs.lookup(keys)
        pids[pids < 0] = self.index.pairs.id_limit + 7  # never registered: not live
        offsets = np.cumsum([0, *map(len, rows)]).astype(np.int64)
        got = self.index.all_pairs_live(pids, offsets).tolist()
        assert got == [all(pair in held for pair in row) for row in rows]

    # -- after every step ------------------------------------------------------------

    @invariant()
    def consistent(self) -> None:
        index = self.index
        index.check_invariants()
        assert len(index) == len(self.model)
        assert index.id_limit == self.created
        assert index.num_pairs == len({pair for lbl in self.model.values() for pair in lbl})
        for sid in range(self.created):
            lbl = self.model.get(sid)
            assert index.labels(sid) == lbl
            if lbl is not None:
                assert index.get(lbl) == sid

    @invariant()
    def values_without_one_value(self) -> None:
        """Per name, its values over all series but those of a value held by one
        series (the single-owner postings then hold a series not asked about)."""
        for name in NAMES:
            holders = Counter(lbl.get(name) for lbl in self.model.values())
            unique = sorted(v for v, n in holders.items() if n == 1 and v)
            if unique:
                sids = [sid for sid, lbl in self.model.items() if lbl.get(name) != unique[0]]
                want = sorted(set(holders) - {"", unique[0]})
                got = self.index.label_values(name, np.array(sids, dtype=np.int64))
                assert got == want, (name, unique[0])


IndexMachine.TestCase.settings = settings(
    max_examples=80,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestIndexMachine = IndexMachine.TestCase
