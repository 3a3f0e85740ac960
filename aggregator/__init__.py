"""The service: config, CLI, the Prometheus HTTP API, federation and wiring.

`build_app` is loaded on first use (PEP 562 `__getattr__`): importing any
module of this package runs this file, and loading the app here would make
`aggregator --help` and `check-config` load aiohttp, storage and the PromQL
engine too (0.5 s instead of 0.15 s). `Config` and `load_config` likewise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aggregator.errors import ConfigError

if TYPE_CHECKING:
    from aggregator.app import build_app
    from aggregator.config import Config, load_config

__all__ = ["Config", "ConfigError", "build_app", "load_config"]


def __getattr__(name: str) -> Any:
    if name == "build_app":
        from aggregator.app import build_app

        return build_app
    # The config is loaded on first use too: the edge agent (`aggregator edge`) runs
    # without it, and it would bring in the object stores.
    if name in ("Config", "load_config"):
        from aggregator import config

        return getattr(config, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
