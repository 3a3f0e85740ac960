"""Which rule files to load, and loading them all or nothing.

Kept apart from the manager (and free of the engine and the HTTP client), so
that `aggregator check-config` can check rule files quickly.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alerting.rulefile import GroupSpec, RuleFileError, load_file


class RulesLoadError(Exception):
    """Rule files that cannot load; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True, slots=True)
class RuleSource:
    """A rule file to load: its path, and the name its groups show as `file`."""

    path: Path
    display: str


def expand_globs(patterns: Sequence[str], base_dir: Path) -> list[RuleSource]:
    """The files the `rules.files` globs match, in a stable order, each once."""
    seen: dict[Path, None] = {}
    for pattern in patterns:
        full = pattern if Path(pattern).is_absolute() else str(base_dir / pattern)
        for match in sorted(glob.glob(full)):
            path = Path(match)
            if path.is_file():
                seen.setdefault(path, None)
    return [RuleSource(p, str(p)) for p in seen]


def load_rule_files(sources: Sequence[RuleSource]) -> list[GroupSpec]:
    """Every group of every file; raises RulesLoadError listing all problems."""
    groups: list[GroupSpec] = []
    problems: list[str] = []
    for source in sources:
        try:
            groups.extend(load_file(str(source.path), display=source.display))
        except RuleFileError as exc:
            problems.extend(exc.problems)
    if problems:
        raise RulesLoadError(problems)
    return groups
