"""A store that can only be read: other services' blocks (`storage.object_store.read_prefixes`).

The query tier of a scale-out reads the blocks its shards upload; the shards
alone write, compact and delete there. Wrapping their prefixes in
`ReadOnlyStore` makes that a property of the code, not a convention: a put
or delete raises instead of touching another writer's objects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from storage.objstore.base import ObjectInfo, ObjectStore, ObjectStoreError


class ReadOnlyStore:
    """`inner` for get, get_range, list and stat; put and delete raise ObjectStoreError."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    async def put(self, key: str, data: bytes | Path) -> None:
        raise ObjectStoreError(f"{self.name} is read-only here: not writing {key}")

    async def get(self, key: str) -> bytes:
        return await self.inner.get(key)

    async def get_range(self, key: str, offset: int, length: int) -> bytes:
        return await self.inner.get_range(key, offset, length)

    async def list(self, prefix: str, *, recursive: bool = False) -> AsyncIterator[str]:
        async for key in self.inner.list(prefix, recursive=recursive):
            yield key

    async def delete(self, key: str) -> None:
        raise ObjectStoreError(f"{self.name} is read-only here: not deleting {key}")

    async def stat(self, key: str) -> ObjectInfo:
        return await self.inner.stat(key)
