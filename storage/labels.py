"""Label sets and label matchers: the data model every other layer speaks.

`Labels` is an immutable, sorted, hashable set of (name, value) pairs. It is a
tuple subclass so hashing, equality and ordering run in C; treat the layout as
opaque and use the methods, so it can change later.

`Matcher` follows Prometheus: a missing label matches as the empty string, and
regex matchers are RE2, fully anchored, with `.` matching newlines (Prometheus
3.x). RE2 runs in linear time, so a hostile pattern cannot stall the service.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import re2

METRIC_NAME = "__name__"
CLUSTER_LABEL = "cluster"

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.dot_nl = True


class Labels(tuple[tuple[str, str], ...]):
    """An immutable label set sorted by name; equal sets compare and hash equal."""

    __slots__ = ()

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Labels:
        """Build from pairs in any order; a later duplicate name wins, empty values drop.

        Prometheus treats an empty label value as an absent label, so it is
        removed here once instead of everywhere downstream.
        """
        merged = {name: value for name, value in pairs}
        return tuple.__new__(cls, sorted((n, v) for n, v in merged.items() if v != ""))

    @classmethod
    def from_dict(cls, mapping: Mapping[str, str]) -> Labels:
        return cls.from_pairs(mapping.items())

    @classmethod
    def from_sorted(cls, pairs: Iterable[tuple[str, str]]) -> Labels:
        """Wrap pairs already sorted by name with unique, non-empty values (no checks)."""
        return tuple.__new__(cls, pairs)

    def get(self, name: str, default: str = "") -> str:
        """The value of `name`, or `default` (Prometheus: absent reads as "")."""
        for n, v in self:
            if n == name:
                return v
        return default

    def has(self, name: str) -> bool:
        return any(n == name for n, _ in self)

    @property
    def metric_name(self) -> str:
        return self.get(METRIC_NAME)

    def names(self) -> list[str]:
        return [n for n, _ in self]

    def without(self, *names: str) -> Labels:
        """This set minus the named labels."""
        drop = set(names)
        return tuple.__new__(Labels, [p for p in self if p[0] not in drop])

    def keep(self, *names: str) -> Labels:
        """Only the named labels (the `by (...)` / `on (...)` projection)."""
        wanted = set(names)
        return tuple.__new__(Labels, [p for p in self if p[0] in wanted])

    def without_metric_name(self) -> Labels:
        """This set minus `__name__` (which need not sort first: `__address__` < `__name__`)."""
        for i, (name, _) in enumerate(self):
            if name == METRIC_NAME:
                return tuple.__new__(Labels, self[:i] + self[i + 1 :])
            if name > METRIC_NAME:
                break
        return self

    def with_(self, name: str, value: str) -> Labels:
        """This set with `name` set to `value` (removed if `value` is empty)."""
        pairs = [p for p in self if p[0] != name]
        if value != "":
            pairs.append((name, value))
            pairs.sort()
        return tuple.__new__(Labels, pairs)

    def to_dict(self) -> dict[str, str]:
        return dict(self)

    def __repr__(self) -> str:
        return format_labels(self)

    __str__ = __repr__


EMPTY_LABELS = Labels()


def escape_label_value(value: str) -> str:
    """Quote a label value the way PromQL and the Prometheus UI print it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_labels(labels: Iterable[tuple[str, str]]) -> str:
    """Prometheus text form: `name{a="1", b="2"}` (the name outside the braces)."""
    name = ""
    parts = []
    for n, v in labels:
        if n == METRIC_NAME:
            name = v
        else:
            parts.append(f'{n}="{escape_label_value(v)}"')
    return f"{name}{{{', '.join(parts)}}}" if parts or not name else name


class MatchType(enum.Enum):
    """The four PromQL label-matcher operators."""

    EQ = "="
    NEQ = "!="
    RE = "=~"
    NRE = "!~"


class InvalidRegex(ValueError):
    """A regex matcher whose pattern RE2 cannot compile; the message names the pattern."""


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher; `matches` applies Prometheus semantics to a value ("" = absent)."""

    type: MatchType
    name: str
    value: str
    _regex: Any = field(default=None, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        if self.type in (MatchType.RE, MatchType.NRE):
            object.__setattr__(self, "_regex", compile_anchored(self.value))

    @classmethod
    def eq(cls, name: str, value: str) -> Matcher:
        return cls(MatchType.EQ, name, value)

    def matches(self, value: str) -> bool:
        t = self.type
        if t is MatchType.EQ:
            return value == self.value
        if t is MatchType.NEQ:
            return value != self.value
        hit = self._regex.fullmatch(value) is not None
        return hit if t is MatchType.RE else not hit

    @property
    def matches_empty(self) -> bool:
        """Whether a series without this label is selected (it reads as "")."""
        return self.matches("")

    def __str__(self) -> str:
        return f'{self.name}{self.type.value}"{escape_label_value(self.value)}"'


def compile_anchored(pattern: str) -> Any:
    """Compile a PromQL regex: RE2 syntax, fully anchored, `.` matches newline."""
    try:
        return re2.compile(f"^(?:{pattern})$", _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise InvalidRegex(f"invalid regular expression {pattern!r}: {reason}") from None


def matches_all(matchers: Iterable[Matcher], labels: Labels) -> bool:
    """Whether every matcher accepts `labels` (absent labels read as "")."""
    return all(m.matches(labels.get(m.name)) for m in matchers)
