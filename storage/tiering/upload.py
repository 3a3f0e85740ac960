"""Uploading a block and proving it arrived.

Parquet files go first, each read back and checked against the size and
SHA-256 in `meta.json`; `meta.json` goes last, so the block exists for
readers only once everything else is there. Deleting goes the other way:
`meta.json` first, so a half-deleted block is invisible.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from storage.blocks.meta import META_FILE, BlockMeta
from storage.errors import ObjectNotFound
from storage.objstore.base import ObjectStore, ObjectStoreError


async def upload_block(store: ObjectStore, directory: Path, meta: BlockMeta) -> None:
    """Put the block's files, verify them, then publish `meta.json`."""
    for f in meta.files:
        await store.put(meta.key(f.name), directory / f.name)
    for f in meta.files:
        data = await store.get(meta.key(f.name))
        if len(data) != f.size or hashlib.sha256(data).hexdigest() != f.sha256:
            raise ObjectStoreError(
                f"block {meta.id}: {f.name} read back from {store.name} differs from what was "
                f"uploaded ({len(data)} bytes, expected {f.size})"
            )
    await store.put(meta.key(META_FILE), directory / META_FILE)
    if await store.get(meta.key(META_FILE)) != meta.to_json():
        raise ObjectStoreError(f"block {meta.id}: meta.json read back differs")


async def delete_block(store: ObjectStore, meta: BlockMeta) -> None:
    """Remove the block: `meta.json` first, then the files (a retry finishes the job)."""
    await store.delete(meta.key(META_FILE))
    for f in meta.files:
        try:
            await store.delete(meta.key(f.name))
        except ObjectNotFound:
            pass
