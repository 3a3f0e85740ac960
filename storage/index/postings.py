"""Postings: for each label pair, the ids of the series holding it.

A pair's postings take one of two forms. While one series holds the pair (a
unique value: a pod, an instance; common, and an `array` costs ~150 B), that
series' id sits in the numpy column `one` (8 bytes, no Python object). From
the second series on, the ids are an `array('I')` (4 bytes per entry), sorted
because series ids only grow. Never both.

Writes do not touch arrays one pair at a time: entries of pairs shared by
several series are queued as numpy columns and folded in, one step per
distinct pair, when postings are read or the queue grows long. A pair shared
by many series (`job="node"`) is then touched once per fold, not once per
request. So a pair's series are its array or single owner plus its queued
entries, and every read folds first.
"""

from __future__ import annotations

from array import array
from itertools import repeat

import numpy as np
from numpy.typing import NDArray

_EMPTY_IDS = np.zeros(0, dtype=np.int64)
PENDING_POSTINGS = 1 << 17
"""Queued postings entries that make the next write fold them in (reads always do)."""


def array_ids(postings: array) -> NDArray[np.int64]:
    """The series ids of one postings array."""
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


class Postings:
    """Series ids by pair id, with the fold queue; see the module docstring."""

    def __init__(self) -> None:
        self._post: list[array | None] = []
        """Postings by pair id, for pairs held by two or more series."""
        self.one = np.full(256, -1, dtype=np.int64)
        """The series of each pair held by exactly one series (a unique value: a pod,
        an instance), -1 for others: a numpy slot costs less than a Python int."""
        self.live = np.zeros(256, dtype=bool)
        """Pair ids with live series."""
        self.live_pairs = 0
        self._pending: list[tuple[NDArray[np.int64], NDArray[np.int64]]] = []
        """Postings entries (pair ids, series ids) not yet in `_post`; see `add`."""
        self._pending_rows = 0

    def add(
        self, pids: NDArray[np.int64], owners: NDArray[np.int64], pair_limit: int
    ) -> NDArray[np.int64]:
        """Add new series ids (ascending, above all posted ones) to the postings of
        their pairs (`pair_limit`: one more than the largest pair id registered);
        returns the pairs that got their first live series, for the caller to
        publish (they are live here already).

        A pair new to the index with one series in the call gets that id in
        `one` at once. Every other entry is queued (see the module docstring).
        """
        post = self._post
        if pair_limit > len(post):
            post.extend(repeat(None, pair_limit - len(post)))
            if pair_limit > len(self.live):
                size = max(2 * len(self.live), pair_limit)
                live = np.zeros(size, dtype=bool)
                live[: len(self.live)] = self.live
                self.live = live
                one = np.full(size, -1, dtype=np.int64)
                one[: len(self.one)] = self.one
                self.one = one
        fresh = ~self.live[pids]
        if not fresh.any():
            self._queue(pids, owners)
            return _EMPTY_IDS
        at = np.flatnonzero(fresh)
        f_pids, f_owners = pids[at], owners[at]
        order = np.argsort(f_pids, kind="stable")
        f_pids, f_owners = f_pids[order], f_owners[order]
        starts = np.flatnonzero(np.concatenate(([True], f_pids[1:] != f_pids[:-1])))
        sizes = np.diff(np.append(starts, len(f_pids)))
        first_live = f_pids[starts]
        self.live[first_live] = True
        self.live_pairs += len(first_live)
        single = sizes == 1
        if single.any():
            heads = starts[single]
            self.one[f_pids[heads]] = f_owners[heads]
        if not single.all():
            shared = np.repeat(~single, sizes)
            self._queue(f_pids[shared], f_owners[shared])
        if len(at) < len(pids):
            self._queue(pids[~fresh], owners[~fresh])
        return first_live

    def _queue(self, pids: NDArray[np.int64], owners: NDArray[np.int64]) -> None:
        self._pending.append((pids, owners))
        self._pending_rows += len(pids)
        if self._pending_rows > PENDING_POSTINGS:
            self.fold()

    def fold(self) -> None:
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
        ones = self.one[firsts].tolist()
        self.one[firsts] = -1
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
                self.one[pid] = int(sids[lo])
            else:
                post[pid] = array("I", sids[lo:hi].tobytes())

    def drop(self, touched: NDArray[np.integer], alive: NDArray[np.bool_]) -> list[int]:
        """Take the series no longer `alive` out of the postings of the pairs
        `touched` (all the pairs they held); returns the pairs left without
        series, which are no longer live."""
        self.fold()
        post = self._post
        gone = []
        for pid in touched.tolist():
            ids = post[pid]
            if ids is not None:  # a single-series pair of a removed series just goes
                found = array_ids(ids)
                kept = found[alive[found]]
                if len(kept) == 1:
                    post[pid] = None
                    self.one[pid] = int(kept[0])
                    continue
                if len(kept):
                    post[pid] = array("I", kept.astype(np.uint32).tobytes())
                    continue
            post[pid] = None
            self.one[pid] = -1
            gone.append(pid)
        if gone:
            self.live[gone] = False
            self.live_pairs -= len(gone)
        return gone

    def union(self, pids: NDArray[np.int64]) -> NDArray[np.int64]:
        """Ids of series holding any of the live pairs `pids` (all of one name, so
        their postings are disjoint), sorted."""
        if not len(pids):
            return _EMPTY_IDS
        self.fold()
        lists = [ids for ids in map(self._post.__getitem__, pids.tolist()) if ids is not None]
        if len(lists) == len(pids) == 1:
            return array_ids(lists[0])
        merged = np.frombuffer(b"".join(lists), dtype=np.uint32).astype(np.int64)
        if len(lists) < len(pids):
            singles = self.one[pids]
            merged = np.concatenate([merged, singles[singles >= 0]])
        merged.sort()
        return merged

    def held_in(self, pids: NDArray[np.int64], wanted: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Per live pair of `pids`: whether any series holding it is `wanted` (a
        mask by series id)."""
        self.fold()
        one = self.one[pids]
        single = one >= 0
        hit = np.zeros(len(pids), dtype=bool)
        hit[single] = wanted[one[single]]
        post = self._post
        for k in np.flatnonzero(~single).tolist():
            ids = post[int(pids[k])]
            hit[k] = ids is not None and bool(wanted[array_ids(ids)].any())
        return hit

    def all_live(self, pids: NDArray[np.int64], offsets: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Per row of pair ids (`pids[offsets[k]:offsets[k+1]]`): whether live series
        hold each of its pairs."""
        live = np.zeros(len(pids), dtype=bool)
        known = pids < len(self.live)
        live[known] = self.live[pids[known]]
        dead = np.zeros(len(pids) + 1, dtype=np.int64)
        np.cumsum(~live, out=dead[1:])
        return dead[offsets[1:]] == dead[offsets[:-1]]

    def live_mask(self, limit: int) -> NDArray[np.bool_]:
        """Live flags of pair ids `0 .. limit-1` (a new array)."""
        live = np.zeros(limit, dtype=bool)
        live[: min(limit, len(self.live))] = self.live[:limit]
        return live

    # -- checks (tests) -------------------------------------------------------------

    def members(self) -> dict[int, list[int]]:
        """Without folding: each pair's series, posted (array or single owner) then
        queued. For invariant checks."""
        out: dict[int, list[int]] = {}
        for pid, ids in enumerate(self._post):
            if ids is not None:
                out[pid] = ids.tolist()
            elif self.one[pid] >= 0:
                out[pid] = [int(self.one[pid])]
        for p, o in self._pending:
            for pid, sid in zip(p.tolist(), o.tolist(), strict=True):
                out.setdefault(pid, []).append(sid)
        return out

    def check_invariants(self) -> None:
        """Raise AssertionError where the postings contradict themselves (tests)."""
        n = len(self._post)
        assert len(self.one) == len(self.live) >= n, "one/live columns shorter than postings"
        assert not self.live[n:].any(), f"pair ids >= {n} marked live"
        assert (self.one[n:] == -1).all(), f"pair ids >= {n} have a single owner"
        assert int(self.live.sum()) == self.live_pairs, "live_pairs disagrees with live flags"
        rows = sum(len(p) for p, _ in self._pending)
        assert rows == self._pending_rows, "pending row count disagrees with the queue"
        assert rows <= PENDING_POSTINGS, f"{rows} queued entries: past the fold limit"
        queued: dict[int, list[int]] = {}
        for p, o in self._pending:
            assert len(p) == len(o), "queued pair and series columns differ in length"
            for pid, sid in zip(p.tolist(), o.tolist(), strict=True):
                queued.setdefault(pid, []).append(sid)
        for pid in range(n):
            ids = self._post[pid]
            single = int(self.one[pid])
            waiting = queued.get(pid, [])
            where = f"pair {pid}"
            assert ids is None or single < 0, f"{where}: both an array and a single owner"
            held = ids is not None or single >= 0 or bool(waiting)
            assert held == bool(self.live[pid]), f"{where}: live flag {self.live[pid]}"
            if ids is not None:
                posted = ids.tolist()
                assert len(posted) >= 2, f"{where}: an array of {len(posted)} (use `one`)"
                assert posted == sorted(set(posted)), f"{where}: array not sorted and unique"
            else:
                posted = [single] if single >= 0 else []
            if waiting and posted:
                assert min(waiting) > posted[-1], f"{where}: queued ids not above posted"
            assert len(set(waiting)) == len(waiting), f"{where}: an id queued twice"
