"""Object stores: where Parquet blocks live (a local folder, or an S3 bucket).

`ObjectStore` is the interface (`base`); `LocalStore`, `S3Store` (the only
boto3 importer, in `s3`) and `MemoryStore` implement it; `PrefixedStore` and
`InstrumentedStore` wrap any of them (`ReadOnlyStore` refuses writes);
`open_object_store` builds one from the `storage.object_store` settings.
"""

from storage.objstore.base import ObjectInfo, ObjectStore, ObjectStoreError
from storage.objstore.config import ObjectStoreConfig, open_object_store, open_read_stores
from storage.objstore.instrumented import InstrumentedStore, OperationStats
from storage.objstore.local import LocalStore
from storage.objstore.memory import MemoryStore
from storage.objstore.prefixed import PrefixedStore
from storage.objstore.readonly import ReadOnlyStore

__all__ = [
    "InstrumentedStore",
    "LocalStore",
    "MemoryStore",
    "ObjectInfo",
    "ObjectStore",
    "ObjectStoreConfig",
    "ObjectStoreError",
    "OperationStats",
    "PrefixedStore",
    "ReadOnlyStore",
    "open_object_store",
    "open_read_stores",
]
