"""`bench.soak` in its short CI shape against the service: the soak's own checks hold.

The full soak (20 clusters x 5k series for 10 minutes, side by side with
Prometheus 2.42) is a benchmark run by hand (`python -m bench.soak`); this runs
the same code for a few seconds so it cannot rot, and checks what must hold at
any length: every acknowledged sample stored, no error of any kind.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.soak import Shape, soak, start_service

pytestmark = pytest.mark.integration


def test_short_soak_loses_nothing_and_errs_nowhere(tmp_path: Path) -> None:
    proc, base = start_service(tmp_path)
    try:
        out = asyncio.run(soak(base, proc, Shape(clusters=4, series=500, duration_s=12.0)))
    finally:
        proc.stop()
    assert out.writes >= 4
    assert out.queries >= 6
    assert out.acked_samples > 0
    assert out.stored_samples == out.acked_samples
    assert out.errors == {}
