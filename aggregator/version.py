"""The package version, in a module of its own so the CLI can print it without
loading the server (aiohttp, storage, the PromQL engine)."""

from __future__ import annotations

import importlib.metadata

PACKAGE = "fleet-aggregator"


def version() -> str:
    """The installed package version ("0+unknown" when running from a bare checkout)."""
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
