"""`storage.object_store`: which store holds the blocks, and building it.

`type: local` (the embedded default) keeps objects in a folder, by default
`<data_dir>/objects`; `type: s3` in a bucket. `prefix` puts every key under a
folder of the store, so several services (or tests) can share one bucket.

`read_prefixes` name other folders of the same store whose blocks this
service reads but never writes (the query tier of a scale-out reads its
shards' prefixes), listed again every `read_relist_interval`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from storage.objstore.base import ObjectStore
from storage.objstore.local import LocalStore
from storage.objstore.prefixed import PrefixedStore
from storage.objstore.readonly import ReadOnlyStore

LOCAL_DEFAULT_DIR = "objects"


@dataclass(frozen=True, slots=True)
class ObjectStoreConfig:
    """Settings of `storage.object_store`; credentials are never printed."""

    type: str = "local"
    path: Path | None = None
    """Folder of a `local` store; None: `<data_dir>/objects`."""
    bucket: str = ""
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    read_prefixes: tuple[str, ...] = ()
    """Folders of the same store holding other writers' blocks, read-only here."""
    read_relist_interval_ms: int = 60_000
    """How often the `read_prefixes` are listed again (new, compacted, deleted blocks)."""

    def describe(self, data_dir: Path) -> str:
        """Where blocks go, for logs (no credentials)."""
        if self.type == "s3":
            where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
            return where + (f" at {self.endpoint}" if self.endpoint else "")
        return f"local:{self.local_root(data_dir)}" + (f"/{self.prefix}" if self.prefix else "")

    def local_root(self, data_dir: Path) -> Path:
        return self.path if self.path is not None else Path(data_dir) / LOCAL_DEFAULT_DIR


def open_object_store(config: ObjectStoreConfig, data_dir: Path) -> ObjectStore:
    """The store `config` describes (S3 clients are built here, imported only if used)."""
    store = _open_root(config, data_dir)
    return PrefixedStore(store, config.prefix) if config.prefix else store


def open_read_stores(config: ObjectStoreConfig, data_dir: Path) -> dict[str, ObjectStore]:
    """A read-only store per `read_prefixes` entry, sharing one client."""
    if not config.read_prefixes:
        return {}
    root = _open_root(config, data_dir)
    return {p: ReadOnlyStore(PrefixedStore(root, p)) for p in config.read_prefixes}


def _open_root(config: ObjectStoreConfig, data_dir: Path) -> ObjectStore:
    store: ObjectStore
    if config.type == "s3":  # boto3 is imported only when S3 is used
        from storage.objstore.s3 import S3Config, S3Store

        store = S3Store(
            S3Config(
                bucket=config.bucket,
                endpoint=config.endpoint,
                region=config.region,
                access_key_id=config.access_key_id,
                secret_access_key=config.secret_access_key,
            )
        )
    elif config.type == "local":
        store = LocalStore(config.local_root(data_dir))
    else:
        raise ValueError(f"unknown object store type {config.type!r} (local or s3)")
    return store
