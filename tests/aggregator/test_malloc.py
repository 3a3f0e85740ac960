"""Allocator tuning: glibc takes the settings; elsewhere it is a no-op."""

from __future__ import annotations

import platform

import pytest

from aggregator.malloc import keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_the_thresholds() -> None:
    assert keep_freed_memory() is True
