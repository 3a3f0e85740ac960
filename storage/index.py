"""The series index: series ids <-> label sets, and postings for matchers.

Series ids are dense ints handed out in creation order and never reused, so a
postings list (the ids of the series holding one `name="value"` pair) stays
sorted by just appending, and an id read from an old snapshot of the head can
never name a different series. Postings are `array('I')` (4 bytes per entry),
or, while a pair belongs to one series only (label values unique per series,
like `pod` or `instance`, are common and an array costs ~150 B), that series'
id in a numpy column (8 bytes, no Python object).

Ids are 32-bit in postings, so one process can create about 4 billion series
in its life; a restart renumbers (replay rebuilds the index from the WAL).

Memory is what this module is mostly about: every distinct `(name, value)`
pair is one shared tuple with a small integer id (`storage.pairs`), so a
series costs its `Labels` tuple (one pointer per label), one dict entry, its
pair ids (4 bytes per label) and its postings entries, never a copy of strings.

The write path speaks pair ids: `add_series` takes the new series as numpy
columns of pair ids; postings entries of pairs shared by several series are
queued and folded in per pair when postings are read. Postings live in a list
indexed by pair id; a matcher finds the pair of `name="value"` by its label
key in the pair table (the one dict entry a pair costs), and each name keeps
an array of its pair ids for walking its values (regexes, label values).

Matchers follow Prometheus: a series without a label reads as "" for it, so
`a=""` selects series without `a`, `a!="x"` also selects series without `a`,
and regexes are evaluated once per distinct label value, never per series.
"""

from __future__ import annotations

import operator
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from itertools import chain, compress, pairwise, repeat
from operator import itemgetter
from typing import cast

import numpy as np
from numpy.typing import NDArray

from remote_write.labelkeys import label_key
from storage.csr import ranges
from storage.errors import StorageUnavailable
from storage.labels import Labels, Matcher, MatchType
from storage.pairs import PairTable
from storage.valuescan import ValueScan, scan_safe

_EMPTY_IDS = np.zeros(0, dtype=np.int64)
_REGEX_META = frozenset(".^$*+?()[]{}|\\")
_first = itemgetter(0)
_second = itemgetter(1)
MAX_ID = 0xFFFFFFFF
SCAN_MIN_VALUES = 64
"""From this many distinct values on, regexes run as one scan over all of them."""
PENDING_POSTINGS = 1 << 17
"""Queued postings entries that make the next write fold them in (reads always do)."""
PAIR_SLACK = 1 << 16
"""Registered pairs without series tolerated beyond the number of live pairs."""


def _array_ids(postings: array) -> NDArray[np.int64]:
    return np.frombuffer(postings, dtype=np.uint32).astype(np.int64)


def intersect_sorted(a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.int64]:
    """Ids in both sorted, unique arrays."""
    if len(a) > len(b):
        a, b = b, a
    if not len(a):
        return _EMPTY_IDS
    pos = np.searchsorted(b, a)
    pos[pos == len(b)] = 0
    return a[b[pos] == a]


def subtract_sorted(a: NDArray[np.int64], b: NDArray[np.int64]) -> NDArray[np.int64]:
    """Ids of sorted, unique `a` that are not in sorted, unique `b`."""
    if not len(a) or not len(b):
        return a
    pos = np.searchsorted(b, a)
    pos[pos == len(b)] = 0
    return a[b[pos] != a]


def _literal_alternatives(pattern: str) -> list[str] | None:
    """`a|b|c` with no regex syntax in it: the exact values it matches, else None."""
    if not pattern or _REGEX_META.intersection(pattern.replace("|", "")):
        return None
    alternatives = list(dict.fromkeys(pattern.split("|")))  # "a|a" names one value
    return None if "" in alternatives else alternatives


class _NameValues:
    """The live pairs of one label name: their values and ids, aligned, in the
    order the pairs got their first series."""

    __slots__ = ("pids", "values")

    def __init__(self) -> None:
        self.values: list[str] = []
        self.pids = array("q")

    def ids(self) -> NDArray[np.int64]:
        return np.frombuffer(self.pids, dtype=np.int64)


