"""The package's public surface is what `__all__` says, sorted."""

from __future__ import annotations

import aggregator


def test_public_surface() -> None:
    assert aggregator.__all__ == sorted(aggregator.__all__)
    assert aggregator.__all__ == ["Config", "ConfigError", "build_app", "load_config"]
    for name in aggregator.__all__:
        assert getattr(aggregator, name).__module__.startswith("aggregator.")
