"""Allocator tuning, tested for what it relies on, each case in its own process
(`mallopt` changes process-wide state): with the settings, glibc serves large
blocks from its heap and keeps them once freed, for the next query or another
thread to reuse; without them, it maps and unmaps them each time."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from aggregator import gctune
from aggregator.malloc import keep_freed_memory

ROOT = Path(__file__).resolve().parents[2]
MIB = 1 << 20

PROBE = """
import ctypes, json, sys, threading
import numpy as np
from aggregator.malloc import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd",
        "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
tuned = keep_freed_memory() if sys.argv[1] == "tuned" else False
block = np.ones(64 << 17)  # 64 MiB, as a query's [series x steps] matrix
during = libc.mallinfo2()
del block
after = libc.mallinfo2()

def worker():
    global in_thread
    other = np.ones(32 << 17)  # 32 MiB in another thread, as an offloaded evaluation
    in_thread = libc.mallinfo2()
    del other

in_thread = None
thread = threading.Thread(target=worker)
thread.start()
thread.join()
print(json.dumps({
    "tuned": tuned,
    "mapped_during": during.hblkhd,
    "free_kept_after": after.fordblks,
    "heap_after": after.arena,
    "heap_in_thread": in_thread.arena,
    "mapped_in_thread": in_thread.hblkhd,
}))
"""


def probe(mode: str) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
measured_only = pytest.mark.skipif(
    (sys.implementation.name, *sys.version_info[:2]) not in gctune.MEASURED_ON,
    reason="the tuning is skipped on interpreters it was not measured on",
)


@glibc_only
@measured_only
def test_tuned_allocator_keeps_freed_blocks_for_reuse_across_threads():
    got = probe("tuned")
    assert got["tuned"] is True
    assert got["mapped_during"] < 64 * MIB  # from the heap, not a fresh mapping
    assert got["free_kept_after"] >= 64 * MIB  # freed, but kept faulted in
    # The worker thread took its 32 MiB from the same, warm heap.
    assert got["mapped_in_thread"] < 32 * MIB
    assert got["heap_in_thread"] == got["heap_after"]


@glibc_only
def test_untuned_allocator_maps_and_returns_large_blocks():
    """The default this tuning changes (so the test above is not vacuous)."""
    got = probe("default")
    assert got["mapped_during"] >= 64 * MIB
    assert got["free_kept_after"] < 64 * MIB


def test_allocator_tuning_is_skipped_on_other_interpreters(monkeypatch, caplog):
    monkeypatch.setattr(gctune, "MEASURED_ON", frozenset())
    with caplog.at_level("INFO", logger="aggregator.gctune"):
        assert keep_freed_memory() is False
    assert [r.tuning for r in caplog.records] == ["allocator tuning"]
