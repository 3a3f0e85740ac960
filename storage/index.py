"""The series index: series ids <-> label sets, and postings for matchers.

Series ids are dense ints handed out in creation order and never reused, so a
postings list (the ids of the series holding one `name="value"` pair) stays
sorted by just appending, and an id read from an old snapshot of the head can
never name a different series. Postings are `array('I')` (4 bytes per entry),
or a plain int while a pair belongs to one series only (label values unique
per series, like `pod` or `instance`, are common and an array costs ~150 B).

Ids are 32-bit in postings, so one process can create about 4 billion series
in its life; a restart renumbers (replay rebuilds the index from the WAL).

Memory is what this module is mostly about: every distinct `(name, value)`
pair is one shared tuple, so a series costs its `Labels` tuple (one pointer
per label), one dict entry and its postings entries, never a copy of strings.

Matchers follow Prometheus: a series without a label reads as "" for it, so
`a=""` selects series without `a`, `a!="x"` also selects series without `a`,
and regexes are evaluated once per distinct label value, never per series.
"""

from __future__ import annotations

import operator
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from itertools import chain, pairwise, repeat
from operator import itemgetter
from typing import cast

import numpy as np
from numpy.typing import NDArray

from storage.errors import StorageUnavailable
from storage.labels import Labels, Matcher, MatchType
from storage.valuescan import ValueScan, scan_safe

_EMPTY_IDS = np.zeros(0, dtype=np.int64)
_REGEX_META = frozenset(".^$*+?()[]{}|\\")
_first = itemgetter(0)
_second = itemgetter(1)
MAX_ID = 0xFFFFFFFF
SCAN_MIN_VALUES = 64
"""From this many distinct values on, regexes run as one scan over all of them."""


Postings = array | int


def _ids(postings: Postings) -> NDArray[np.int64]:
    """A postings list as a fresh int64 array (never a view: the list keeps growing)."""
    if isinstance(postings, int):
        return np.array([postings], dtype=np.int64)
    return np.frombuffer(postings, dtype=np.uint32).astype(np.int64)


def _raw(postings: Postings) -> bytes:
    if isinstance(postings, int):
        return postings.to_bytes(4, "little")
    return postings.tobytes()


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


def _others(table: dict[str, Postings], hits: list[str]) -> list[str]:
    skip = set(hits)
    return [v for v in table if v not in skip]


def _literal_alternatives(pattern: str) -> list[str] | None:
    """`a|b|c` with no regex syntax in it: the exact values it matches, else None."""
    if not pattern or _REGEX_META.intersection(pattern.replace("|", "")):
        return None
    alternatives = list(dict.fromkeys(pattern.split("|")))  # "a|a" names one value
    return None if "" in alternatives else alternatives


