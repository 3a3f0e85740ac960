"""An object store in an S3 bucket (AWS, or anything speaking S3: MinIO, moto).

The only importer of boto3 (and botocore): its exceptions are translated here,
once. boto3 is synchronous; every call runs in a worker thread
(`asyncio.to_thread`), so the event loop never waits on the network.

Credentials come from the config when given, else from boto3's standard
chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE and
~/.aws/credentials, instance or pod roles). Files above `MULTIPART_BYTES` go
up as multipart uploads in parts of `PART_BYTES` (S3 refuses parts under
5 MiB but the last). botocore's own retries are kept few and short: the
tiering layer retries uploads with its own backoff and keeps blocks on local
disk meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import boto3
import botocore.config
import botocore.exceptions
from boto3.s3.transfer import TransferConfig

from storage.errors import ObjectNotFound, StorageUnavailable
from storage.objstore.base import ObjectInfo, ObjectStoreError, check_key

T = TypeVar("T")

MULTIPART_BYTES = 64 << 20
PART_BYTES = 16 << 20
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_RETRYABLE = {
    "500",
    "502",
    "503",
    "504",
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "Throttling",
}


@dataclass(frozen=True, slots=True)
class S3Config:
    """Where the bucket is and how to reach it (`storage.object_store` with `type: s3`)."""

    bucket: str
    endpoint: str | None = None
    """Endpoint URL (e.g. http://127.0.0.1:9000 for MinIO); None for AWS."""
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0


class S3Store:
    """Objects in one S3 bucket; see the module docstring. Keys are used as given."""

    def __init__(self, config: S3Config) -> None:
        self.config = config
        session = boto3.session.Session(
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=config.secret_access_key,
            region_name=config.region,
        )
        self._client: Any = session.client(
            "s3",
            endpoint_url=config.endpoint,
            config=botocore.config.Config(
                connect_timeout=config.connect_timeout_s,
                read_timeout=config.read_timeout_s,
                retries={"max_attempts": 2, "mode": "standard"},
                max_pool_connections=32,
                s3={"addressing_style": "path"} if config.endpoint else None,
            ),
        )
        self._transfer = TransferConfig(
            multipart_threshold=MULTIPART_BYTES, multipart_chunksize=PART_BYTES, use_threads=False
        )

    @property
    def name(self) -> str:
        where = f" at {self.config.endpoint}" if self.config.endpoint else ""
        return f"s3://{self.config.bucket}{where}"

    async def _call(self, what: str, key: str, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(fn)
        except botocore.exceptions.ClientError as exc:
            raise self._translate(what, key, exc) from None
        except (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectionError,
            botocore.exceptions.HTTPClientError,
        ) as exc:
            raise StorageUnavailable(f"{what} {key!r} in {self.name}: {exc}") from None
        except botocore.exceptions.BotoCoreError as exc:
            raise ObjectStoreError(f"{what} {key!r} in {self.name}: {exc}") from None
        except boto3.exceptions.S3UploadFailedError as exc:
            cause = exc.__context__
            if isinstance(cause, botocore.exceptions.ClientError):
                raise self._translate(what, key, cause) from None
            raise StorageUnavailable(f"{what} {key!r} in {self.name}: {exc}") from None

    def _translate(self, what: str, key: str, exc: botocore.exceptions.ClientError) -> Exception:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        message = f"{what} {key!r} in {self.name}: {code or status} {error.get('Message', '')}"
        if code in _NOT_FOUND or (status == "404" and code != "NoSuchBucket"):
            return ObjectNotFound(message.strip())
        if code in _RETRYABLE or status.startswith("5"):
            return StorageUnavailable(message.strip())
        return ObjectStoreError(message.strip())

    async def put(self, key: str, data: bytes | Path) -> None:
        check_key(key)
        bucket = self.config.bucket
        if isinstance(data, Path):
            path = str(data)
            await self._call(
                "uploading",
                key,
                lambda: self._client.upload_file(path, bucket, key, Config=self._transfer),
            )
        else:
            body = bytes(data)
            await self._call(
                "uploading", key, lambda: self._client.put_object(Bucket=bucket, Key=key, Body=body)
            )

    async def get(self, key: str) -> bytes:
        bucket = self.config.bucket
        return await self._call(
            "reading",
            key,
            lambda: self._client.get_object(Bucket=bucket, Key=key)["Body"].read(),
        )

    async def get_range(self, key: str, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        bucket = self.config.bucket
        span = f"bytes={offset}-{offset + length - 1}"
        try:
            return await self._call(
                "reading",
                key,
                lambda: self._client.get_object(Bucket=bucket, Key=key, Range=span)["Body"].read(),
            )
        except ObjectStoreError as exc:
            if "InvalidRange" in str(exc):  # at or past the end: what is there is nothing
                return b""
            raise

    async def list(self, prefix: str, *, recursive: bool = False) -> AsyncIterator[str]:
        bucket = self.config.bucket
        token: str | None = None
        while True:
            args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
            if not recursive:
                args["Delimiter"] = "/"
            if token:
                args["ContinuationToken"] = token
            call: Callable[[], Any] = partial(self._client.list_objects_v2, **args)
            page = await self._call("listing", prefix, call)
            entries = [c["Key"] for c in page.get("Contents", ())]
            entries += [p["Prefix"] for p in page.get("CommonPrefixes", ())]
            for key in sorted(entries):
                yield key
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    async def delete(self, key: str) -> None:
        bucket = self.config.bucket
        await self._call(
            "deleting", key, lambda: self._client.delete_object(Bucket=bucket, Key=key)
        )

    async def stat(self, key: str) -> ObjectInfo:
        bucket = self.config.bucket
        head = await self._call(
            "inspecting", key, lambda: self._client.head_object(Bucket=bucket, Key=key)
        )
        return ObjectInfo(key, int(head["ContentLength"]))

    async def create_bucket(self) -> None:
        """Create the bucket (tests and first-time setups against S3-compatible stores)."""
        bucket = self.config.bucket
        args: dict[str, Any] = {"Bucket": bucket}
        if self.config.region and self.config.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.config.region}
        await self._call("creating bucket", bucket, lambda: self._client.create_bucket(**args))
