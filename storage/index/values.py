"""Label values: for each label name, its live pairs, to walk all values of a name.

Matchers find the pair of `name="value"` by its label key in the pair table;
walking every value of a name (regex matchers, `label_values`, `label_names`)
needs the name's pairs in one place: per name, its values and pair ids,
aligned, in the order the pairs got their first live series.

Regexes run once per distinct value, never per series, and for names with
many values in one RE2 pass over all of them (`storage.index.valuescan`),
whose joined text is cached per name until the set of values changes.
"""

from __future__ import annotations

from array import array
from itertools import compress, pairwise
from operator import itemgetter

import numpy as np
from numpy.typing import NDArray

from storage.index.pairs import PairTable
from storage.index.valuescan import ValueScan, scan_safe
from storage.labels import Matcher, MatchType

_EMPTY_IDS = np.zeros(0, dtype=np.int64)
_second = itemgetter(1)
SCAN_MIN_VALUES = 64
"""From this many distinct values on, regexes run as one scan over all of them."""


class NameValues:
    """The live pairs of one label name: their values and ids, aligned, in the
    order the pairs got their first series."""

    __slots__ = ("pids", "values")

    def __init__(self) -> None:
        self.values: list[str] = []
        self.pids = array("q")

    def ids(self) -> NDArray[np.int64]:
        return np.frombuffer(self.pids, dtype=np.int64)


class LabelValues:
    """Live pairs by label name, and regex evaluation over a name's values."""

    def __init__(self) -> None:
        self._by_name: dict[str, NameValues] = {}
        """name -> its pairs with live series."""
        # Per label name: how many of its values were ever removed, and the
        # joined-values text for one-pass regex scans, built on demand. Values
        # are only added or removed, so (count, removals) changes whenever the
        # set of values does.
        self._removals: dict[str, int] = {}
        self._scans: dict[str, tuple[tuple[int, int], ValueScan]] = {}
        """name -> (version, one-pass regex scan over its values, in `_by_name` order)."""

    def get(self, name: str) -> NameValues | None:
        """The live pairs of `name`, if any."""
        return self._by_name.get(name)

    def names(self) -> list[str]:
        """Sorted names with live pairs."""
        return sorted(self._by_name)

    def name_pairs(self, name: str) -> NDArray[np.int64]:
        """Ids of all live pairs of `name`."""
        found = self._by_name.get(name)
        return _EMPTY_IDS if found is None else found.ids()

    def publish(self, pids: NDArray[np.int64], table: PairTable) -> None:
        """Pairs getting their first live series: into the lists of their names."""
        names = table.name_ids(pids)
        by_name = np.argsort(names, kind="stable")
        ordered = pids[by_name]
        sorted_names = names[by_name]
        cuts = np.flatnonzero(sorted_names[1:] != sorted_names[:-1]) + 1
        pairs = table.pairs(ordered.tolist())
        lists = self._by_name
        for lo, hi in pairwise([0, *cuts.tolist(), len(ordered)]):
            name = pairs[lo][0]
            found = lists.get(name)
            if found is None:
                found = lists[name] = NameValues()
            found.values.extend(map(_second, pairs[lo:hi]))
            found.pids.frombytes(ordered[lo:hi].tobytes())

    def unpublish(self, names: set[str], live: NDArray[np.bool_]) -> None:
        """Drop the pairs of `names` that are no longer `live` (a mask by pair id)."""
        for name in names:
            entry = self._by_name[name]
            ids = entry.ids()
            kept = live[ids]
            self._removals[name] = self._removals.get(name, 0) + int((~kept).sum())
            if kept.any():
                rest = NameValues()
                rest.values = list(compress(entry.values, kept.tolist()))
                rest.pids.frombytes(ids[kept].tobytes())
                self._by_name[name] = rest
            else:
                del self._by_name[name]
                self._scans.pop(name, None)

    def regex_hits(self, m: Matcher, pids: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Per pair of `pids` (all live pairs of `m.name`, as `name_pairs` gives
        them): whether m's regex (not negated) fully matches its value.

        Once per distinct value; for many values, in one RE2 pass over them
        all (see `storage.index.valuescan`).
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

    def check_invariants(self, table: PairTable, live: NDArray[np.bool_]) -> None:
        """Raise AssertionError where the name lists disagree with the live pairs
        (`live`, a mask by pair id) or the pair table (tests)."""
        listed: set[int] = set()
        for name, entry in self._by_name.items():
            ids = entry.ids().tolist()
            assert len(ids) == len(entry.values) > 0, f"{name}: values and ids misaligned"
            for pid, value in zip(ids, entry.values, strict=True):
                assert bool(live[pid]), f"{name}={value!r}: pair {pid} listed but not live"
                assert table.pair(pid) == (name, value), f"pair {pid} is not {name}={value!r}"
                assert pid not in listed, f"pair {pid} listed twice"
                listed.add(pid)
        unlisted = set(np.flatnonzero(live).tolist()) - listed
        assert not unlisted, f"live pairs {sorted(unlisted)[:5]} not listed under their names"
        for name, (version, scan) in self._scans.items():
            scanned = self._by_name.get(name)
            assert scanned is not None, f"{name}: a cached scan without values"
            current = (len(scanned.values), self._removals.get(name, 0))
            if version == current:
                assert scan.values == scanned.values, f"{name}: cached scan is stale"
