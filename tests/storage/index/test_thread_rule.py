"""The index is event-loop only (its reads fold postings and re-rank): every
method that reads postings, ranks or changes it refuses any other thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from storage.head.head import Head
from storage.head.querier import select
from storage.index import Index, WrongThread
from storage.labels import Labels, Matcher, MatchType
from storage.options import StorageOptions


def two_series() -> Index:
    index = Index()
    index.add_many([Labels.from_dict({"job": "a", "i": "1"}), Labels.from_dict({"job": "b"})])
    return index


CALLS: dict[str, Callable[[Index], object]] = {
    "select": lambda index: index.select([Matcher(MatchType.EQ, "job", "a")]),
    "label_values": lambda index: index.label_values("job", np.array([0, 1])),
    "label_names": lambda index: index.label_names(),
    "sort_by_labels": lambda index: index.sort_by_labels(np.array([0, 1])),
    "refresh_order": lambda index: index.refresh_order(),
    "add_many": lambda index: index.add_many([Labels.from_dict({"job": "c"})]),
    "remove": lambda index: index.remove([0]),
    "sweep_pairs": lambda index: index.sweep_pairs(),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_other_threads_are_refused_and_change_nothing(call):
    index = two_series()
    pairs = len(index.pairs)
    with ThreadPoolExecutor(1) as pool, pytest.raises(WrongThread, match="event-loop thread"):
        pool.submit(call, index).result()
    assert len(index) == 2
    assert len(index.pairs) == pairs
    index.check_invariants()
    call(index)  # its own thread may


async def test_a_head_select_in_a_worker_thread_is_refused():
    """What would happen if a query's select were offloaded with the evaluation."""
    head = Head(StorageOptions())
    head.create_many([Labels.from_dict({"__name__": "up"})], [""])
    matchers = [Matcher(MatchType.EQ, "__name__", "up")]
    with pytest.raises(WrongThread):
        await asyncio.to_thread(select, head, matchers, 0, 1000)
    assert len(select(head, matchers, 0, 1000)) == 0  # no samples; on the loop it runs