class Index:
    """Series ids, their label sets, and postings; see the module docstring."""

    def __init__(self) -> None:
        self._labels: list[Labels | None] = []
        self._ids: dict[Labels, int] = {}
        self._postings: dict[str, dict[str, Postings]] = {}
        self._pairs: dict[tuple[str, str], tuple[str, str]] = {}
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

    def __len__(self) -> int:
        """Number of live series."""
        return self._count

    @property
    def num_pairs(self) -> int:
        """Distinct (name, value) pairs of live series."""
        return len(self._pairs)

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

    def add(self, labels: Labels) -> int:
        """Register a new series (the caller checked it is not there) and return its id."""
        pairs = self._pairs
        canonical = []
        for pair in labels:
            shared = pairs.get(pair)
            if shared is None:
                shared = (sys.intern(pair[0]), pair[1])
                pairs[shared] = shared
            canonical.append(shared)
        lbl = Labels.from_sorted(canonical)
        sid = len(self._labels)
        if sid > MAX_ID:
            raise StorageUnavailable(
                "series id space exhausted (4 billion series created since start); "
                "restart the service to renumber"
            )
        self._labels.append(lbl)
        self._ids[lbl] = sid
        postings = self._postings
        for name, value in canonical:
            values = postings.get(name)
            if values is None:
                values = postings[name] = {}
            ids = values.get(value)
            if ids is None:
                values[value] = sid
            elif isinstance(ids, int):
                values[value] = array("I", (ids, sid))
            else:
                ids.append(sid)
        if sid >= len(self._alive):
            grown = np.zeros(max(2 * len(self._alive), sid + 1), dtype=bool)
            grown[: len(self._alive)] = self._alive
            self._alive = grown
        self._alive[sid] = True
        self._count += 1
        return sid

    def get_many(self, labels: Sequence[Labels]) -> list[int | None]:
        """`get` for many label sets (C-level loop)."""
        return list(map(self._ids.get, labels))

    def shared_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """Each pair as the index's shared tuple where it has one, else as given.

        Label sets built from shared pairs cost no new tuples when added, and
        compare faster (equal pairs are the same object).
        """
        return list(map(self._pairs.get, pairs, pairs))

    def add_many(self, labels: Sequence[Labels]) -> range:
        """Register new series (the caller checked none is there, and that they are
        distinct) and return their ids, consecutive and in the given order.

        The bulk form of `add`: pairs are interned and postings appended per
        distinct pair of the whole call, and pairs that first appear here with
        a single series go into the postings with one `dict.update` per name.
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
        counts = np.fromiter(map(len, labels), dtype=np.int64, count=n)
        flat = list(chain.from_iterable(labels))
        m = len(flat)
        pairs = self._pairs
        shared = list(map(pairs.get, flat))
        fresh = np.flatnonzero(np.fromiter(map(operator.is_, shared, repeat(None)), bool, m))
        if len(fresh):
            where = fresh.tolist()
            new_pairs = list(map(flat.__getitem__, where))
            names = list(map(_first, new_pairs))
            interned = list(map(sys.intern, names))
            if not all(map(operator.is_, interned, names)):
                new_pairs = list(zip(interned, map(_second, new_pairs), strict=True))
            # setdefault: a pair may occur in several new series
            for i, pair in zip(where, map(pairs.setdefault, new_pairs, new_pairs), strict=True):
                shared[i] = pair
        if not all(map(operator.is_, shared, flat)):
            bounds = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(counts, out=bounds[1:])
            edges = bounds.tolist()
            labels = list(
                map(
                    tuple.__new__,
                    repeat(Labels),
                    map(shared.__getitem__, map(slice, edges[:-1], edges[1:])),
                )
            )
        sids = range(first, first + n)
        self._labels.extend(labels)
        self._ids.update(zip(labels, sids, strict=True))
        self._post_many(
            shared, np.repeat(np.arange(first, first + n, dtype=np.int64), counts), fresh
        )
        end = first + n
        if end > len(self._alive):
            grown = np.zeros(max(2 * len(self._alive), end), dtype=bool)
            grown[: len(self._alive)] = self._alive
            self._alive = grown
        self._alive[first:end] = True
        self._count += n
        return sids

    def _post_many(
        self, shared: list[tuple[str, str]], owners: NDArray[np.int64], fresh: NDArray[np.int64]
    ) -> None:
        """Append new series ids (ascending) to the postings of their pairs."""
        m = len(shared)
        keys = np.fromiter(map(id, shared), dtype=np.int64, count=m)
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
        sizes = np.diff(np.append(starts, m))
        heads = order[starts]
        owners = owners[order]
        # Pairs new to the index with one series each: one dict.update per name.
        was_fresh = np.zeros(m, dtype=bool)
        was_fresh[fresh] = True
        single = was_fresh[heads] & (sizes == 1)
        postings = self._postings
        if single.any():
            rows = heads[single]
            new_pairs = list(map(shared.__getitem__, rows.tolist()))
            sids = owners[starts[single]]
            names = list(map(_first, new_pairs))
            name_keys = np.fromiter(map(id, names), np.int64, len(names))
            by_name = np.argsort(name_keys, kind="stable")
            name_keys = name_keys[by_name]
            by_name_list = by_name.tolist()
            values = list(map(_second, map(new_pairs.__getitem__, by_name_list)))
            sid_list = sids[by_name].tolist()
            cuts = np.flatnonzero(name_keys[1:] != name_keys[:-1]) + 1
            edges = [0, *cuts.tolist(), len(names)]
            for lo, hi in pairwise(edges):
                name = names[by_name_list[lo]]
                table = postings.get(name)
                if table is None:
                    table = postings[name] = {}
                table.update(zip(values[lo:hi], sid_list[lo:hi], strict=True))
        rest = np.flatnonzero(~single)
        if not len(rest):
            return
        r_starts = starts[rest].tolist()
        r_ends = (starts[rest] + sizes[rest]).tolist()
        for pos, lo, hi in zip(heads[rest].tolist(), r_starts, r_ends, strict=True):
            name, value = shared[pos]
            table = postings.get(name)
            if table is None:
                table = postings[name] = {}
            ids = table.get(value)
            if hi - lo == 1:
                sid = int(owners[lo])
                if ids is None:
                    table[value] = sid
                elif isinstance(ids, int):
                    table[value] = array("I", (ids, sid))
                else:
                    ids.append(sid)
                continue
            chunk = owners[lo:hi].astype(np.uint32).tobytes()
            if ids is None:
                table[value] = array("I", chunk)
            elif isinstance(ids, int):
                grown = array("I", (ids,))
                grown.frombytes(chunk)
                table[value] = grown
            else:
                ids.frombytes(chunk)

    def remove(self, sids: Iterable[int]) -> None:
        """Take series out of the index (they have no samples left)."""
        touched: dict[tuple[str, str], None] = {}
        for sid in sids:
            lbl = self._labels[sid]
            if lbl is None:
                continue
            self._labels[sid] = None
            del self._ids[lbl]
            self._alive[sid] = False
            self._count -= 1
            touched.update(dict.fromkeys(lbl))
        alive = self._alive
        postings = self._postings
        for pair in touched:
            name, value = pair
            values = postings[name]
            ids = values[value]
            if not isinstance(ids, int):  # a single-series pair of a removed series just goes
                found = _ids(ids)
                kept = found[alive[found]]
                if len(kept) == 1:
                    values[value] = int(kept[0])
                    continue
                if len(kept):
                    values[value] = array("I", kept.astype(np.uint32).tobytes())
                    continue
            del values[value]
            del self._pairs[pair]
            self._removals[name] = self._removals.get(name, 0) + 1
            if not values:
                del self._postings[name]
                self._scans.pop(name, None)

    def all_ids(self) -> NDArray[np.int64]:
        return np.flatnonzero(self.alive).astype(np.int64, copy=False)

    def _union(self, name: str, values: Iterable[str]) -> NDArray[np.int64]:
        """Ids of series whose `name` is any of `values` (lists of one name are disjoint)."""
        table = self._postings.get(name, {})
        lists = [table[v] for v in values if v in table]
        if not lists:
            return _EMPTY_IDS
        if len(lists) == 1:
            return _ids(lists[0])
        merged = np.frombuffer(b"".join(map(_raw, lists)), dtype=np.uint32).astype(np.int64)
        merged.sort()
        return merged

    def select(self, matchers: Sequence[Matcher]) -> NDArray[np.int64]:
        """Sorted ids of live series matching every matcher (all series if none)."""
        positives: list[NDArray[np.int64]] = []
        negatives: list[NDArray[np.int64]] = []
        for m in matchers:
            table = self._postings.get(m.name, {})
            if m.type is MatchType.EQ:
                if m.value:
                    positives.append(self._union(m.name, (m.value,)))
                else:  # a="" selects series without a
                    negatives.append(self._union(m.name, table))
            elif m.type is MatchType.NEQ:
                if m.value:
                    negatives.append(self._union(m.name, (m.value,)))
                else:  # a!="" selects series that have a
                    positives.append(self._union(m.name, table))
            else:
                literals = _literal_alternatives(m.value)
                if literals is not None:  # `a|b|c`: direct lookups, no regex runs
                    if m.type is MatchType.RE:
                        positives.append(self._union(m.name, literals))
                    else:
                        negatives.append(self._union(m.name, literals))
                    continue
                hits = self._regex_hits(m, table)  # values the regex itself matches
                positive = m.type is MatchType.RE
                if m.matches_empty:  # series without the label match too
                    if positive:
                        negatives.append(self._union(m.name, _others(table, hits)))
                    else:
                        negatives.append(self._union(m.name, hits))
                elif positive:
                    positives.append(self._union(m.name, hits))
                else:
                    positives.append(self._union(m.name, _others(table, hits)))
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

    def _regex_hits(self, m: Matcher, table: dict[str, Postings]) -> list[str]:
        """Values of `m.name` that m's regex (not negated) fully matches.

        Once per distinct value; for many values, in one RE2 pass over them
        all (see `storage.valuescan`).
        """
        if len(table) >= SCAN_MIN_VALUES and scan_safe(m.value):
            cached = self._scans.get(m.name)
            version = (len(table), self._removals.get(m.name, 0))
            if cached is None or cached[0] != version:
                cached = self._scans[m.name] = (version, ValueScan(list(table)))
            scan = cached[1]
            if scan.usable:
                values = scan.values
                return [values[i] for i in scan.matching(m.value).tolist()]
        want = m.type is MatchType.RE
        return [v for v in table if m.matches(v) is want]

    def label_names(self, sids: NDArray[np.int64] | None = None) -> list[str]:
        """Sorted label names of the given series (all live series if None)."""
        if sids is None:
            return sorted(self._postings)
        labels = self.labels_of(sids.tolist())
        return sorted(set(map(_first, chain.from_iterable(labels))))

    def label_values(self, name: str, sids: NDArray[np.int64] | None = None) -> list[str]:
        """Sorted values of `name` over the given series (all live series if None)."""
        table = self._postings.get(name, {})
        if sids is None:
            return sorted(table)
        if not len(sids) or not table:
            return []
        if len(sids) < 4 * len(table):
            wanted = name
            found = {v for lbl in self.labels_of(sids.tolist()) for n, v in lbl if n == wanted}
            return sorted(found)
        mask = np.zeros(self.id_limit, dtype=bool)
        mask[sids] = True
        return sorted(v for v, ids in table.items() if mask[_ids(ids)].any())
