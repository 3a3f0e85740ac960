"""The serving process's collector settings."""

import gc

import pytest

from aggregator.gctune import GEN0_THRESHOLD, freeze_after_replay, tune_collector


@pytest.fixture
def restore_gc():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restore_gc")
def test_young_collections_are_rarer():
    tune_collector()
    assert gc.get_threshold()[0] == GEN0_THRESHOLD


@pytest.mark.usefixtures("restore_gc")
def test_freeze_exempts_what_is_alive():
    kept = [(i, str(i)) for i in range(1000)]
    frozen = freeze_after_replay()
    assert frozen == gc.get_freeze_count()
    assert frozen >= len(kept)
