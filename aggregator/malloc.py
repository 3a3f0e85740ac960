"""Process-wide allocator tuning for the service: keep freed memory for reuse.

A query allocates and frees arrays and buffers of megabytes (a `[series x
steps]` matrix, a 5 MB JSON body). glibc serves blocks above its mmap
threshold (128 KiB at start, adapting upwards) with fresh `mmap`s and returns
freed heap tops to the kernel above its trim threshold, so the next query
touches new pages again, and a page fault is far from free: on the VMs this
runs on, first-touching fresh memory costs about 1.5 ms per MiB, more than
numpy needs to fill it. Raising both thresholds keeps freed blocks in the
heap, faulted in and reused, as Go's runtime keeps its heap; the price is
that up to `trim_bytes` of freed memory stays resident. One arena for all
threads: evaluations offloaded to worker threads then reuse the same warm
heap instead of growing per-thread heaps of their own (they allocate a few
large arrays, so lock contention is no concern).

Only glibc has `mallopt`; elsewhere this does nothing, as on interpreters the
tuning was not measured on (`aggregator.gctune.MEASURED_ON`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

from aggregator.gctune import measured_here

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

MMAP_THRESHOLD_BYTES = 256 << 20
"""Blocks from this size on still get their own mapping (returned at once when freed)."""
TRIM_THRESHOLD_BYTES = 256 << 20
"""Freed memory at the heap's top beyond this goes back to the kernel."""


def keep_freed_memory(
    mmap_bytes: int = MMAP_THRESHOLD_BYTES, trim_bytes: int = TRIM_THRESHOLD_BYTES
) -> bool:
    """Serve blocks below `mmap_bytes` from one shared heap; keep up to `trim_bytes` freed.

    Returns whether the allocator took the settings (False off glibc, and
    where the tuning is skipped).
    """
    if not measured_here("allocator tuning"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = (
        bool(mallopt(M_MMAP_THRESHOLD, mmap_bytes))
        and bool(mallopt(M_TRIM_THRESHOLD, trim_bytes))
        and bool(mallopt(M_ARENA_MAX, 1))
    )
    if not ok:
        log.warning("allocator tuning refused", extra={"mmap_bytes": mmap_bytes})
    return ok
