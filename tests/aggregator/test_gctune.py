"""The serving process's collector settings, and what they rely on."""

import gc
import logging
import sys
import weakref

import pytest

from aggregator import gctune
from aggregator.gctune import GEN0_THRESHOLD, freeze_after_replay, tune_collector
from remote_write.batch import WriteBatch
from remote_write.codec import decode_write_request, encode_write_request
from storage.head.appender import apply_batch
from storage.head.head import Head
from storage.head.querier import select
from storage.labels import Matcher, MatchType
from storage.options import StorageOptions

NOW = 1_700_000_000_000
RUNTIME = (sys.implementation.name, *sys.version_info[:2])


@pytest.fixture
def restore_gc():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.fixture
def measured_elsewhere(monkeypatch):
    """An interpreter the tuning was not measured on."""
    monkeypatch.setattr(gctune, "MEASURED_ON", frozenset({("cpython", 2, 7)}))


@pytest.mark.skipif(RUNTIME not in gctune.MEASURED_ON, reason="the tuning is skipped here")
@pytest.mark.usefixtures("restore_gc")
def test_young_collections_are_rarer():
    assert tune_collector() is True
    assert gc.get_threshold()[0] == GEN0_THRESHOLD


@pytest.mark.skipif(RUNTIME not in gctune.MEASURED_ON, reason="the tuning is skipped here")
@pytest.mark.usefixtures("restore_gc")
def test_freeze_exempts_what_is_alive():
    kept = [(i, str(i)) for i in range(1000)]
    frozen = freeze_after_replay()
    assert frozen == gc.get_freeze_count()
    assert frozen >= len(kept)


@pytest.mark.usefixtures("restore_gc", "measured_elsewhere")
def test_tuning_is_skipped_with_a_log_line_on_other_interpreters(caplog):
    before = gc.get_threshold()
    with caplog.at_level(logging.INFO, logger="aggregator.gctune"):
        assert tune_collector() is False
        assert freeze_after_replay() == 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    skipped = [r for r in caplog.records if r.getMessage().startswith("process tuning skipped")]
    assert [r.tuning for r in skipped] == ["collector tuning", "collector freeze"]
    assert skipped[0].python == f"{RUNTIME[0]} {RUNTIME[1]}.{RUNTIME[2]}"


def wire_batch(first: int, n: int, ts: int) -> WriteBatch:
    """n series of 8 labels, decoded from the wire like a live request."""
    series = [
        (
            (
                ("__name__", f"metric_{i % 7}"),
                ("cluster", "eu"),
                ("instance", f"10.0.{i >> 8 & 255}.{i & 255}:9100"),
                ("job", "node"),
                ("mode", f"mode{i % 8}"),
                ("namespace", f"ns-{i % 50}"),
                ("pod", f"pod-{i}"),
                ("zone", f"zone-{i % 3}"),
            ),
            [ts],
            [float(i)],
        )
        for i in range(first, first + n)
    ]
    return decode_write_request(encode_write_request(WriteBatch.from_series(series))).batch


def build_and_use_a_head() -> weakref.ref:
    """Some thousands of series through the appender, known ones again, reads,
    retention removing half; returns a weak reference to the head's index."""
    head = Head(StorageOptions(retention_ms=3_600_000, max_series_per_cluster=4_500))
    for k in range(3):
        result = apply_batch(head, wire_batch(k * 2000, 2000, NOW - 7_200_000), "eu", now_ms=NOW)
        assert result.result.accepted == 2000 - (k == 2) * 1500
    apply_batch(head, wire_batch(0, 2000, NOW), "eu", now_ms=NOW)  # known series, newer samples
    ss = select(head, [Matcher(MatchType.RE, "pod", "pod-1.*")], 0, NOW)
    assert len(ss) > 0
    assert head.index.label_values("zone") == ["zone-0", "zone-1", "zone-2"]
    head.seal()
    assert head.apply_retention() == 2500  # the series without newer samples go
    return weakref.ref(head.index)


def test_a_dropped_head_leaves_no_garbage_cycles():
    """The premise of `freeze_after_replay`: the head's objects never form cycles,
    so reference counting alone frees them, frozen or not."""
    gc.collect()
    gc.disable()
    try:
        index = build_and_use_a_head()
        assert index() is None, "the index outlived its head: something holds it in a cycle"
        gc.set_debug(gc.DEBUG_SAVEALL)
        found = gc.collect()
        kinds = sorted({type(o).__name__ for o in gc.garbage})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert found == 0, f"{found} objects in garbage cycles, of types {kinds[:12]}"
