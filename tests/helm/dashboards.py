"""The chart's dashboards as data: every panel target and variable query, with the
Grafana variables a test substitutes before running them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARDS = Path(__file__).resolve().parents[2] / "helm" / "aggregator" / "dashboards"
BUILTINS = {"__rate_interval": "2m", "__interval": "15s", "__range": "10m"}
"""Grafana's own variables, as Grafana would fill them for a 10-minute view at 15 s."""
_VAR = re.compile(r"\$\{?(\w+)\}?")


@dataclass(frozen=True)
class Target:
    dashboard: str
    panel: str
    ref: str
    expr: str

    @property
    def id(self) -> str:
        return f"{self.dashboard}:{self.panel}:{self.ref}"


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' collapsed children included; rows themselves left out."""
    for p in board["panels"]:
        if p["type"] == "row":
            yield from p.get("panels", [])
        else:
            yield p


def targets() -> list[Target]:
    out = []
    for path in files():
        board = load(path)
        for p in panels(board):
            for t in p["targets"]:
                out.append(Target(path.stem, p["title"], t["refId"], t["expr"]))
    return out


def variables(board: dict[str, Any]) -> list[dict[str, Any]]:
    return list(board.get("templating", {}).get("list", []))


def used_variables(expr: str) -> set[str]:
    return set(_VAR.findall(expr))


def substitute(expr: str, values: dict[str, str]) -> str:
    """The expression with `$var` / `${var}` replaced (builtins included)."""
    merged = {**BUILTINS, **values}

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in merged:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return merged[name]

    return _VAR.sub(one, expr)


def label_values_query(query: str) -> tuple[str, str | None]:
    """Grafana's `label_values(selector, label)` (or `label_values(label)`) as its parts."""
    m = re.fullmatch(r"\s*label_values\(\s*(?:(.+?)\s*,\s*)?(\w+)\s*\)\s*", query)
    if not m:
        raise ValueError(f"not a label_values() query: {query!r}")
    return m.group(2), m.group(1)
