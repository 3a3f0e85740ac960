"""An object store in a local folder: the embedded default, under the data directory.

Each key is a file below the root. A put writes a temporary file next to the
target, fsyncs it and renames it over the target (then fsyncs the folder), so
a crash leaves either the old or the new object, never half of one. File I/O
runs in worker threads.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from storage.errors import ObjectNotFound, StorageUnavailable
from storage.objstore.base import ObjectInfo, ObjectStoreError, check_key, one_level

TMP_SUFFIX = ".tmp-upload"


class LocalStore:
    """Objects as files under `root`; see the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def name(self) -> str:
        return f"local:{self.root}"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(self, key: str, data: bytes | Path) -> None:
        await asyncio.to_thread(self._put, self._path(key), data)

    def _put(self, path: Path, data: bytes | Path) -> None:
        tmp = path.with_name(path.name + TMP_SUFFIX)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, Path):
                shutil.copyfile(data, tmp)
            else:
                tmp.write_bytes(data)
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except FileNotFoundError as exc:
            if isinstance(data, Path) and not data.exists():
                raise ObjectStoreError(f"uploading {data}: the file does not exist") from None
            raise StorageUnavailable(f"writing {path}: {exc}") from None
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageUnavailable(f"writing {path}: {exc}") from None

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._read, self._path(key), 0, -1)

    async def get_range(self, key: str, offset: int, length: int) -> bytes:
        return await asyncio.to_thread(self._read, self._path(key), offset, length)

    def _read(self, path: Path, offset: int, length: int) -> bytes:
        try:
            with open(path, "rb") as f:
                if offset:
                    f.seek(offset)
                return f.read() if length < 0 else f.read(length)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(f"object {path} not found") from None
        except OSError as exc:
            raise StorageUnavailable(f"reading {path}: {exc}") from None

    async def list(self, prefix: str, *, recursive: bool = False) -> AsyncIterator[str]:
        keys = await asyncio.to_thread(self._all_keys, prefix)
        for key in keys if recursive else one_level(keys, prefix):
            yield key

    def _all_keys(self, prefix: str) -> builtins.list[str]:
        # Walk only the deepest folder the prefix names, not the whole store.
        folder = self.root / prefix[: prefix.rfind("/") + 1] if "/" in prefix else self.root
        if not folder.is_dir():
            return []
        out: builtins.list[str] = []
        for dirpath, _, files in os.walk(folder):
            rel = os.path.relpath(dirpath, self.root)
            base = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            keys = (base + f for f in files if not f.endswith(TMP_SUFFIX))
            out.extend(k for k in keys if k.startswith(prefix))
        return sorted(out)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, self._path(key))

    def _delete(self, path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageUnavailable(f"deleting {path}: {exc}") from None
        # Remove folders left empty, up to the root, so listings stay clean.
        parent = path.parent
        while parent != self.root and parent.is_relative_to(self.root):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    async def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            size = (await asyncio.to_thread(path.stat)).st_size
        except FileNotFoundError:
            raise ObjectNotFound(f"object {path} not found") from None
        return ObjectInfo(key, size)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
