"""One suite for every Querier: the same data must give the same answers.

Each implementation is loaded with the same series through its own write
path, then asked the same selects and label queries. MemoryStorage (whole
series, matched by scanning) is the obviously-correct reference. Storage
runs three ways: all in the head; all flushed into Parquet blocks; and
flushed halfway, so that series span blocks and head, and late samples land
in ranges already cut (late blocks overlapping earlier ones).
"""

import random
from contextlib import asynccontextmanager

import numpy as np
import pytest

from remote_write.batch import STALE_NAN, WriteBatch
from remote_write.codec import decode_write_request, encode_write_request
from storage.db import Storage
from storage.errors import SampleLimitExceeded
from storage.interfaces import SelectHints
from storage.labels import Labels, Matcher
from storage.labels import MatchType as T
from storage.memory import MemoryStorage
from storage.merge import MergeQuerier
from storage.objstore import MemoryStore
from storage.options import StorageOptions, TieringOptions

T0 = 1_700_000_000_000
STEP = 15_000


def dataset():
    """(labels, timestamps, values) with gaps, stale markers and late samples."""
    rng = random.Random(42)
    out = []
    for i in range(60):
        labels = {
            "__name__": ["up", "http_requests_total", "node_cpu_seconds_total"][i % 3],
            "job": ["api", "db", "web", "node"][i % 4],
            "instance": f"10.0.0.{i}:9100",
            "cluster": ["eu", "us", ""][i % 3 - (i // 3) % 2],
        }
        if i % 5 == 0:
            labels["zone"] = ["a", "b"][i % 2]
        n = rng.randint(1, 80)
        start = rng.randint(0, 40)
        ts = T0 + (start + np.arange(n)) * STEP
        values = np.round(np.cumsum(rng.random() + np.zeros(n)), 3)
        if i % 7 == 0:
            values[-1] = STALE_NAN
        keep = np.array([rng.random() > 0.1 for _ in range(n)])
        keep[0] = True
        out.append((Labels.from_dict(labels), ts[keep], values[keep]))
    return out


async def load_storage(tmp_path, data, flush_after=None):
    opts = StorageOptions(
        head_buffer_rows=97,
        out_of_order_window_ms=3_600_000,
        tiering=TieringOptions(block_duration_ms=5 * 60_000),
    )
    storage = await Storage.open(tmp_path, opts, object_store=MemoryStore())
    app = storage.appender()
    # Write round by round as scrapes arrive; every 4th round is held back and
    # sent late (out of order), and round 0 is sent twice (a retry).
    rounds: dict[int, list] = {}
    for labels, ts, values in data:
        for t, v in zip(ts.tolist(), values.tolist(), strict=True):
            rounds.setdefault((t - T0) // STEP, []).append((labels, t, v))
    late = []
    for r in sorted(rounds):
        if flush_after is not None and r == flush_after:
            await app.commit()
            await storage.flush()
        if r % 4 == 3:
            late.append(rounds[r])
            continue
        app.append(_batch(rounds[r]))
        if r == 0:
            app.append(_batch(rounds[r]))
    for rows in late:
        app.append(_batch(rows))
    await app.commit()
    if flush_after == -1:
        await storage.flush()
    return storage


def _batch(rows):
    b = WriteBatch.from_series([(tuple(lbl), [t], [v]) for lbl, t, v in rows])
    return decode_write_request(encode_write_request(b)).batch


async def load_memory(tmp_path, data):
    mem = MemoryStorage()
    for labels, ts, values in data:
        mem.add(labels, ts, values)
    return mem


class MergedMemories:
    """MergeQuerier over two stores that split the series, sharing every 10th (whose
    samples are partly in one store, partly in the other, and partly in both)."""

    def __init__(self, data):
        self.a, self.b = MemoryStorage(), MemoryStorage()
        for i, (labels, ts, values) in enumerate(data):
            if i % 10 == 0:
                self.a.add(labels, ts[::2], values[::2])
                self.b.add(labels, ts[len(ts) // 3 :], values[len(ts) // 3 :])
                self.a.add(labels, ts[: len(ts) // 3], values[: len(ts) // 3])
            else:
                (self.a if i % 2 else self.b).add(labels, ts, values)

    @asynccontextmanager
    async def querier(self, start, end):
        async with self.a.querier(start, end) as qa, self.b.querier(start, end) as qb:
            yield MergeQuerier([qa], [qb])


@pytest.fixture(params=["memory", "storage", "storage-blocks", "storage-half", "merge"])
async def queryable(request, tmp_path):
    data = dataset()
    if request.param == "memory":
        yield await load_memory(tmp_path, data)
        return
    if request.param == "merge":
        yield MergedMemories(data)
        return
    flush_after = {"storage": None, "storage-blocks": -1, "storage-half": 30}[request.param]
    storage = await load_storage(tmp_path, data, flush_after)
    if flush_after is not None:
        assert len(storage.catalog) >= 2
    if flush_after == -1:
        assert storage.stats().samples == 0  # everything is in blocks
    yield storage
    await storage.close()


@pytest.fixture
async def reference(tmp_path):
    return await load_memory(tmp_path, dataset())


SELECTS = [
    ([Matcher(T.EQ, "__name__", "up")], T0, T0 + 200 * STEP),
    ([Matcher(T.EQ, "__name__", "up")], T0 + 10 * STEP, T0 + 20 * STEP),
    ([Matcher(T.RE, "__name__", ".+"), Matcher(T.EQ, "cluster", "")], T0, T0 + 200 * STEP),
    ([Matcher(T.RE, "job", "api|db"), Matcher(T.NEQ, "cluster", "eu")], T0, T0 + 50 * STEP),
    ([Matcher(T.RE, "instance", "10.0.0.1.*")], T0 + 5 * STEP + 1, T0 + 30 * STEP - 1),
    ([Matcher(T.NRE, "zone", "a"), Matcher(T.EQ, "job", "web")], T0, T0 + 200 * STEP),
    ([Matcher(T.EQ, "zone", "b"), Matcher(T.RE, "__name__", "node_.*")], T0, T0 + 200 * STEP),
    ([Matcher(T.EQ, "__name__", "nope")], T0, T0 + 200 * STEP),
    ([Matcher(T.EQ, "__name__", "up")], T0 + 500 * STEP, T0 + 600 * STEP),
    ([Matcher(T.EQ, "__name__", "up")], T0 + 30 * STEP, T0 + 30 * STEP),
]


@pytest.mark.parametrize(("matchers", "start", "end"), SELECTS, ids=lambda x: str(x))
async def test_select(queryable, reference, matchers, start, end):
    async with reference.querier(start, end) as q:
        want = await q.select(matchers, start, end)
    async with queryable.querier(start, end) as q:
        got = await q.select(matchers, start, end)
    assert got.labels == want.labels
    assert got.offsets.tolist() == want.offsets.tolist()
    assert got.timestamps.tolist() == want.timestamps.tolist()
    assert got.values.view(np.uint64).tolist() == want.values.view(np.uint64).tolist()
    assert got.timestamps.dtype == np.int64
    assert got.values.dtype == np.float64


@pytest.mark.parametrize(("matchers", "start", "end"), SELECTS[:5], ids=lambda x: str(x))
async def test_select_sample_limit(queryable, reference, matchers, start, end):
    """A select refuses past `sample_limit` samples and answers in full at the limit."""
    async with reference.querier(start, end) as q:
        total = (await q.select(matchers, start, end)).num_samples
    assert total > 1
    async with queryable.querier(start, end) as q:
        with pytest.raises(SampleLimitExceeded) as refused:
            await q.select(matchers, start, end, hints=SelectHints(sample_limit=total - 1))
        assert refused.value.limit == total - 1
        assert refused.value.samples >= total
        got = await q.select(matchers, start, end, hints=SelectHints(sample_limit=total))
    assert got.num_samples == total


LABEL_QUERIES = [
    ("names", None, []),
    ("names", None, [Matcher(T.EQ, "zone", "a")]),
    ("values", "job", []),
    ("values", "cluster", [Matcher(T.EQ, "__name__", "up")]),
    ("values", "zone", [Matcher(T.RE, "job", "api|web")]),
    ("values", "missing", []),
    ("values", "instance", [Matcher(T.EQ, "job", "db")]),
]


@pytest.mark.parametrize(("kind", "name", "matchers"), LABEL_QUERIES, ids=str)
@pytest.mark.parametrize("limit", [None, 2])
async def test_label_queries(queryable, reference, kind, name, matchers, limit):
    start, end = T0 - STEP, T0 + 500 * STEP

    async def ask(store):
        async with store.querier(start, end) as q:
            if kind == "names":
                return (await q.label_names(matchers, limit=limit)).values
            return (await q.label_values(name, matchers, limit=limit)).values

    assert await ask(queryable) == await ask(reference)
