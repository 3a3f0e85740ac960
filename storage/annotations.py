"""Annotations: de-duplicated warnings and infos that travel with results.

Problems that let a query go on (a member cluster down, a non-counter passed to
rate) are data, not exceptions: they ride along with the result and end up in
the JSON `warnings` / `infos` fields, as in Prometheus's `annotations` package.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


@dataclass(slots=True)
class Annotations:
    """An ordered set of warning and info messages."""

    warnings: dict[str, None] = field(default_factory=dict)
    infos: dict[str, None] = field(default_factory=dict)

    def warn(self, message: str) -> None:
        self.warnings[message] = None

    def info(self, message: str) -> None:
        self.infos[message] = None

    def merge(self, other: Annotations) -> Annotations:
        """Add everything from `other` to this set; returns self for chaining."""
        self.warnings.update(other.warnings)
        self.infos.update(other.infos)
        return self

    def warning_list(self) -> list[str]:
        return list(self.warnings)

    def info_list(self) -> list[str]:
        return list(self.infos)

    def __bool__(self) -> bool:
        return bool(self.warnings or self.infos)

    def __iter__(self) -> Iterator[str]:
        yield from self.warnings
        yield from self.infos

    @classmethod
    def of_warnings(cls, messages: Iterable[str]) -> Annotations:
        return cls(warnings=dict.fromkeys(messages))
