"""Fixtures for the alerting tests: the real promtool (Debian's Prometheus 2.42)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Promtool = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def promtool() -> Promtool:
    """Run `promtool ARGS...` (in `cwd`); its output is stdout and stderr together."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed: run scripts/system-deps (or scripts/test)")

    def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [binary, *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
            check=False,
        )

    return run
