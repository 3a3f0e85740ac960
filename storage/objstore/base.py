"""The object-store interface (shaped after Thanos's `objstore.Bucket`).

Keys are `/`-separated strings without a leading slash. Writes are whole
objects and idempotent (writing the same key twice leaves the last content);
readers see either the whole old or the whole new object, never a mix.

Errors: a missing key raises `ObjectNotFound` (get, get_range, stat; `delete`
of a missing key is not an error). A store that cannot be reached or answers
with a server error raises `StorageUnavailable` (a retry may help); anything
else (refused credentials, a bucket that does not exist) raises
`ObjectStoreError`. Implementations translate their library's exceptions into
these, once, where they call it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from storage.errors import StorageError


class ObjectStoreError(StorageError):
    """An object-store operation failed for a reason a retry will not fix."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What `stat` reports about one object."""

    key: str
    size: int


class ObjectStore(Protocol):
    """Whole-object writes, ranged reads, listing; see the module docstring."""

    @property
    def name(self) -> str:
        """Where the objects live, for logs and status pages (no credentials)."""
        ...

    async def put(self, key: str, data: bytes | Path) -> None:
        """Store `data` (bytes, or the content of a local file) under `key`."""
        ...

    async def get(self, key: str) -> bytes:
        """The whole object."""
        ...

    async def get_range(self, key: str, offset: int, length: int) -> bytes:
        """`length` bytes from `offset` (fewer only where the object ends)."""
        ...

    def list(self, prefix: str, *, recursive: bool = False) -> AsyncIterator[str]:
        """Keys under `prefix`, sorted. Without `recursive`, one level only: keys
        of objects directly under it and "directory" keys ending in `/`."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""
        ...

    async def stat(self, key: str) -> ObjectInfo:
        """Size of the object."""
        ...


def check_key(key: str) -> str:
    """`key` if it is a usable object key; ValueError naming the problem otherwise."""
    if not key or key.startswith("/") or "//" in key:
        raise ValueError(f"invalid object key {key!r}: empty, leading '/' or '//'")
    if any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"invalid object key {key!r}: '.' and '..' are not allowed")
    return key


def one_level(keys: list[str], prefix: str) -> list[str]:
    """Collapse sorted `keys` under `prefix` to one listing level ("dir/" entries)."""
    out: list[str] = []
    for key in keys:
        rest = key[len(prefix) :]
        cut = rest.find("/")
        entry = key if cut < 0 else prefix + rest[: cut + 1]
        if not out or out[-1] != entry:
            out.append(entry)
    return out
