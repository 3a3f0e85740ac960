"""The same store as a `pyarrow.fs` filesystem, for reading blocks with plain Parquet tools.

The query path reads blocks through `ObjectStore.get_range` (so that every
request is counted against the query and lands in the chunk cache); tools,
the README's pandas example and tests that want to read a block the way an
outside user would (pandas, DuckDB, Spark) open it through this instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.fs

from storage.objstore.config import ObjectStoreConfig


def arrow_filesystem(config: ObjectStoreConfig, data_dir: Path) -> tuple[Any, str]:
    """(filesystem, base path) such that block files are at `base/blocks/<id>/<file>`."""
    prefix = config.prefix.strip("/")
    if config.type == "s3":
        fs = pyarrow.fs.S3FileSystem(
            access_key=config.access_key_id,
            secret_key=config.secret_access_key,
            region=config.region or "us-east-1",
            endpoint_override=config.endpoint,
            allow_bucket_creation=False,
        )
        base = f"{config.bucket}/{prefix}" if prefix else config.bucket
        return fs, base
    root = config.local_root(data_dir)
    return pyarrow.fs.LocalFileSystem(), str(root / prefix if prefix else root)
