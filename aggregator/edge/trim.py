"""Give back what only the agent's start-up needed: freed heap, and library pages touched
once.

After start-up the agent's resident memory is mostly what loading took, not
what running takes: imports leave freed blocks in the C heap, and every shared
library it loaded (numpy, OpenBLAS, the PromQL parser, snappy, libpython...)
has its relocation and initialisation code resident, together with the pages
the kernel mapped around each first touch (fault-around, 64 KiB). A scrape, a
rule evaluation and a remote write then touch a fraction of those pages.

So, once the first scrapes and evaluations have run, and then now and then:

- a full collection and `malloc_trim(0)` (glibc) return the freed heap;
- `madvise(MADV_PAGEOUT)` (Linux 5.4+) on the read-only file mappings (code
  and constant data of the libraries and extension modules) unmaps the pages
  only this process maps. Nothing is lost: they are clean copies of the files,
  and a page needed again is mapped back from the page cache (or read again)
  on its next touch -- what the kernel does by itself under memory pressure,
  done before it comes. Pages other processes also map are left alone by the
  kernel, and writable or anonymous memory is never touched.

bench/edge.py measures the effect: the agent's RSS at its end is its working
set, not its start-up.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)

MADV_PAGEOUT = 21
FIRST_AFTER_S = 60.0
"""After the first scrapes (15 s interval) and the first evaluation of minute groups."""
EVERY_S = 600.0


def _rss_kb() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - no dynamic loader
        return None


def _readonly_file_mappings(maps: str) -> list[tuple[int, int]]:
    """(start, length) of the file-backed mappings that are not writable, from /proc maps."""
    out = []
    for line in maps.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) < 6 or not parts[5].startswith("/") or "w" in parts[1]:
            continue
        start, end = (int(x, 16) for x in parts[0].split("-"))
        out.append((start, end - start))
    return out


def release_idle_memory() -> tuple[int, int]:
    """Collect, trim the C heap, page out read-only library pages; (RSS KiB before, after)."""
    before = _rss_kb()
    gc.collect()
    libc = _libc()
    if libc is None:
        return before, _rss_kb()
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:  # glibc only
        trim.argtypes = [ctypes.c_size_t]
        trim(0)
    madvise = libc.madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    try:
        mappings = _readonly_file_mappings(Path("/proc/self/maps").read_text())
    except OSError:
        mappings = []
    for start, length in mappings:
        if madvise(start, length, MADV_PAGEOUT) != 0 and ctypes.get_errno() == 22:
            break  # EINVAL: a kernel before 5.4 knows no MADV_PAGEOUT
    return before, _rss_kb()


async def trim_loop(first_after_s: float = FIRST_AFTER_S, every_s: float = EVERY_S) -> None:
    """`release_idle_memory` once start-up is over, then every `every_s`."""
    import asyncio

    await asyncio.sleep(first_after_s)
    while True:
        before, after = release_idle_memory()
        log.info("released idle memory", extra={"rss_kb_before": before, "rss_kb_after": after})
        await asyncio.sleep(every_s)
