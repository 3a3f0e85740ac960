"""Label order: every series' rank among all series sorted by labels.

Query results come out sorted by labels (the `SeriesSet` contract), and a
Python sort of 10k label sets per query costs milliseconds. So the index
keeps the order of all series, and a select's series are put in order with
one numpy argsort of their ranks. The order is kept incrementally: series
created since the last refresh are unranked; a refresh sorts just those and
merges them in. Removed series stay in the order (their ranks still compare
right among the live ones) until the next refresh drops them.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import cast

import numpy as np
from numpy.typing import NDArray

from storage.labels import Labels


class LabelOrder:
    """The ranked series and their ranks; see the module docstring."""

    def __init__(self) -> None:
        self._order = np.zeros(0, dtype=np.int64)
        """Ranked ids in label order (removed ones until the next refresh)."""
        self._rank = np.zeros(0, dtype=np.int64)
        """`_rank[id]`: its position in `_order`, for ids below `ranked_upto`."""
        self.ranked_upto = 0
        """Ids from this one on are unranked."""

    def refresh(self, labels: list[Labels | None], alive: NDArray[np.bool_]) -> None:
        """Fold the series created since the last refresh into the order
        (`labels` and `alive` by id, over all ids handed out).

        Sorts only the new series, then binary-searches their places in the
        old order (few new series) or merges the two sorted runs (many).
        """
        upto = len(labels)
        if upto == self.ranked_upto:
            return
        key = labels.__getitem__
        old = self._order[alive[self._order]]
        new = np.arange(self.ranked_upto, upto, dtype=np.int64)
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
        self.ranked_upto = upto

    def sort(
        self, sids: NDArray[np.int64], labels: list[Labels | None], alive: NDArray[np.bool_]
    ) -> NDArray[np.int64]:
        """Live `sids` reordered so that their label sets ascend.

        Uses the order (a numpy argsort of ranks); when some ids are newer than
        it, either refreshes it (if that is cheap relative to the request) or
        sorts the labels of just these series.
        """
        if len(sids) < 2:
            return sids
        if int(sids.max()) >= self.ranked_upto:
            if len(self._order) + len(labels) - self.ranked_upto <= 8 * len(sids):
                self.refresh(labels, alive)
            else:
                chosen = cast(list[Labels], list(map(labels.__getitem__, sids.tolist())))
                order = sorted(range(len(chosen)), key=chosen.__getitem__)
                return sids[order]
        return sids[np.argsort(self._rank[sids], kind="stable")]

    def check_invariants(self, labels: list[Labels | None], alive: NDArray[np.bool_]) -> None:
        """Raise AssertionError where the order contradicts the series (tests)."""
        upto = self.ranked_upto
        order = self._order.tolist()
        assert upto <= len(labels), "ranked past the ids handed out"
        assert len(self._rank) == upto, "ranks do not cover exactly the ranked ids"
        assert len(set(order)) == len(order), "an id ranked twice"
        assert all(0 <= sid < upto for sid in order), "an unranked id in the order"
        assert all(self._rank[sid] == pos for pos, sid in enumerate(order)), "rank != position"
        live_ranked = {sid for sid in range(upto) if alive[sid]}
        assert live_ranked <= set(order), "a live ranked id missing from the order"
        live_order = [lbl for sid in order if alive[sid] and (lbl := labels[sid]) is not None]
        assert len(live_order) == len(live_ranked), "a live id without labels"
        assert all(map(tuple.__lt__, live_order, live_order[1:])), "live series out of label order"
