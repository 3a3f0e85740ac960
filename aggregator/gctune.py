"""Cyclic garbage collector settings for a service that holds millions of objects.

The head keeps a `Labels` tuple per series (tuple subclasses stay tracked by
the cycle collector for life) and creates several more container objects per
new series while a request is applied. With CPython's default thresholds
(a young collection every 700 net allocations) creating series spends 1-2 µs
each in the collector, and every full collection walks every series ever
created. None of these objects form cycles: reference counting frees them.

Two settings, applied by the CLI for the serving process only:

- `tune_collector`: collect the young generation every `GEN0_THRESHOLD` net
  allocations instead of 700 (measured with `bench/storage_head.py`-style
  creation of 100k series: 1.5 -> 0.2 µs per series in the collector).
  Garbage cycles (exceptions with tracebacks, closed-over frames) live a
  little longer; the memory they hold is small next to the head.
- `freeze_after_replay`: once the WAL is replayed, one full collection, then
  `gc.freeze()` moves everything alive (the replayed index above all) out of
  the collector's sight, so later full collections walk only what was made
  since. Frozen objects are still freed by reference counting; only a cycle
  among them that becomes garbage later would never be collected, and the
  index holds none.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)

GEN0_THRESHOLD = 50_000
GEN1_THRESHOLD = 10
GEN2_THRESHOLD = 10


def tune_collector() -> None:
    """Collect the young generation less often (see the module docstring)."""
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)


def freeze_after_replay() -> int:
    """Collect once, then exempt every live object from later collections;
    returns the number of objects frozen."""
    started = time.monotonic()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info(
        "collector: objects after replay frozen",
        extra={"objects": frozen, "duration_s": round(time.monotonic() - started, 3)},
    )
    return frozen
