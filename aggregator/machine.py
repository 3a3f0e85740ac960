"""What the machine gives this process: CPUs and memory, container limits included.

Read once when the config is built, for the defaults of `query.max_concurrency`
and `query.max_memory`. cgroup v2 limits (a Kubernetes container's) win over
the machine's own figures.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def available_cpus() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        quota, period = (CGROUP / "cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def available_memory() -> int:
    """Bytes this process may use: the cgroup v2 memory limit, else the machine's memory."""
    try:
        limit = (CGROUP / "memory.max").read_text().strip()
        if limit != "max":
            return int(limit)
    except (OSError, ValueError):
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 4 << 30


def default_max_concurrency() -> int:
    """Prometheus's 20, lower on small machines: one read per CPU.

    Measured with `bench.storm` (20 heavy range queries over 50k series, 2 CPUs):
    with 2 reads at once `/-/ready` p99 was 69 ms and writes p99 155 ms; with 4,
    4.7 s and 6.8 s, and the storm took longer. Evaluation threads beyond the
    CPUs only fight the event loop for the interpreter lock and the cores.
    """
    return min(20, available_cpus())


def default_max_memory() -> int:
    """Four fifths of the memory available (a container's limit when there is one)."""
    return available_memory() * 4 // 5
