"""The series index: series ids <-> label sets, and postings for matchers.

Series ids are dense ints handed out in creation order and never reused, so a
postings list (the ids of the series holding one `name="value"` pair) stays
sorted by just appending, and an id read from an old snapshot of the head can
never name a different series. Postings are `array('I')` (4 bytes per entry).

Memory is what this module is mostly about: every distinct `(name, value)`
pair is one shared tuple, so a series costs its `Labels` tuple (one pointer
per label), one dict entry and its postings entries, never a copy of strings.

Matchers follow Prometheus: a series without a label reads as "" for it, so
`a=""` selects series without `a`, `a!="x"` also selects series without `a`,
and regexes are evaluated once per distinct label value, never per series.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable, Sequence
from itertools import chain
from operator import itemgetter

import numpy as np
from numpy.typing import NDArray

from storage.labels import Labels, Matcher, MatchType

_EMPTY_IDS = np.zeros(0, dtype=np.int64)
_REGEX_META = frozenset(".^$*+?()[]{}|\\")
_first = itemgetter(0)


def _ids(postings: array) -> NDArray[np.int64]:
    """A postings list as a fresh int64 array (never a view: the list keeps growing)."""
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
    alternatives = pattern.split("|")
    return None if "" in alternatives else alternatives


class Index:
    """Series ids, their label sets, and postings; see the module docstring."""

    def __init__(self) -> None:
        self._labels: list[Labels | None] = []
        self._ids: dict[Labels, int] = {}
        self._postings: dict[str, dict[str, array]] = {}
        self._pairs: dict[tuple[str, str], tuple[str, str]] = {}
        self._alive = np.zeros(1024, dtype=bool)
        self._count = 0

    def __len__(self) -> int:
        """Number of live series."""
        return self._count

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
        return list(map(self._labels.__getitem__, sids))

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
        self._labels.append(lbl)
        self._ids[lbl] = sid
        postings = self._postings
        for name, value in canonical:
            values = postings.get(name)
            if values is None:
                values = postings[name] = {}
            ids = values.get(value)
            if ids is None:
                ids = values[value] = array("I")
            ids.append(sid)
        if sid >= len(self._alive):
            grown = np.zeros(max(2 * len(self._alive), sid + 1), dtype=bool)
            grown[: len(self._alive)] = self._alive
            self._alive = grown
        self._alive[sid] = True
        self._count += 1
        return sid

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
        for pair in touched:
            name, value = pair
            values = self._postings[name]
            ids = np.frombuffer(values[value], dtype=np.uint32)
            kept = ids[alive[ids]]
            del ids
            if len(kept):
                values[value] = array("I", kept.tobytes())
                continue
            del values[value]
            del self._pairs[pair]
            if not values:
                del self._postings[name]

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
        merged = np.frombuffer(b"".join(map(bytes, lists)), dtype=np.uint32).astype(np.int64)
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
                accepted: list[str] = []
                refused: list[str] = []
                for value in table:  # the regex runs once per distinct value
                    (accepted if m.matches(value) else refused).append(value)
                if m.matches_empty:  # series without the label match too
                    negatives.append(self._union(m.name, refused))
                else:
                    positives.append(self._union(m.name, accepted))
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
        return sorted(
            v for v, ids in table.items() if mask[np.frombuffer(ids, dtype=np.uint32)].any()
        )
