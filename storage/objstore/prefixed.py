"""A view of another store under a key prefix (`storage.object_store.prefix`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from storage.objstore.base import ObjectInfo, ObjectStore, check_key


class PrefixedStore:
    """Every key is read and written as `prefix/key` in `inner`."""

    def __init__(self, inner: ObjectStore, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    @property
    def name(self) -> str:
        return f"{self.inner.name}/{self.prefix}" if self.prefix else self.inner.name

    async def put(self, key: str, data: bytes | Path) -> None:
        await self.inner.put(self.prefix + check_key(key), data)

    async def get(self, key: str) -> bytes:
        return await self.inner.get(self.prefix + key)

    async def get_range(self, key: str, offset: int, length: int) -> bytes:
        return await self.inner.get_range(self.prefix + key, offset, length)

    async def list(self, prefix: str, *, recursive: bool = False) -> AsyncIterator[str]:
        cut = len(self.prefix)
        async for key in self.inner.list(self.prefix + prefix, recursive=recursive):
            yield key[cut:]

    async def delete(self, key: str) -> None:
        await self.inner.delete(self.prefix + key)

    async def stat(self, key: str) -> ObjectInfo:
        info = await self.inner.stat(self.prefix + key)
        return ObjectInfo(key, info.size)
