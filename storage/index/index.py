"""The `Index`: series ids <-> label sets, and matcher evaluation over postings.

It keeps the series table (labels by id, id by labels, each series' pair ids
as one ragged numpy column, live flags) and composes the three structures
that serve reads: `Postings` (series by pair), `LabelValues` (pairs by name)
and `LabelOrder` (series by rank). Every method that reads or changes them
checks that it runs on the index's thread; see the package docstring.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from itertools import chain, compress, repeat
from operator import itemgetter
from threading import get_ident
from typing import cast

import numpy as np
from numpy.typing import NDArray

from remote_write.labelkeys import label_key
from storage.csr import ranges
from storage.errors import StorageUnavailable
from storage.index.order import LabelOrder
from storage.index.pairs import PairTable
from storage.index.postings import Postings, intersect_sorted, subtract_sorted
from storage.index.values import LabelValues
from storage.labels import Labels, Matcher, MatchType

_EMPTY_IDS = np.zeros(0, dtype=np.int64)
_REGEX_META = frozenset(".^$*+?()[]{}|\\")
_first = itemgetter(0)
MAX_ID = 0xFFFFFFFF
PAIR_SLACK = 1 << 16
"""Registered pairs without series tolerated beyond the number of live pairs."""


class WrongThread(RuntimeError):
    """The index was used from another thread than the one that owns it: a bug
    (reads fold postings and re-rank, so they mutate it)."""


def _literal_alternatives(pattern: str) -> list[str] | None:
    """`a|b|c` with no regex syntax in it: the exact values it matches, else None."""
    if not pattern or _REGEX_META.intersection(pattern.replace("|", "")):
        return None
    alternatives = list(dict.fromkeys(pattern.split("|")))  # "a|a" names one value
    return None if "" in alternatives else alternatives


class Index:
    """Series ids, their label sets, and postings; see the package docstring."""

    def __init__(self) -> None:
        self._thread = get_ident()
        """The owning thread: the one that built the index (the event loop's)."""
        self._labels: list[Labels | None] = []
        self._ids: dict[Labels, int] = {}
        self.pairs = PairTable()
        """The label pairs, by id; the write path looks labels up here."""
        self.postings = Postings()
        self.values = LabelValues()
        self.order = LabelOrder()
        # Pair ids per series: series `sid` holds `_rows[_row_start[sid]:_row_start[sid + 1]]`.
        self._rows = np.zeros(8192, dtype=np.int32)
        self._row_start = np.zeros(1025, dtype=np.int64)
        self._alive = np.zeros(1024, dtype=bool)
        self._count = 0

    def _check_thread(self) -> None:
        if get_ident() != self._thread:
            raise WrongThread(
                "the series index was used outside its event-loop thread; reads mutate it "
                "(see storage.index), so only the loop may touch it"
            )

    def __len__(self) -> int:
        """Number of live series."""
        return self._count

    @property
    def num_pairs(self) -> int:
        """Distinct (name, value) pairs of live series."""
        return self.postings.live_pairs

    @property
    def id_limit(self) -> int:
        """One more than the largest id ever handed out (sizes per-series arrays)."""
        return len(self._labels)

    @property
    def alive(self) -> NDArray[np.bool_]:
        """Live-series flags by id (a view; valid until the next `add`)."""
        return self._alive[: len(self._labels)]

    def get(self, labels: Labels) -> int | None:
        """The id of a live series with exactly these labels, if any."""
        return self._ids.get(labels)

    def labels(self, sid: int) -> Labels | None:
        """The labels of series `sid`, or None once it left the index."""
        return self._labels[sid]

    def labels_of(self, sids: Sequence[int]) -> list[Labels]:
        """Labels of many live series, in order (C-level loop)."""
        return cast(list[Labels], list(map(self._labels.__getitem__, sids)))

    def get_many(self, labels: Sequence[Labels]) -> list[int | None]:
        """`get` for many label sets (C-level loop)."""
        return list(map(self._ids.get, labels))

    # -- series come ---------------------------------------------------------------

    def add(self, labels: Labels) -> int:
        """Register a new series (the caller checked it is not there) and return its id."""
        return self.add_many([labels]).start

    def add_many(self, labels: Sequence[Labels]) -> range:
        """Register new series (the caller checked none is there, and that they are
        distinct) and return their ids, consecutive and in the given order.

        For label sets given as text: each pair is looked up by its label key,
        built in Python. The write path has the pair ids already and calls
        `add_series`.
        """
        self._check_thread()
        counts = np.fromiter(map(len, labels), dtype=np.int64, count=len(labels))
        flat = list(chain.from_iterable(labels))
        pids = self.pairs.ids_of(flat)
        offsets = np.zeros(len(labels) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        shared = self.pairs.pairs(pids.tolist())
        if not all(map(operator.is_, shared, flat)):
            edges = offsets.tolist()
            labels = list(
                map(
                    tuple.__new__,
                    repeat(Labels),
                    map(shared.__getitem__, map(slice, edges[:-1], edges[1:])),
                )
            )
        return self.add_series(labels, pids, offsets)

    def add_series(
        self, labels: Sequence[Labels], pids: NDArray[np.int64], offsets: NDArray[np.int64]
    ) -> range:
        """Register new series and return their ids, consecutive, in the given order.

        Series k is `labels[k]`, made of the shared pairs `pids[offsets[k]:offsets[k+1]]`
        (registered in `pairs`). None of them may be in the index, and no two
        may be equal. Postings are appended per distinct pair of the whole call.
        """
        self._check_thread()
        n = len(labels)
        first = len(self._labels)
        if first + n - 1 > MAX_ID:
            raise StorageUnavailable(
                "series id space exhausted (4 billion series created since start); "
                "restart the service to renumber"
            )
        if n == 0:
            return range(first, first)
        end = first + n
        sids = range(first, end)
        self._store_rows(first, pids, offsets)
        self._labels.extend(labels)
        self._ids.update(zip(labels, sids, strict=True))
        owners = np.repeat(np.arange(first, end, dtype=np.int64), np.diff(offsets))
        first_live = self.postings.add(pids, owners, self.pairs.id_limit)
        if len(first_live):
            self.values.publish(first_live, self.pairs)
        if end > len(self._alive):
            grown = np.zeros(max(2 * len(self._alive), end), dtype=bool)
            grown[: len(self._alive)] = self._alive
            self._alive = grown
        self._alive[first:end] = True
        self._count += n
        return sids

    def _store_rows(self, first: int, pids: NDArray[np.int64], offsets: NDArray[np.int64]) -> None:
        """Append the pair ids of new series `first`, `first + 1`, ... to the rows."""
        n = len(offsets) - 1
        used = int(self._row_start[first])
        m = len(pids)
        if used + m > len(self._rows):
            if self._count < first // 2:  # mostly removed series: keep only live rows
                used = self._compact_rows(first)
            if used + m > len(self._rows):
                grown = np.zeros(max(2 * len(self._rows), used + m), dtype=np.int32)
                grown[:used] = self._rows[:used]
                self._rows = grown
        self._rows[used : used + m] = pids
        if first + n + 1 > len(self._row_start):
            grown_starts = np.zeros(max(2 * len(self._row_start), first + n + 1), dtype=np.int64)
            grown_starts[: first + 1] = self._row_start[: first + 1]
            self._row_start = grown_starts
        self._row_start[first + 1 : first + n + 1] = used + offsets[1:]

    def _compact_rows(self, upto: int) -> int:
        """Drop the rows of removed series among the first `upto`; returns rows used."""
        starts = self._row_start[:upto]
        sizes = np.where(self._alive[:upto], np.diff(self._row_start[: upto + 1]), 0)
        keep = ranges(starts, sizes)
        used = len(keep)
        self._rows[:used] = self._rows[keep]
        self._row_start[1 : upto + 1] = np.cumsum(sizes)
        return used

    def pair_ids(self, sids: NDArray[np.int64]) -> NDArray[np.int32]:
        """The pair ids of the given series, concatenated in order."""
        starts = self._row_start[sids]
        return self._rows[ranges(starts, self._row_start[sids + 1] - starts)]

    def all_pairs_live(
        self, pids: NDArray[np.int64], offsets: NDArray[np.int64]
    ) -> NDArray[np.bool_]:
        """Per row of pair ids (`pids[offsets[k]:offsets[k+1]]`): whether live series
        hold each of its pairs. Where not, no series with that label set exists."""
        return self.postings.all_live(pids, offsets)

    # -- series go -----------------------------------------------------------------

    def remove(self, sids: Iterable[int]) -> None:
        """Take series out of the index (they have no samples left)."""
        self._check_thread()
        dead = []
        for sid in sids:
            lbl = self._labels[sid]
            if lbl is None:
                continue
            self._labels[sid] = None
            del self._ids[lbl]
            dead.append(sid)
        if not dead:
            return
        dead_ids = np.array(dead, dtype=np.int64)
        self._alive[dead_ids] = False
        self._count -= len(dead)
        touched = np.unique(self.pair_ids(dead_ids))
        gone = self.postings.drop(touched, self._alive)
        if not gone:
            return
        pairs = self.pairs
        self.values.unpublish({pairs.pair(pid)[0] for pid in gone}, self.postings.live)
        pairs.forget(gone)

    def sweep_pairs(self) -> int:
        """Forget registered pairs that no live series holds, once they are many
        (labels of refused series); returns how many. Call only between writes:
        pair ids looked up before a sweep may name forgotten pairs."""
        self._check_thread()
        live_pairs = self.postings.live_pairs
        idle = len(self.pairs) - live_pairs
        if idle <= max(PAIR_SLACK, live_pairs):
            return 0
        unused = np.flatnonzero(~self.postings.live_mask(self.pairs.id_limit)).tolist()
        before = len(self.pairs)
        self.pairs.forget(unused)
        return before - len(self.pairs)

    # -- reads ---------------------------------------------------------------------

    def all_ids(self) -> NDArray[np.int64]:
        return np.flatnonzero(self.alive).astype(np.int64, copy=False)

    def _value_pairs(self, name: str, values: Iterable[str]) -> NDArray[np.int64]:
        """Ids of the live pairs `name="value"` for the given values."""
        pids = self.pairs.lookup([label_key(name, v) for v in values])
        pids = pids[pids >= 0]
        return pids[self.postings.live[pids]] if len(pids) else pids

    def select(self, matchers: Sequence[Matcher]) -> NDArray[np.int64]:
        """Sorted ids of live series matching every matcher (all series if none).

        Matchers follow Prometheus: a series without a label reads as "" for
        it, so `a=""` selects series without `a` and `a!="x"` also selects
        series without `a`; regexes are evaluated once per distinct value.
        """
        self._check_thread()
        union = self.postings.union
        name_pairs = self.values.name_pairs
        positives: list[NDArray[np.int64]] = []
        negatives: list[NDArray[np.int64]] = []
        for m in matchers:
            if m.type is MatchType.EQ:
                if m.value:
                    positives.append(union(self._value_pairs(m.name, (m.value,))))
                else:  # a="" selects series without a
                    negatives.append(union(name_pairs(m.name)))
            elif m.type is MatchType.NEQ:
                if m.value:
                    negatives.append(union(self._value_pairs(m.name, (m.value,))))
                else:  # a!="" selects series that have a
                    positives.append(union(name_pairs(m.name)))
            else:
                literals = _literal_alternatives(m.value)
                if literals is not None:  # `a|b|c`: direct lookups, no regex runs
                    found = union(self._value_pairs(m.name, literals))
                    (positives if m.type is MatchType.RE else negatives).append(found)
                    continue
                pids = name_pairs(m.name)
                hit = self.values.regex_hits(m, pids)  # values the regex itself matches
                positive = m.type is MatchType.RE
                if m.matches_empty:  # series without the label match too
                    if positive:
                        negatives.append(union(pids[~hit]))
                    else:
                        negatives.append(union(pids[hit]))
                elif positive:
                    positives.append(union(pids[hit]))
                else:
                    positives.append(union(pids[~hit]))
        if positives:
            positives.sort(key=len)
            result = positives[0]
            for other in positives[1:]:
                result = intersect_sorted(result, other)
        else:
            result = self.all_ids()
        for other in negatives:
            result = subtract_sorted(result, other)
        return result

    @property
    def unranked(self) -> int:
        """Series created since the label order was last refreshed."""
        return len(self._labels) - self.order.ranked_upto

    def refresh_order(self) -> None:
        """Fold new series into the label order (see `storage.index.order`)."""
        self._check_thread()
        self.order.refresh(self._labels, self._alive)

    def sort_by_labels(self, sids: NDArray[np.int64]) -> NDArray[np.int64]:
        """Live `sids` reordered so that their label sets ascend."""
        self._check_thread()
        return self.order.sort(sids, self._labels, self._alive)

    def label_names(self, sids: NDArray[np.int64] | None = None) -> list[str]:
        """Sorted label names of the given series (all live series if None)."""
        self._check_thread()
        if sids is None:
            return self.values.names()
        labels = self.labels_of(sids.tolist())
        return sorted(set(map(_first, chain.from_iterable(labels))))

    def label_values(self, name: str, sids: NDArray[np.int64] | None = None) -> list[str]:
        """Sorted values of `name` over the given series (all live series if None)."""
        self._check_thread()
        entry = self.values.get(name)
        if entry is None:
            return []
        if sids is None:
            return sorted(entry.values)
        if not len(sids):
            return []
        pids = entry.ids()
        if len(sids) < 4 * len(pids):
            wanted = name
            found = {v for lbl in self.labels_of(sids.tolist()) for n, v in lbl if n == wanted}
            return sorted(found)
        mask = np.zeros(self.id_limit, dtype=bool)
        mask[sids] = True
        hit = self.postings.held_in(pids, mask)
        return sorted(compress(entry.values, hit.tolist()))

    # -- checks (tests) ------------------------------------------------------------

    def check_invariants(self) -> None:
        """Raise AssertionError where the index contradicts itself: the series table,
        rows, postings, name lists and label order against each other. Walks
        every series in Python: for tests only."""
        labels = self._labels
        upto = len(labels)
        alive = self._alive
        assert not alive[upto:].any(), "ids never handed out marked alive"
        live = [sid for sid in range(upto) if labels[sid] is not None]
        assert np.flatnonzero(alive[:upto]).tolist() == live, "alive flags != labels present"
        assert self._count == len(live) == len(self._ids), "live series counts disagree"
        assert all(self._ids.get(cast(Labels, labels[sid])) == sid for sid in live), "ids map"
        held: dict[int, list[int]] = {}
        for sid in live:
            pids = self.pair_ids(np.array([sid])).tolist()
            pairs = self.pairs.pairs(pids)
            lbl = cast(Labels, labels[sid])
            assert tuple(pairs) == tuple(lbl), f"series {sid}: rows {pairs} != labels {lbl}"
            assert all(map(operator.is_, pairs, lbl)), f"series {sid}: pairs not shared"
            for pid in pids:
                held.setdefault(pid, []).append(sid)
        for pid in held:
            key = self.pairs.key(pid)
            assert self.pairs.lookup([key])[0] == pid, f"pair {pid}: its key finds another id"
        postings = self.postings
        postings.check_invariants()
        members = postings.members()
        assert members.keys() == held.keys(), "pairs with postings != pairs of live series"
        for pid, sids in held.items():
            assert sorted(members[pid]) == sids, f"pair {pid}: postings != its live series"
        live_pairs = postings.live_mask(self.pairs.id_limit)
        assert set(np.flatnonzero(live_pairs).tolist()) == held.keys(), "live pair flags"
        self.values.check_invariants(self.pairs, live_pairs)
        self.order.check_invariants(labels, alive)
        idle = len(self.pairs) - postings.live_pairs
        assert idle >= 0, "fewer registered pairs than live ones"
