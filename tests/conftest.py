"""Fixtures shared by every test package: a real S3 endpoint (moto) on loopback."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
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


@pytest.fixture
def s3_config(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> S3Config:
    """A fresh, empty bucket on the session's moto server."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    config = S3Config(bucket=f"test-bucket-{next(_buckets)}", endpoint=moto_url, region="us-east-1")
    asyncio.run(S3Store(config).create_bucket())
    return config
