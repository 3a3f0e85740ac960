"""Label pairs of the index, numbered: pair ids, names and their order, keys.

Every distinct `(name, value)` pair the index holds has a small integer id
and one shared tuple (series' `Labels` point at it, so a pair's strings exist
once). Ids let the write path work on a request's labels as numpy columns:
check name order, find the `cluster` label, group postings, all without a
Python object per label.

Pairs are found by their label key (`remote_write.labelkeys`), which is what
the wire gives for free: a known label costs one dict lookup, and only labels
never seen before are decoded and checked. A pair is registered before the
series holding it is created (the series may still be refused, for the
series limit, or for another label), so the table can hold pairs without
series; `Index` counts those and has them swept.

Ids grow and are never reused (like series ids), so an id taken from a
request's lookup stays valid until the next sweep.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from itertools import repeat
from operator import itemgetter

import numpy as np
from numpy.typing import NDArray

from remote_write.labelkeys import label_key

_first = itemgetter(0)
_second = itemgetter(1)


class PairTable:
    """Pair ids <-> shared pairs, label keys and name ids; see the module docstring."""

    def __init__(self) -> None:
        self._by_key: dict[str, int] = {}
        self._pairs: list[tuple[str, str] | None] = []
        self._keys: list[str | None] = []
        self._name_of = np.zeros(256, dtype=np.int32)
        self._names: list[str] = []
        self._name_ids: dict[str, int] = {}
        self._name_rank = np.zeros(0, dtype=np.int32)

    def __len__(self) -> int:
        """Pairs registered (with or without series)."""
        return len(self._by_key)

    @property
    def id_limit(self) -> int:
        """One more than the largest pair id handed out."""
        return len(self._pairs)

    # -- lookups ----------------------------------------------------------------

    def lookup(self, keys: Sequence[str]) -> NDArray[np.int64]:
        """Pair id of each label key, -1 for keys not registered (C-level loop)."""
        return np.fromiter(map(self._by_key.get, keys, repeat(-1)), dtype=np.int64, count=len(keys))

    def pair(self, pid: int) -> tuple[str, str]:
        pair = self._pairs[pid]
        assert pair is not None
        return pair

    def pairs(self, pids: Sequence[int]) -> list[tuple[str, str]]:
        """The shared tuples of registered pairs (C-level loop)."""
        return list(map(self._pairs.__getitem__, pids))  # type: ignore[arg-type]

    def id_objects(self, pids: Sequence[int]) -> list[int]:
        """The ids of registered pairs as the int objects the table holds, so that
        other tables can share them instead of holding copies."""
        keys = map(self._keys.__getitem__, pids)
        return list(map(self._by_key.__getitem__, keys))  # type: ignore[arg-type]

    def key(self, pid: int) -> str:
        key = self._keys[pid]
        assert key is not None
        return key

    def name_ids(self, pids: NDArray[np.int64]) -> NDArray[np.int32]:
        """Name id of each pair."""
        return self._name_of[pids]

    def name_id(self, name: str) -> int:
        """The id of a label name, -1 if no pair ever had it."""
        return self._name_ids.get(name, -1)

    @property
    def name_rank(self) -> NDArray[np.int32]:
        """Position of each name id among all names in string order: comparing ranks
        compares names."""
        return self._name_rank

    # -- changes ----------------------------------------------------------------

    def register(
        self, keys: Sequence[str], names: Sequence[str], values: Sequence[str]
    ) -> NDArray[np.int64]:
        """Register new pairs (distinct keys, none registered; `names[k]`, `values[k]`
        is what `keys[k]` decodes to) and return their ids, consecutive."""
        k = len(keys)
        first = len(self._pairs)
        if not k:
            return np.zeros(0, dtype=np.int64)
        interned = list(map(sys.intern, names))
        self._add_names(interned)
        ids = range(first, first + k)
        self._by_key.update(zip(keys, ids, strict=True))
        self._pairs.extend(zip(interned, values, strict=True))
        self._keys.extend(keys)
        end = first + k
        if end > len(self._name_of):
            grown = np.zeros(max(2 * len(self._name_of), end), dtype=np.int32)
            grown[:first] = self._name_of[:first]
            self._name_of = grown
        self._name_of[first:end] = np.fromiter(
            map(self._name_ids.__getitem__, interned), dtype=np.int32, count=k
        )
        return np.arange(first, end, dtype=np.int64)

    def ids_of(self, pairs: Sequence[tuple[str, str]]) -> NDArray[np.int64]:
        """Ids of pairs given as text, registering the ones not known (the caller
        vouches that they are valid). One key per pair built in Python: for
        writes that do not come from the wire (rules, tests) and rare cases."""
        keys = [label_key(name, value) for name, value in pairs]
        ids = self.lookup(keys)
        if (ids >= 0).all():
            return ids
        fresh: dict[str, tuple[str, str]] = {}
        for key, pair, pid in zip(keys, pairs, ids.tolist(), strict=True):
            if pid < 0:
                fresh.setdefault(key, pair)
        chosen = list(fresh.values())
        self.register(list(fresh), list(map(_first, chosen)), list(map(_second, chosen)))
        return self.lookup(keys)

    def forget(self, pids: Sequence[int]) -> None:
        """Drop pairs no series holds any more (their ids are not reused)."""
        by_key = self._by_key
        for pid in pids:
            key = self._keys[pid]
            if key is None:
                continue
            del by_key[key]
            self._keys[pid] = None
            self._pairs[pid] = None

    def _add_names(self, names: list[str]) -> None:
        ids = self._name_ids
        new = [n for n in dict.fromkeys(names) if n not in ids]
        if not new:
            return
        for name in new:
            ids[name] = len(self._names)
            self._names.append(name)
        order = sorted(range(len(self._names)), key=self._names.__getitem__)
        rank = np.zeros(len(self._names), dtype=np.int32)
        rank[order] = np.arange(len(order), dtype=np.int32)
        self._name_rank = rank
