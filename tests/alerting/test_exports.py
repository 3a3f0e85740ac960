"""The package's public surface is what `__all__` says, sorted, loaded on first use."""

from __future__ import annotations

import subprocess
import sys

import alerting
from tests.support.realparts import REPO


def test_public_surface() -> None:
    assert alerting.__all__ == sorted(alerting.__all__)
    for name in alerting.__all__:
        assert getattr(alerting, name).__module__.startswith("alerting.")


def test_the_settings_load_without_the_engine() -> None:
    """The config imports `alerting.settings`; that must not load the engine or aiohttp."""
    probe = (
        "import sys, alerting.settings; "
        "print([m for m in ('promql.engine', 'aiohttp', 'alerting.rules') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
