"""One suite for every ObjectStore: the same calls must give the same answers.

Runs over `MemoryStore` (the reference), `LocalStore` in a temp folder,
`S3Store` against a real S3 endpoint (moto on loopback), and the wrappers
(`PrefixedStore`, `InstrumentedStore`) around them.
"""

import pytest

from storage.errors import ObjectNotFound
from storage.objstore import (
    InstrumentedStore,
    LocalStore,
    MemoryStore,
    PrefixedStore,
)
from storage.objstore.s3 import MULTIPART_BYTES, S3Store


@pytest.fixture(params=["memory", "local", "s3", "prefixed-local", "instrumented-s3"])
def store(request, tmp_path):
    kind = request.param
    if kind == "memory":
        return MemoryStore()
    if kind == "local":
        return LocalStore(tmp_path / "objects")
    if kind == "prefixed-local":
        return PrefixedStore(LocalStore(tmp_path / "objects"), "tenant/a")
    s3 = request.getfixturevalue("s3_store")
    return s3 if kind == "s3" else InstrumentedStore(s3)


async def listing(store, prefix="", recursive=False):
    return [k async for k in store.list(prefix, recursive=recursive)]


async def test_put_get_stat_round_trip(store):
    data = bytes(range(256)) * 40
    await store.put("blocks/a/data.bin", data)
    assert await store.get("blocks/a/data.bin") == data
    assert (await store.stat("blocks/a/data.bin")).size == len(data)


async def test_put_overwrites(store):
    await store.put("k", b"first")
    await store.put("k", b"second, longer")
    assert await store.get("k") == b"second, longer"


async def test_put_from_a_file(store, tmp_path):
    path = tmp_path / "upload.bin"
    path.write_bytes(b"x" * 1000 + b"end")
    await store.put("from/file", path)
    assert await store.get("from/file") == b"x" * 1000 + b"end"


async def test_ranged_reads(store):
    data = bytes(range(256)) * 4
    await store.put("r", data)
    assert await store.get_range("r", 0, 10) == data[:10]
    assert await store.get_range("r", 100, 50) == data[100:150]
    assert await store.get_range("r", len(data) - 5, 100) == data[-5:]


async def test_missing_keys_raise_object_not_found(store):
    with pytest.raises(ObjectNotFound):
        await store.get("nope")
    with pytest.raises(ObjectNotFound):
        await store.get_range("nope", 0, 5)
    with pytest.raises(ObjectNotFound):
        await store.stat("nope/deeper")
    await store.delete("nope")  # deleting what is not there is fine


async def test_listing_one_level_and_recursive(store):
    for key in ("blocks/01/meta.json", "blocks/01/samples.parquet", "blocks/02/meta.json", "top"):
        await store.put(key, b"1")
    assert await listing(store) == ["blocks/", "top"]
    assert await listing(store, "blocks/") == ["blocks/01/", "blocks/02/"]
    assert await listing(store, "blocks/01/") == [
        "blocks/01/meta.json",
        "blocks/01/samples.parquet",
    ]
    assert await listing(store, "blocks/", recursive=True) == [
        "blocks/01/meta.json",
        "blocks/01/samples.parquet",
        "blocks/02/meta.json",
    ]
    assert await listing(store, "nothing/") == []


async def test_delete_removes_from_listing(store):
    await store.put("d/1", b"a")
    await store.put("d/2", b"b")
    await store.delete("d/1")
    assert await listing(store, "d/") == ["d/2"]
    await store.delete("d/2")
    assert await listing(store) == []
    with pytest.raises(ObjectNotFound):
        await store.get("d/2")


async def test_invalid_keys_are_refused(store):
    for key in ("", "/abs", "a//b", "a/../b"):
        with pytest.raises(ValueError, match="invalid object key"):
            await store.put(key, b"x")


async def test_large_file_goes_up_as_multipart(s3_config, tmp_path):
    """Above the multipart threshold (parts of at least 5 MiB, as S3 demands)."""
    store = S3Store(s3_config)
    path = tmp_path / "big.bin"
    size = MULTIPART_BYTES + (3 << 20)
    path.write_bytes(b"\x01\x02\x03\x04" * (size // 4))
    await store.put("big", path)
    assert (await store.stat("big")).size == size
    assert await store.get_range("big", size - 4, 4) == b"\x01\x02\x03\x04"


async def test_instrumented_store_counts_requests_and_bytes():
    store = InstrumentedStore(MemoryStore())
    await store.put("a", b"12345")
    await store.get_range("a", 1, 3)
    with pytest.raises(ObjectNotFound):
        await store.get("missing")
    assert store.stats["put"].requests == 1
    assert store.stats["put"].bytes == 5
    assert store.stats["get_range"].bytes == 3
    assert store.stats["get"].requests == 1
    assert store.stats["get"].failures == 0  # "not found" is an answer, not a failure
