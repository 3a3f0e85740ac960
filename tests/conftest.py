"""Fixtures shared by every test package: a real S3 endpoint (moto) on loopback."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from storage.objstore.s3 import S3Config, S3Store
from tests.support.realparts import start_moto

_buckets = itertools.count()


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One moto S3 server for the session; each test makes its own bucket."""
    proc, url = start_moto(Path(tmp_path_factory.mktemp("moto")))
    try:
        yield url
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def bucket_maker(moto_url: str) -> S3Store:
    """One client that creates the tests' buckets (a client takes a fraction of a second)."""
    return S3Store(
        S3Config(
            bucket="unused",
            endpoint=moto_url,
            region="us-east-1",
            access_key_id="testing",
            secret_access_key="testing",
        )
    )


@pytest.fixture
def s3_config(moto_url: str, bucket_maker: S3Store, monkeypatch: pytest.MonkeyPatch) -> S3Config:
    """A fresh, empty bucket on the session's moto server."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    config = S3Config(bucket=f"test-bucket-{next(_buckets)}", endpoint=moto_url, region="us-east-1")
    asyncio.run(shared_client_store(bucket_maker, config).create_bucket())
    return config


@pytest.fixture
def s3_store(bucket_maker: S3Store, s3_config: S3Config) -> S3Store:
    """An S3Store on the test's bucket, sharing the session's client (building a boto3
    client takes longer than most tests)."""
    return shared_client_store(bucket_maker, s3_config)


def shared_client_store(template: S3Store, config: S3Config) -> S3Store:
    store = S3Store.__new__(S3Store)
    store.__dict__.update(template.__dict__)
    store.config = replace(template.config, bucket=config.bucket)
    return store