class Index:
    """Series ids, their label sets, and postings; see the module docstring."""

    def __init__(self) -> None:
        self._labels: list[Labels | None] = []
        self._ids: dict[Labels, int] = {}
        self.pairs = PairTable()
        """The label pairs, by id; the write path looks labels up here."""
        self._post: list[array | None] = []
        """Postings by pair id, for pairs held by two or more series."""
        self._one = np.full(256, -1, dtype=np.int64)
        """The series of each pair held by exactly one series (a unique value: a pod,
        an instance), -1 for others: a numpy slot costs less than a Python int."""
        self._live = np.zeros(256, dtype=bool)
        """Pair ids with live series."""
        self._live_pairs = 0
        self._pending: list[tuple[NDArray[np.int64], NDArray[np.int64]]] = []
        """Postings entries (pair ids, series ids) not yet in `_post`; see `_post_many`."""
        self._pending_rows = 0
        self._by_name: dict[str, _NameValues] = {}
        """name -> its pairs with live series. Matchers find a value's pair by its
        label key in `pairs`; this is for walking all values of a name (regexes,
        `label_values`)."""
        # Pair ids per series: series `sid` holds `_rows[_row_start[sid]:_row_start[sid + 1]]`.
        self._rows = np.zeros(8192, dtype=np.int32)
        self._row_start = np.zeros(1025, dtype=np.int64)
        self._alive = np.zeros(1024, dtype=bool)
        self._count = 0
        # Label order, kept incrementally: `_order` lists ranked ids in label
        # order, `_rank[id]` is its position; ids >= `_ranked_upto` are unranked.
        self._order = np.zeros(0, dtype=np.int64)
        self._rank = np.zeros(0, dtype=np.int64)
        self._ranked_upto = 0
        # Per label name: how many of its values were ever removed, and the
        # joined-values text for one-pass regex scans, built on demand. Values
        # are only added or removed, so (count, removals) changes whenever the
        # set of values does.
        self._removals: dict[str, int] = {}
        self._scans: dict[str, tuple[tuple[int, int], ValueScan]] = {}
        """name -> (version, one-pass regex scan over its values, in `_by_name` order)."""

    def __len__(self) -> int:
        """Number of live series."""
        return self._count

    @property
    def num_pairs(self) -> int:
        """Distinct (name, value) pairs of live series."""
        return self._live_pairs

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
        self._post_many(pids, owners)
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
        live = np.zeros(len(pids), dtype=bool)
        known = pids < len(self._live)
        live[known] = self._live[pids[known]]
        dead = np.zeros(len(pids) + 1, dtype=np.int64)
        np.cumsum(~live, out=dead[1:])
        return dead[offsets[1:]] == dead[offsets[:-1]]

    def _post_many(self, pids: NDArray[np.int64], owners: NDArray[np.int64]) -> None:
        """Add new series ids (ascending, above all posted ones) to the postings of
        their pairs.

        A pair new to the index with one series in the call (a unique value: a
        pod, an instance) gets that id in `_one` at once. Every other
        entry is queued and folded in per pair when postings are read, or when
        the queue is long: a pair shared by many series is then touched once
        per fold rather than once per request.
        """
        post = self._post
        limit = self.pairs.id_limit
        if limit > len(post):
            post.extend(repeat(None, limit - len(post)))
            if limit > len(self._live):
                size = max(2 * len(self._live), limit)
                live = np.zeros(size, dtype=bool)
                live[: len(self._live)] = self._live
                self._live = live
                one = np.full(size, -1, dtype=np.int64)
                one[: len(self._one)] = self._one
                self._one = one
        fresh = ~self._live[pids]
        if not fresh.any():
            self._queue(pids, owners)
            return
        at = np.flatnonzero(fresh)
        f_pids, f_owners = pids[at], owners[at]
        order = np.argsort(f_pids, kind="stable")
        f_pids, f_owners = f_pids[order], f_owners[order]
        starts = np.flatnonzero(np.concatenate(([True], f_pids[1:] != f_pids[:-1])))
        sizes = np.diff(np.append(starts, len(f_pids)))
        self._publish(f_pids[starts])
        single = sizes == 1
        if single.any():
            heads = starts[single]
            self._one[f_pids[heads]] = f_owners[heads]
        if not single.all():
            shared = np.repeat(~single, sizes)
            self._queue(f_pids[shared], f_owners[shared])
        if len(at) < len(pids):
            self._queue(pids[~fresh], owners[~fresh])

    def _queue(self, pids: NDArray[np.int64], owners: NDArray[np.int64]) -> None:
        self._pending.append((pids, owners))
        self._pending_rows += len(pids)
        if self._pending_rows > PENDING_POSTINGS:
            self._fold()

    def _fold(self) -> None:
        """Append the queued entries to the postings, one step per distinct pair."""
        if not self._pending:
            return
        # (pair, series) as one int64 each: one plain sort groups by pair with the
        # series ids ascending (ids are below 2**32).
        keys = np.concatenate([(p << 32) | o for p, o in self._pending])
        self._pending.clear()
        self._pending_rows = 0
        keys.sort()
        pids = keys >> 32
        sids = (keys & 0xFFFFFFFF).astype(np.uint32)
        starts = np.flatnonzero(np.concatenate(([True], pids[1:] != pids[:-1])))
        ends = np.append(starts[1:], len(pids))
        post = self._post
        firsts = pids[starts]
        ones = self._one[firsts].tolist()
        self._one[firsts] = -1
        for pid, one, lo, hi in zip(
            firsts.tolist(), ones, starts.tolist(), ends.tolist(), strict=True
        ):
            ids = post[pid]
            if ids is not None:
                ids.frombytes(sids[lo:hi].tobytes())
            elif one >= 0:
                grown = array("I", (one,))
                grown.frombytes(sids[lo:hi].tobytes())
                post[pid] = grown
            elif hi - lo == 1:
                self._one[pid] = int(sids[lo])
            else:
                post[pid] = array("I", sids[lo:hi].tobytes())

    def _publish(self, pids: NDArray[np.int64]) -> None:
        """Pairs getting their first live series: into the lists of their names."""
        self._live[pids] = True
        self._live_pairs += len(pids)
        names = self.pairs.name_ids(pids)
        by_name = np.argsort(names, kind="stable")
        ordered = pids[by_name]
        sorted_names = names[by_name]
        cuts = np.flatnonzero(sorted_names[1:] != sorted_names[:-1]) + 1
        pairs = self.pairs.pairs(ordered.tolist())
        lists = self._by_name
        for lo, hi in pairwise([0, *cuts.tolist(), len(ordered)]):
            name = pairs[lo][0]
            found = lists.get(name)
            if found is None:
                found = lists[name] = _NameValues()
            found.values.extend(map(_second, pairs[lo:hi]))
            found.pids.frombytes(ordered[lo:hi].tobytes())

    def remove(self, sids: Iterable[int]) -> None:
        """Take series out of the index (they have no samples left)."""
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
        self._fold()
        dead_ids = np.array(dead, dtype=np.int64)
        self._alive[dead_ids] = False
        self._count -= len(dead)
        touched = np.unique(self.pair_ids(dead_ids))
        alive = self._alive
        post = self._post
        gone = []
        for pid in touched.tolist():
            ids = post[pid]
            if ids is not None:  # a single-series pair of a removed series just goes
                found = _array_ids(ids)
                kept = found[alive[found]]
                if len(kept) == 1:
                    post[pid] = None
                    self._one[pid] = int(kept[0])
                    continue
                if len(kept):
                    post[pid] = array("I", kept.astype(np.uint32).tobytes())
                    continue
            post[pid] = None
            self._one[pid] = -1
            gone.append(pid)
        if not gone:
            return
        self._live[gone] = False
        self._live_pairs -= len(gone)
        for name in {self.pairs.pair(pid)[0] for pid in gone}:
            entry = self._by_name[name]
            ids = entry.ids()
            live = self._live[ids]
            self._removals[name] = self._removals.get(name, 0) + int((~live).sum())
            if live.any():
                rest = _NameValues()
                rest.values = list(compress(entry.values, live.tolist()))
                rest.pids.frombytes(ids[live].tobytes())
                self._by_name[name] = rest
            else:
                del self._by_name[name]
                self._scans.pop(name, None)
        self.pairs.forget(gone)

    def sweep_pairs(self) -> int:
        """Forget registered pairs that no live series holds, once they are many
        (labels of refused series); returns how many. Call only between writes:
        pair ids looked up before a sweep may name forgotten pairs."""
        idle = len(self.pairs) - self._live_pairs
        if idle <= max(PAIR_SLACK, self._live_pairs):
            return 0
        limit = self.pairs.id_limit
        live = np.zeros(limit, dtype=bool)
        live[: min(limit, len(self._live))] = self._live[:limit]
        unused = np.flatnonzero(~live).tolist()
        before = len(self.pairs)
        self.pairs.forget(unused)
        return before - len(self.pairs)

    def all_ids(self) -> NDArray[np.int64]:
        return np.flatnonzero(self.alive).astype(np.int64, copy=False)

    def _value_pairs(self, name: str, values: Iterable[str]) -> NDArray[np.int64]:
        """Ids of the live pairs `name="value"` for the given values."""
        pids = self.pairs.lookup([label_key(name, v) for v in values])
        pids = pids[pids >= 0]
        return pids[self._live[pids]] if len(pids) else pids

    def _union(self, pids: NDArray[np.int64]) -> NDArray[np.int64]:
        """Ids of series holding any of the live pairs `pids` (all of one name, so
        their postings are disjoint), sorted."""
        if not len(pids):
            return _EMPTY_IDS
        self._fold()
        lists = [ids for ids in map(self._post.__getitem__, pids.tolist()) if ids is not None]
        if len(lists) == len(pids) == 1:
            return _array_ids(lists[0])
        merged = np.frombuffer(b"".join(lists), dtype=np.uint32).astype(np.int64)
        if len(lists) < len(pids):
            singles = self._one[pids]
            merged = np.concatenate([merged, singles[singles >= 0]])
        merged.sort()
        return merged

    def _name_pairs(self, name: str) -> NDArray[np.int64]:
        """Ids of all live pairs of `name`."""
        found = self._by_name.get(name)
        return _EMPTY_IDS if found is None else found.ids()

    def select(self, matchers: Sequence[Matcher]) -> NDArray[np.int64]:
        """Sorted ids of live series matching every matcher (all series if none)."""
        positives: list[NDArray[np.int64]] = []
        negatives: list[NDArray[np.int64]] = []
        for m in matchers:
            if m.type is MatchType.EQ:
                if m.value:
                    positives.append(self._union(self._value_pairs(m.name, (m.value,))))
                else:  # a="" selects series without a
                    negatives.append(self._union(self._name_pairs(m.name)))
            elif m.type is MatchType.NEQ:
                if m.value:
                    negatives.append(self._union(self._value_pairs(m.name, (m.value,))))
                else:  # a!="" selects series that have a
                    positives.append(self._union(self._name_pairs(m.name)))
            else:
                literals = _literal_alternatives(m.value)
                if literals is not None:  # `a|b|c`: direct lookups, no regex runs
                    found = self._union(self._value_pairs(m.name, literals))
                    (positives if m.type is MatchType.RE else negatives).append(found)
                    continue
                pids = self._name_pairs(m.name)
                hit = self._regex_hits(m, pids)  # values the regex itself matches
                positive = m.type is MatchType.RE
                if m.matches_empty:  # series without the label match too
                    if positive:
                        negatives.append(self._union(pids[~hit]))
                    else:
                        negatives.append(self._union(pids[hit]))
                elif positive:
                    positives.append(self._union(pids[hit]))
                else:
                    positives.append(self._union(pids[~hit]))
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

    # -- label order ---------------------------------------------------------------

    @property
    def unranked(self) -> int:
        """Series created since the label order was last refreshed."""
        return len(self._labels) - self._ranked_upto

    def refresh_order(self) -> None:
        """Fold new series into the label order.

        Sorts only the new series, then binary-searches their places in the
        old order (few new series) or merges the two sorted runs (many).
        """
        upto = len(self._labels)
        if upto == self._ranked_upto:
            return
        key = self._labels.__getitem__
        alive = self._alive
        old = self._order[alive[self._order]]
        new = np.arange(self._ranked_upto, upto, dtype=np.int64)
        fresh = sorted(new[alive[new]].tolist(), key=key)
        if len(fresh) * 32 < len(old):
            # Few new series: binary-search each one's place (O(k log n) comparisons).
            old_list = old.tolist()
            places = [bisect_left(old_list, key(sid), key=key) for sid in fresh]
            order = np.insert(old, places, fresh)
        else:
            merged = old.tolist() + fresh
            merged.sort(key=key)  # two sorted runs: timsort merges them
            order = np.array(merged, dtype=np.int64)
        rank = np.zeros(upto, dtype=np.int64)
        rank[order] = np.arange(len(order), dtype=np.int64)
        self._order = order
        self._rank = rank
        self._ranked_upto = upto

    def sort_by_labels(self, sids: NDArray[np.int64]) -> NDArray[np.int64]:
        """`sids` reordered so that their label sets ascend.

        Uses the maintained label order (a numpy argsort of ranks); when some
        ids are newer than it, either refreshes it (if that is cheap relative
        to the request) or sorts the labels of just these series.
        """
        if len(sids) < 2:
            return sids
        if int(sids.max()) >= self._ranked_upto:
            if len(self._order) + self.unranked <= 8 * len(sids):
                self.refresh_order()
            else:
                labels = self.labels_of(sids.tolist())
                order = sorted(range(len(labels)), key=labels.__getitem__)
                return sids[order]
        return sids[np.argsort(self._rank[sids], kind="stable")]

    def _regex_hits(self, m: Matcher, pids: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Per pair of `pids` (all live pairs of `m.name`, as `_name_pairs` gives
        them): whether m's regex (not negated) fully matches its value.

        Once per distinct value; for many values, in one RE2 pass over them
        all (see `storage.valuescan`).
        """
        entry = self._by_name.get(m.name)
        values = entry.values if entry is not None else []
        if len(values) >= SCAN_MIN_VALUES and scan_safe(m.value):
            cached = self._scans.get(m.name)
            version = (len(values), self._removals.get(m.name, 0))
            if cached is None or cached[0] != version:
                cached = self._scans[m.name] = (version, ValueScan(list(values)))
            scan = cached[1]
            if scan.usable:
                hit = np.zeros(len(pids), dtype=bool)
                hit[scan.matching(m.value)] = True
                return hit
        want = m.type is MatchType.RE
        return np.fromiter((m.matches(v) is want for v in values), dtype=bool, count=len(values))

    def label_names(self, sids: NDArray[np.int64] | None = None) -> list[str]:
        """Sorted label names of the given series (all live series if None)."""
        if sids is None:
            return sorted(self._by_name)
        labels = self.labels_of(sids.tolist())
        return sorted(set(map(_first, chain.from_iterable(labels))))

    def label_values(self, name: str, sids: NDArray[np.int64] | None = None) -> list[str]:
        """Sorted values of `name` over the given series (all live series if None)."""
        entry = self._by_name.get(name)
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
        self._fold()
        one = self._one[pids]
        single = one >= 0
        hit = np.zeros(len(pids), dtype=bool)
        hit[single] = mask[one[single]]
        post = self._post
        for k in np.flatnonzero(~single).tolist():
            ids = post[int(pids[k])]
            hit[k] = ids is not None and bool(mask[_array_ids(ids)].any())
        return sorted(compress(entry.values, hit.tolist()))
