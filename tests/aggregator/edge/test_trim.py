"""Giving back start-up memory: only read-only file pages and freed heap, nothing in use."""

from __future__ import annotations

import subprocess
import sys

from aggregator.edge.trim import _readonly_file_mappings
from tests.support.realparts import REPO

MAPS = """\
55d0a0000000-55d0a0001000 r--p 00000000 08:01 123 /usr/bin/python3.11
55d0a0001000-55d0a0003000 r-xp 00001000 08:01 123 /usr/bin/python3.11
55d0a0003000-55d0a0004000 rw-p 00003000 08:01 123 /usr/bin/python3.11
55d0a1000000-55d0a2000000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000100000 rw-p 00000000 00:00 0
7f0000100000-7f0000300000 r-xp 00000000 08:01 456 /opt/lib/lib with space.so
7ffd00000000-7ffd00001000 r-xp 00000000 00:00 0 [vdso]
"""


def test_only_readonly_file_mappings_are_chosen() -> None:
    assert _readonly_file_mappings(MAPS) == [
        (0x55D0A0000000, 0x1000),
        (0x55D0A0001000, 0x2000),
        (0x7F0000100000, 0x200000),
    ]


PROBE = """
import mmap, sys
from pathlib import Path
import numpy as np
from aggregator.edge.trim import release_idle_memory
from aggregator.edge.scrape import parse_exposition

def rss_kb(path):
    lines = Path("/proc/self/smaps").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.endswith(path):
            return next(int(l.split()[1]) for l in lines[i:] if l.startswith("Rss:"))

# A file only this process maps, read like a library's pages: 8 MiB resident.
path = sys.argv[1]
Path(path).write_bytes(b"x" * (8 << 20))
with open(path, "rb") as f:
    data = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
sum(data[i] for i in range(0, len(data), 4096))
x = np.arange(100_000, dtype=np.float64)
touched = rss_kb(path)
release_idle_memory()
released = rss_kb(path)
# everything still works afterwards: pages come back on use
assert float(np.lexsort((x, x))[-1]) == 99_999
assert list(parse_exposition("a 2\\n", "text/plain")) == [("a", {}, 2.0, None)]
assert data[5 << 20] == ord("x")
print(touched, released)
"""


def test_release_pages_out_readonly_file_pages_and_the_process_keeps_working(
    tmp_path,
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "lib.bin")],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    touched, released = map(int, out.stdout.split())
    assert touched >= 8 << 10
    assert released < 1024, (touched, released)
