"""Ruler-API namespaces kept in the object store too, so they outlive the data directory.

The object store, not the local disk, is the source of truth of the service
(tiering): a node replaced with an empty data directory and the same bucket
must come back with the groups users created from Grafana. The namespace
files in `<data_dir>/rules/` stay the working copy the rules load from; each
edit through the ruler API is mirrored to `ruler/<namespace file>` in the
store, and at start the two are reconciled:

- a namespace in the store and not on disk is downloaded (a new node);
- a namespace on disk that the store lacks or holds differently is uploaded
  (this node's edit, made while the store was unreachable, is the newer one).

A failed upload is logged and left to the next start, never failing the
edit: the local file already holds it. A namespace deleted while the store
was unreachable comes back from the store on a node that lacks it.
"""

from __future__ import annotations

import logging

from alerting.rulerstore import RulerStore
from storage.objstore.base import ObjectStore

log = logging.getLogger(__name__)

PREFIX = "ruler/"


class RulerMirror:
    """Copies namespace files between the ruler's directory and an object store."""

    def __init__(self, local: RulerStore, store: ObjectStore) -> None:
        self.local = local
        self.store = store

    async def reconcile(self) -> int:
        """Download what only the store has, upload what differs; the number downloaded."""
        remote = [key async for key in self.store.list(PREFIX) if not key.endswith("/")]
        downloaded = 0
        for key in remote:
            name = key[len(PREFIX) :]
            if not self.local.has_file(name):
                self.local.write_file(name, await self.store.get(key))
                downloaded += 1
        present = set(remote)
        for name in self.local.file_names():
            key = PREFIX + name
            data = self.local.read_file(name)
            if key not in present or await self.store.get(key) != data:
                await self.store.put(key, data)
        if downloaded:
            log.info("ruler namespaces restored from the object store", extra={"files": downloaded})
        return downloaded

    async def push(self, namespace: str) -> None:
        """Mirror one namespace as it is on disk now (deleted there: deleted in the store)."""
        name = self.local.file_name(namespace)
        key = PREFIX + name
        try:
            if self.local.has_file(name):
                await self.store.put(key, self.local.read_file(name))
            else:
                await self.store.delete(key)
        except Exception as exc:  # the local file holds the edit; the next start uploads it
            log.warning(
                "ruler namespace not mirrored to the object store",
                extra={"namespace": namespace, "err": str(exc)},
            )
