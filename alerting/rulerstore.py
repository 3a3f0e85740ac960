"""Rule groups managed through the ruler configuration API, kept in the data directory.

Mimir's ruler API (`/config/v1/rules`) organises groups in namespaces. Each
namespace is one rule file in `<data_dir>/rules/`, named after the namespace
(percent-encoded), in the Prometheus format; its groups show the namespace as
their `file`, as Mimir shows them. Files are replaced atomically (write,
fsync, rename), so a crash leaves either the old or the new version.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from alerting.loader import RuleSource
from alerting.rulefile import GroupSpec, RuleFileError, dump_yaml, group_to_dict, load_file

SUFFIX = ".yaml"


class RulerStore:
    """Namespaces of rule groups, one file each under `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, namespace: str) -> Path:
        return self.directory / self.file_name(namespace)

    @staticmethod
    def file_name(namespace: str) -> str:
        """The namespace's file name (percent-encoded, so any namespace is one safe name)."""
        return urllib.parse.quote(namespace, safe="") + SUFFIX

    def file_names(self) -> list[str]:
        """Names of the namespace files, sorted."""
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.glob("*" + SUFFIX))

    def has_file(self, name: str) -> bool:
        return (self.directory / name).is_file()

    def read_file(self, name: str) -> bytes:
        return (self.directory / name).read_bytes()

    def write_file(self, name: str, data: bytes) -> None:
        """Write a namespace file as received (from the object store), atomically."""
        if name != urllib.parse.quote(urllib.parse.unquote(name), safe="") or not name.endswith(
            SUFFIX
        ):
            raise ValueError(f"not a namespace file name: {name!r}")
        self._replace(self.directory / name, data)

    def sources(self) -> list[RuleSource]:
        """The namespace files, for loading with the configured rule files."""
        if not self.directory.is_dir():
            return []
        out = []
        for path in sorted(self.directory.glob("*" + SUFFIX)):
            namespace = urllib.parse.unquote(path.name[: -len(SUFFIX)])
            out.append(RuleSource(path, namespace))
        return out

    def namespaces(self) -> dict[str, list[GroupSpec]]:
        """Every namespace with its groups (a namespace file that fails to load is skipped;
        the rule reload reports it)."""
        out: dict[str, list[GroupSpec]] = {}
        for source in self.sources():
            try:
                out[source.display] = load_file(str(source.path), display=source.display)
            except RuleFileError:
                continue
        return out

    def groups(self, namespace: str) -> list[GroupSpec] | None:
        path = self._path(namespace)
        if not path.is_file():
            return None
        return load_file(str(path), display=namespace)

    def set_group(self, namespace: str, group: GroupSpec) -> None:
        """Add the group to the namespace, replacing the one of the same name."""
        groups = self.groups(namespace) or []
        replaced = [group if g.name == group.name else g for g in groups]
        if not any(g.name == group.name for g in groups):
            replaced.append(group)
        self._write(namespace, replaced)

    def delete_group(self, namespace: str, name: str) -> bool:
        groups = self.groups(namespace)
        if groups is None or not any(g.name == name for g in groups):
            return False
        rest = [g for g in groups if g.name != name]
        if rest:
            self._write(namespace, rest)
        else:
            self._path(namespace).unlink()
        return True

    def delete_namespace(self, namespace: str) -> bool:
        path = self._path(namespace)
        if not path.is_file():
            return False
        path.unlink()
        return True

    def _write(self, namespace: str, groups: list[GroupSpec]) -> None:
        text = dump_yaml({"groups": [group_to_dict(g) for g in groups]})
        self._replace(self._path(namespace), text.encode("utf-8"))

    def _replace(self, path: Path, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
