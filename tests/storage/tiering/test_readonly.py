"""Another writer's blocks, read-only: new, replaced, deleted and vanishing-mid-read blocks.

The writer here is the test, doing what a shard's tiering does in the order it
does it (files then `meta.json` up; a compacted block up before its sources go;
`meta.json` first down). The reader is what a scale-out's query tier runs.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from remote_write.batch import WriteBatch
from storage.blocks.cache import ChunkCache
from storage.blocks.meta import META_FILE
from storage.db import Storage
from storage.errors import ObjectNotFound
from storage.labels import Labels, Matcher, MatchType
from storage.objstore import LocalStore, MemoryStore, ObjectStoreError, PrefixedStore
from storage.options import StorageOptions
from storage.tiering.querier import ReadOptions
from storage.tiering.readonly import ReadOnlyCatalog
from storage.tiering.shared import SharedBlocks
from storage.tiering.upload import delete_block
from tests.storage.blocks.helpers import batch_of, upload, write_block

T0 = 1_700_000_000_000
ALL = [Matcher(MatchType.EQ, "__name__", "m")]


def _series(cluster: str, start: int, n: int = 10):
    ts = start + np.arange(n, dtype=np.int64) * 1000
    labels = Labels.from_dict({"__name__": "m", "cluster": cluster})
    return labels, ts, ts.astype(np.float64)


async def put(store, tmp_path, *series, **meta):
    written = write_block(tmp_path, [batch_of(list(series))], **meta)
    await upload(store, tmp_path, written)
    return written


def shared_over(stores: dict) -> SharedBlocks:
    return SharedBlocks(stores, ChunkCache(1 << 20), ChunkCache(1 << 20), 60_000)


async def select(shared: SharedBlocks, start=T0, end=T0 + 10**7):
    q = shared.open(start, end, ReadOptions())
    try:
        ss = await q.select(ALL, start, end)
    finally:
        q.release()
    return ss


def samples(ss) -> dict[str, list[int]]:
    out = {}
    for i, lbl in enumerate(ss.labels):
        out[lbl.get("cluster")] = ss.timestamps[ss.offsets[i] : ss.offsets[i + 1]].tolist()
    return out


async def test_new_blocks_appear_at_the_next_listing_and_move_the_horizon(tmp_path):
    root = MemoryStore()
    store = PrefixedStore(root, "fleet/shard-0")
    await put(store, tmp_path, _series("eu-1", T0))
    shared = shared_over({"fleet/shard-0": store})
    await shared.refresh()
    q = shared.open(T0, T0 + 10**7, ReadOptions())
    assert q.horizons == {"fleet/shard-0": T0 + 9_000}
    q.release()

    await put(store, tmp_path, _series("eu-1", T0 + 10_000))
    assert samples(await select(shared)) == {"eu-1": [T0 + i * 1000 for i in range(10)]}
    await shared.refresh()
    assert samples(await select(shared)) == {"eu-1": [T0 + i * 1000 for i in range(20)]}
    q = shared.open(T0, T0 + 10**7, ReadOptions())
    assert q.horizons == {"fleet/shard-0": T0 + 19_000}
    q.release()


async def test_a_compaction_is_seen_whole_before_and_after_its_sources_go(tmp_path):
    store = MemoryStore()
    a = await put(store, tmp_path, _series("eu-1", T0))
    b = await put(store, tmp_path, _series("eu-1", T0 + 10_000))
    shared = shared_over({"p": store})
    await shared.refresh()
    expected = {"eu-1": [T0 + i * 1000 for i in range(20)]}
    assert samples(await select(shared)) == expected

    # the writer uploads the compacted block: listed beside its sources, it hides them
    labels, ts, vals = _series("eu-1", T0, 20)
    c = await put(store, tmp_path, (labels, ts, vals), kind="compacted", sources=(a.id, b.id))
    await shared.refresh()
    catalog = shared.catalogs["p"]
    assert [m.id for m in catalog.blocks] == [c.id]
    assert samples(await select(shared)) == expected
    # then deletes them: nothing changes for queries
    await delete_block(store, a)
    await delete_block(store, b)
    await shared.refresh()
    assert [m.id for m in catalog.blocks] == [c.id]
    assert samples(await select(shared)) == expected


async def test_deleted_blocks_leave_at_the_next_listing(tmp_path):
    store = MemoryStore()
    old = await put(store, tmp_path, _series("eu-1", T0))
    await put(store, tmp_path, _series("eu-1", T0 + 10_000))
    half = await put(store, tmp_path, _series("eu-2", T0))
    shared = shared_over({"p": store})
    await shared.refresh()
    assert len(shared.catalogs["p"]) == 3
    await delete_block(store, old)  # retention
    await store.delete(half.key(META_FILE))  # a deletion that stopped after meta.json
    await shared.refresh()
    assert len(shared.catalogs["p"]) == 1
    assert samples(await select(shared)) == {"eu-1": [T0 + 10_000 + i * 1000 for i in range(10)]}


async def test_a_block_replaced_under_a_running_query_is_read_again_from_the_new_listing(
    tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="storage.tiering.shared")
    store = MemoryStore()
    a = await put(store, tmp_path, _series("eu-1", T0))
    b = await put(store, tmp_path, _series("eu-1", T0 + 10_000))
    shared = shared_over({"p": store})
    await shared.refresh()
    q = shared.open(T0, T0 + 10**7, ReadOptions())  # the query pins a and b ...
    try:
        # ... the writer compacts them and deletes them before the query reads
        labels, ts, vals = _series("eu-1", T0, 20)
        await put(store, tmp_path, (labels, ts, vals), kind="compacted", sources=(a.id, b.id))
        await delete_block(store, a)
        await delete_block(store, b)
        ss = await q.select(ALL, T0, T0 + 10**7)
    finally:
        q.release()
    assert samples(ss) == {"eu-1": [T0 + i * 1000 for i in range(20)]}
    assert ss.warnings.warning_list() == []
    assert "shared block gone mid-read, listing again" in caplog.messages


class _LosesObjects(MemoryStore):
    """A store whose block files vanish for good (what cannot be staged with a real
    writer: an object missing however often the prefix is listed again)."""

    def __init__(self) -> None:
        super().__init__()
        self.lost: set[str] = set()

    async def get_range(self, key: str, offset: int, length: int) -> bytes:
        if any(key.startswith(f"blocks/{i}/") for i in self.lost):
            raise ObjectNotFound(f"object {key!r} not found in {self.name}")
        return await super().get_range(key, offset, length)

    async def get(self, key: str) -> bytes:
        if any(key.startswith(f"blocks/{i}/") for i in self.lost) and not key.endswith(META_FILE):
            raise ObjectNotFound(f"object {key!r} not found in {self.name}")
        return await super().get(key)


async def test_an_object_missing_after_listing_again_leaves_its_prefix_out_with_a_warning(
    tmp_path,
):
    broken = _LosesObjects()
    fine = MemoryStore()
    lost = await put(broken, tmp_path, _series("eu-1", T0))
    await put(fine, tmp_path, _series("us-1", T0))
    shared = shared_over({"fleet/shard-0": broken, "fleet/shard-1": fine})
    await shared.refresh()
    broken.lost.add(lost.id)
    ss = await select(shared)
    assert samples(ss) == {"us-1": [T0 + i * 1000 for i in range(10)]}
    (warning,) = ss.warnings.warning_list()
    assert "could not be read" in warning
    assert lost.id in warning


async def test_the_store_is_never_written_or_deleted_in(tmp_path):
    store = MemoryStore()
    await put(store, tmp_path, _series("eu-1", T0))
    catalog = ReadOnlyCatalog("p", store, ChunkCache(1 << 20))
    await catalog.refresh()
    with pytest.raises(ObjectStoreError, match="read-only"):
        await catalog.store.put("blocks/x/meta.json", b"{}")
    with pytest.raises(ObjectStoreError, match="read-only"):
        await catalog.store.delete(catalog.blocks[0].key(META_FILE))
    assert len([k async for k in store.list("", recursive=True)]) > 0


async def test_a_failing_listing_keeps_the_last_view_and_says_why(tmp_path):
    store = MemoryStore()
    await put(store, tmp_path, _series("eu-1", T0))
    shared = shared_over({"p": store})
    await shared.refresh()

    async def down(prefix, *, recursive=False):
        raise ObjectStoreError("connection refused")
        yield ""

    store.list = down  # type: ignore[method-assign]
    await shared.refresh()  # logged, not raised
    (status,) = shared.status()
    assert status["blocks"] == 1
    assert "connection refused" in status["lastError"]
    assert samples(await select(shared)) == {"eu-1": [T0 + i * 1000 for i in range(10)]}


async def test_storage_reads_other_prefixes_beside_its_own_head_and_blocks(tmp_path):
    """A query tier's Storage: a shard's flushed blocks (another Storage writing under its
    prefix of one local store) answer beside the query tier's own head."""
    root = LocalStore(tmp_path / "bucket")
    ts = [T0 + i * 1000 for i in range(10)]
    shard = await Storage.open(
        tmp_path / "shard", StorageOptions(), object_store=PrefixedStore(root, "fleet/shard-0")
    )
    try:
        app = shard.appender(cluster="eu-1")
        app.append(WriteBatch.from_series([((("__name__", "m"),), ts, [1.0] * 10)]))
        await app.commit()
        assert (await shard.flush()).samples == 10
    finally:
        await shard.close()

    query = await Storage.open(
        tmp_path / "query",
        StorageOptions(),
        object_store=PrefixedStore(root, "fleet/query"),
        read_stores={"fleet/shard-0": PrefixedStore(root, "fleet/shard-0")},
    )
    try:
        app = query.appender(cluster="rules")
        app.append(WriteBatch.from_series([((("__name__", "m"),), ts, [2.0] * 10)]))
        await app.commit()
        await query.shared.refresh()
        async with query.querier(T0, T0 + 60_000) as q:
            assert q.horizons == {"fleet/shard-0": ts[-1]}
            ss = await q.select(ALL, T0, T0 + 60_000)
        assert samples(ss) == {"eu-1": ts, "rules": ts}
        (status,) = query.blocks_status()["readPrefixes"]
        assert status["prefix"] == "fleet/shard-0"
        assert status["blocks"] == 1
        assert status["maxTime"] == ts[-1]
        # the shard's prefix was only read
        keys = [k async for k in root.list("fleet/shard-0/", recursive=True)]
        assert len(keys) == 3
    finally:
        await query.close()
