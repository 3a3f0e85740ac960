"""MergeQuerier: which sources are asked, what a failing one becomes, label order."""

from __future__ import annotations

import numpy as np
import pytest

from storage.annotations import Annotations
from storage.errors import StorageUnavailable
from storage.interfaces import LabelResult, Series, SeriesSet
from storage.labels import Labels, Matcher, MatchType
from storage.merge import MergeQuerier, merge_series_sets


class Source:
    """A Querier over fixed series that belongs to one cluster, or fails."""

    def __init__(self, cluster: str, series: list[Series] | None = None, fail: str = "") -> None:
        self.partition_labels = Labels.from_dict({"cluster": cluster})
        self.name = f'cluster "{cluster}"'
        self.series = series or []
        self.fail = fail
        self.asked = 0

    async def select(self, matchers, start_ms, end_ms, *, hints=None):
        self.asked += 1
        if self.fail:
            raise StorageUnavailable(f"{self.name}: {self.fail}")
        return SeriesSet.from_series(self.series)

    async def label_names(self, matchers=(), *, limit=None):
        return LabelResult(["cluster"])

    async def label_values(self, name, matchers=(), *, limit=None):
        if self.fail:
            raise StorageUnavailable(f"{self.name}: {self.fail}")
        return LabelResult([self.partition_labels.get("cluster")])


def series(cluster: str, ts: list[int], v: float = 1.0) -> Series:
    lbl = Labels.from_dict({"__name__": "up", "cluster": cluster})
    return Series(lbl, np.asarray(ts, dtype=np.int64), np.full(len(ts), v))


async def test_cluster_matchers_decide_which_sources_are_asked():
    a, b = Source("a", [series("a", [1])]), Source("b", [series("b", [1])])
    q = MergeQuerier([], [a, b])
    got = await q.select([Matcher(MatchType.RE, "cluster", "a|c")], 0, 10)
    assert [lbl.get("cluster") for lbl in got.labels] == ["a"]
    assert (a.asked, b.asked) == (1, 0)
    await q.select([Matcher(MatchType.NEQ, "cluster", "a")], 0, 10)
    assert (a.asked, b.asked) == (1, 1)


async def test_failing_secondary_is_a_warning_or_an_error():
    ok, bad = Source("a", [series("a", [1])]), Source("b", fail="connection refused")
    got = await MergeQuerier([], [ok, bad]).select([], 0, 10)
    assert len(got) == 1
    assert got.warnings.warning_list() == [
        'partial response: cluster "b" left out of the answer: cluster "b": connection refused'
    ]
    with pytest.raises(StorageUnavailable, match='cluster "b": connection refused'):
        await MergeQuerier([], [ok, bad], partial_response=False).select([], 0, 10)
    values = await MergeQuerier([], [ok, bad]).label_values("cluster")
    assert values.values == ["a"]
    assert values.warnings


async def test_failing_primary_fails_the_select():
    with pytest.raises(StorageUnavailable):
        await MergeQuerier([Source("head", fail="down")], []).select([], 0, 10)


def test_equal_series_from_two_sources_merge_by_time_first_source_wins():
    first = SeriesSet.from_series([series("a", [1, 3, 5], 1.0), series("c", [1])])
    second = SeriesSet.from_series([series("a", [2, 3, 6], 2.0), series("b", [9])])
    second.warnings = Annotations.of_warnings(["w"])
    out = merge_series_sets([first, second])
    assert [lbl.get("cluster") for lbl in out.labels] == ["a", "b", "c"]
    assert out.offsets.tolist() == [0, 5, 6, 7]
    assert out.timestamps[:5].tolist() == [1, 2, 3, 5, 6]
    assert out.values[:5].tolist() == [1.0, 2.0, 1.0, 1.0, 2.0]
    assert out.warnings.warning_list() == ["w"]
