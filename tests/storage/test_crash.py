"""Crash safety: SIGKILL a real process writing through Storage, reopen, check every commit.

The child (`crash_writer.py`) prints a round only after `commit()` returned.
After the kill, reopening the same data directory must return every sample of
every printed round, with the right value, and no sample twice. Rounds that
were appended but not yet acknowledged may or may not be there.
"""

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from storage.db import Storage
from storage.labels import Matcher, MatchType
from storage.options import StorageOptions
from tests.storage.crash_writer import SERIES, T0, WRITERS

REPO = Path(__file__).resolve().parents[2]


def run_and_kill(data_dir: Path, policy: str, commits: int, start: int) -> dict[int, set[int]]:
    """Start the writer, SIGKILL it after about `commits` commits; the rounds it acknowledged."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.storage.crash_writer", str(data_dir), policy, str(start)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env=env,
    )
    acked: dict[int, set[int]] = {w: set() for w in range(WRITERS)}
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first == b"ready\n", proc.stderr.read().decode() if proc.stderr else first
        seen = 0
        while seen < commits:
            line = proc.stdout.readline()
            assert line, (proc.stderr.read() if proc.stderr else b"").decode()
            w, r = map(int, line.split())
            acked[w].add(r)
            seen += 1
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for line in rest.decode().splitlines():  # printed before the kill landed
        if line.strip():
            w, r = map(int, line.split())
            acked[w].add(r)
    return acked


async def read_back(data_dir: Path) -> dict[tuple[int, str], tuple[list[int], list[float]]]:
    storage = await Storage.open(data_dir, StorageOptions())
    try:
        async with storage.querier(0, T0 + 10**9) as q:
            ss = await q.select([Matcher(MatchType.EQ, "__name__", "crash")], 0, T0 + 10**9)
    finally:
        await storage.close()
    out = {}
    for s in ss.series:
        assert s.labels.get("cluster") == "crash"
        w = int(s.labels.get("job")[1:])
        out[(w, s.labels.get("i"))] = (s.timestamps.tolist(), s.values.tolist())
    return out


def check(stored, acked: dict[int, set[int]]) -> None:
    for w in range(WRITERS):
        for i in range(SERIES):
            ts, values = stored.get((w, str(i)), ([], []))
            assert len(ts) == len(set(ts)), "a sample came back twice"
            rounds = [(t - T0) // 1000 for t in ts]
            assert values == [float(r) for r in rounds], "a value does not match its round"
            missing = acked[w] - set(rounds)
            assert not missing, f"writer {w} series {i}: acknowledged rounds lost: {missing}"
            assert np.all(np.diff(ts) > 0)


@pytest.mark.parametrize("policy", ["batch", "interval", "never"])
async def test_sigkill_loses_no_acknowledged_sample(tmp_path, policy):
    rng = random.Random(policy)
    acked = run_and_kill(tmp_path, policy, rng.randint(150, 400), start=0)
    assert all(acked.values())
    check(await read_back(tmp_path), acked)
    # Crash again after the restart (replay, then more writes), then check all.
    more = run_and_kill(tmp_path, policy, rng.randint(100, 300), start=1000)
    for w in range(WRITERS):
        acked[w] |= more[w]
    check(await read_back(tmp_path), acked)
