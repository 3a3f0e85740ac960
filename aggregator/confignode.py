"""The YAML tree of a config file, read key by key: every key must be consumed,
every value is checked for its kind, and errors name the file, the key path
and the reason (the shape of Prometheus's own config errors)."""

from __future__ import annotations

import re
from typing import Any

import yaml

from aggregator.errors import ConfigError
from aggregator.units import parse_bytes, parse_duration_ms

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

REQUIRED: Any = object()
MISSING: Any = object()


class ConfigNode:
    """One mapping of the YAML tree being read; every key must be consumed."""

    def __init__(self, file: str, path: str, value: Any) -> None:
        self.file = file
        self.path = path
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(
                file, path or "(top level)", f"must be a mapping, got {kind_of(value)}"
            )
        for key in value:
            if not isinstance(key, str):
                raise ConfigError(file, path, f"keys must be strings, got {key!r}")
        self.mapping: dict[str, Any] = value
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, reason: str) -> ConfigError:
        return ConfigError(self.file, self.key(name), reason)

    def pop(self, name: str, default: Any) -> Any:
        self._seen.add(name)
        if name in self.mapping and self.mapping[name] is not None:
            return self.mapping[name]
        if default is REQUIRED:
            raise self.error(name, "is required")
        return default

    def section(self, name: str) -> ConfigNode:
        return ConfigNode(self.file, self.key(name), self.pop(name, {}))

    def string(self, name: str, default: str | None) -> str:
        value = self.pop(name, REQUIRED if default is None else default)
        if not isinstance(value, str):
            raise self.error(name, f"must be a string, got {kind_of(value)}")
        return value

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        value = self.pop(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"must be an integer, got {kind_of(value)}")
        if value < minimum:
            raise self.error(name, f"must be at least {minimum}, got {value}")
        return value

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        value = self.pop(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(name, f"must be a number, got {kind_of(value)}")
        if value < minimum:
            raise self.error(name, f"must be at least {minimum:g}, got {value}")
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.pop(name, default)
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, got {kind_of(value)}")
        return value

    def duration(self, name: str, default_ms: int, *, minimum: int = 0) -> int:
        value = self.pop(name, MISSING)
        if value is MISSING:
            return default_ms
        if value == 0 and not isinstance(value, bool):
            value = "0"  # the one unitless duration Prometheus accepts
        if isinstance(value, bool) or not isinstance(value, str):
            hint = " (durations need a unit, e.g. 30s, 5m, 24h)" if isinstance(value, int) else ""
            raise self.error(name, f"must be a duration string, got {kind_of(value)}{hint}")
        try:
            ms = parse_duration_ms(value)
        except ValueError as exc:
            raise self.error(name, f"{exc} (e.g. 30s, 5m, 24h, 1d)") from None
        if ms < minimum:
            raise self.error(name, f"must be greater than zero, got {value!r}")
        return ms

    def label_names(self, name: str) -> tuple[str, ...]:
        """A list of label names (empty if absent)."""
        value = self.pop(name, [])
        if not isinstance(value, list):
            raise self.error(name, f"must be a list of label names, got {kind_of(value)}")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not LABEL_NAME.fullmatch(item):
                raise self.error(f"{name}[{i}]", f"invalid label name {item!r}")
        return tuple(value)

    def size(self, name: str, default: int, *, minimum: int = 0) -> int:
        value = self.pop(name, MISSING)
        if value is MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise self.error(name, f"must be a size (e.g. 32MiB or bytes), got {kind_of(value)}")
        try:
            size = value if isinstance(value, int) else parse_bytes(value)
        except ValueError as exc:
            raise self.error(name, str(exc)) from None
        if size < minimum:
            raise self.error(name, f"must be at least {minimum} bytes, got {value!r}")
        return size

    def finish(self) -> None:
        """Refuse keys nobody read: a typo must not silently fall back to a default."""
        unknown = [k for k in self.mapping if k not in self._seen]
        if unknown:
            allowed = ", ".join(sorted(self._seen))
            raise self.error(unknown[0], f"unknown key (allowed here: {allowed})")


def kind_of(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class DuplicateKey(yaml.YAMLError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (Prometheus's YAML parsing does too)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                mark = key_node.start_mark
                raise DuplicateKey(f"{key} (line {mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)
