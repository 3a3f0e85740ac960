"""Cyclic garbage collector settings for a service that holds millions of objects.

The head keeps a `Labels` tuple per series (tuple subclasses stay tracked by
the cycle collector for life) and creates several more container objects per
new series while a request is applied. With CPython's default thresholds
(a young collection every 700 net allocations) creating series spends 1-2 µs
each in the collector, and every full collection walks every series ever
created. None of these objects form cycles: reference counting frees them.

Two settings, applied by the CLI for the serving process only, and only on
the interpreters they were measured on (`MEASURED_ON`: the collector changes
between CPython versions, 3.14's collects the old generation incrementally);
elsewhere they are skipped with a log line:

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
  head holds none (`tests/aggregator/test_gctune.py` builds a head, drops it
  and checks that the collector finds nothing).
"""

from __future__ import annotations

import gc
import logging
import sys
import time

log = logging.getLogger(__name__)

GEN0_THRESHOLD = 50_000
GEN1_THRESHOLD = 10
GEN2_THRESHOLD = 10

MEASURED_ON = frozenset({("cpython", 3, 11), ("cpython", 3, 12)})
"""Interpreters (implementation, major, minor) the process tuning was measured on."""


def measured_here(tuning: str) -> bool:
    """Whether this interpreter is one the process tuning was measured on; if not,
    logs that `tuning` is skipped."""
    runtime = (sys.implementation.name, *sys.version_info[:2])
    if runtime in MEASURED_ON:
        return True
    log.info(
        "process tuning skipped: not measured on this interpreter",
        extra={
            "tuning": tuning,
            "python": f"{runtime[0]} {runtime[1]}.{runtime[2]}",
            "measured_on": "cpython 3.11, 3.12",
        },
    )
    return False


def tune_collector() -> bool:
    """Collect the young generation less often (see the module docstring);
    returns whether it did."""
    if not measured_here("collector tuning"):
        return False
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
    return True


def freeze_after_replay() -> int:
    """Collect once, then exempt every live object from later collections;
    returns the number of objects frozen (0 where the tuning is skipped)."""
    if not measured_here("collector freeze"):
        return 0
    started = time.monotonic()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info(
        "collector: objects after replay frozen",
        extra={"objects": frozen, "duration_s": round(time.monotonic() - started, 3)},
    )
    return frozen
