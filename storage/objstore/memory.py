"""An object store in a dict: for tests, and the contract suite's reference."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from storage.errors import ObjectNotFound
from storage.objstore.base import ObjectInfo, check_key, one_level


class MemoryStore:
    """Objects as bytes in memory; no I/O, no failures."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    @property
    def name(self) -> str:
        return "memory"

    async def put(self, key: str, data: bytes | Path) -> None:
        check_key(key)
        if isinstance(data, Path):
            data = await asyncio.to_thread(data.read_bytes)
        self.objects[key] = bytes(data)

    async def get(self, key: str) -> bytes:
        try:
            return self.objects[key]
        except KeyError:
            raise ObjectNotFound(f"object {key!r} not found in {self.name}") from None

    async def get_range(self, key: str, offset: int, length: int) -> bytes:
        data = await self.get(key)
        return data[offset : offset + length]

    async def list(self, prefix: str, *, recursive: bool = False) -> AsyncIterator[str]:
        keys = sorted(k for k in self.objects if k.startswith(prefix))
        for key in keys if recursive else one_level(keys, prefix):
            yield key

    async def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    async def stat(self, key: str) -> ObjectInfo:
        return ObjectInfo(key, len(await self.get(key)))
