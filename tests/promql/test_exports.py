"""The package's public surface is explicit and importable."""

from __future__ import annotations

import promql


def test_all_is_sorted_and_importable() -> None:
    assert promql.__all__ == sorted(promql.__all__)
    for name in promql.__all__:
        assert getattr(promql, name) is not None
