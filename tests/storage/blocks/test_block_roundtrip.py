"""A block written and read back gives every sample back bit for bit."""

import numpy as np
import pytest

from remote_write.batch import STALE_NAN, STALE_NAN_BITS
from storage.blocks.cache import ReadCost
from storage.blocks.meta import BlockMeta
from storage.labels import Labels, Matcher, MatchType
from storage.objstore import MemoryStore
from tests.storage.blocks.helpers import batch_of, reader, upload, write_block

T0 = 1_700_000_000_000


def awkward_series():
    """Series covering every way values are coded: ints, decimals, floats, specials."""
    rng = np.random.default_rng(1)
    n = 500
    ts = T0 + np.arange(n, dtype=np.int64) * 15_000
    out = []

    def add(name, values, **labels):
        out.append((Labels.from_dict({"__name__": name, **labels}), ts, np.asarray(values)))

    add("counter_int", np.cumsum(rng.poisson(20, n)).astype(float), cluster="eu")
    add("cpu_seconds", np.round(np.cumsum(rng.uniform(0, 15, n)), 2), cluster="eu")
    add("load", np.round(rng.uniform(0, 4, n), 2), cluster="us")
    add("sum_float", np.cumsum(rng.gamma(2, 0.013, n)), cluster="us")
    specials = rng.uniform(-1e300, 1e300, n)
    specials[::7] = np.nan
    specials[1::7] = np.inf
    specials[2::7] = -np.inf
    specials[3::7] = -0.0
    specials[4::7] = STALE_NAN
    specials[5::7] = 5e-324  # the smallest subnormal
    add("specials", specials, cluster="us")
    ints = np.cumsum(rng.integers(0, 100, n)).astype(float)
    ints[-1] = STALE_NAN  # a series ending with a stale marker stays integer-coded
    ints[100] = 0.1 + 0.2  # one value no small decimal scale reaches
    add("mostly_int", ints, cluster="eu", job="a")
    add("big_ints", (2.0**60) + np.arange(n) * 2.0**10, cluster="eu")
    add("tiny", np.full(n, 1e-12), cluster="")
    add("const", np.ones(n), job="x")
    return out


@pytest.fixture
async def block(tmp_path):
    series = awkward_series()
    meta = write_block(tmp_path, [batch_of(series)])
    store = MemoryStore()
    await upload(store, tmp_path, meta)
    return series, meta, store


def bits(a):
    return np.asarray(a, dtype=np.float64).view(np.uint64)


async def test_every_value_comes_back_bit_exact(block):
    series, meta, store = block
    r = reader(store, meta)
    cost = ReadCost()
    table = await r.series_table(cost)
    ids = table.select([], -(1 << 62), 1 << 62)
    data = await r.read(ids, -(1 << 62), 1 << 62, cost)
    by_labels = {lbl: (ts, vals) for lbl, ts, vals in series}
    assert len(ids) == len(series)
    for k, i in enumerate(ids.tolist()):
        lo, hi = data.offsets[k], data.offsets[k + 1]
        ts, vals = by_labels[table.labels[i]]
        assert data.timestamps[lo:hi].tolist() == ts.tolist()
        assert bits(data.columns["value"][lo:hi]).tolist() == bits(vals).tolist(), table.labels[i]
    stale = bits(data.columns["value"]) == STALE_NAN_BITS
    assert stale.sum() == 1 + 500 // 7 + (1 if 4 + 7 * (500 // 7) < 500 else 0)


async def test_meta_describes_the_block(block, tmp_path):
    series, meta, _ = block
    assert meta.series == len(series)
    assert meta.samples == sum(len(s[1]) for s in series)
    assert meta.clusters == ("", "eu", "us")
    assert meta.min_time == T0
    assert meta.max_time == T0 + 499 * 15_000
    again = BlockMeta.from_json((tmp_path / meta.id / "meta.json").read_bytes())
    assert again == meta


async def test_decimal_values_are_stored_as_integers(block, tmp_path):
    import pyarrow.parquet as pq

    _, meta, _ = block
    series = pq.read_table(tmp_path / meta.id / "series.parquet").to_pandas()
    scales = dict(zip(series.metric, series.value_scale, strict=True))
    assert scales["counter_int"] == 0
    assert scales["cpu_seconds"] == 2
    assert scales["load"] == 2
    assert scales["mostly_int"] == 0
    assert np.isnan(scales["sum_float"])  # null: stored as float64
    assert np.isnan(scales["specials"])


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (T0, T0 + 499 * 15_000),
        (T0 + 15_000 * 10 + 1, T0 + 15_000 * 20),
        (T0 + 15_000 * 100, T0 + 15_000 * 100),
        (T0 - 10_000, T0 + 15_000 * 3 - 1),
        (T0 + 499 * 15_000 + 1, T0 + 600 * 15_000),
    ],
)
async def test_time_range_is_inclusive_and_trimmed(block, start, end):
    series, meta, store = block
    r = reader(store, meta)
    cost = ReadCost()
    table = await r.series_table(cost)
    ids = table.select([Matcher(MatchType.RE, "__name__", "counter_int|load")], start, end)
    data = await r.read(ids, start, end, cost)
    want = {lbl: (ts, v) for lbl, ts, v in series}
    for k, i in enumerate(ids.tolist()):
        ts, vals = want[table.labels[i]]
        keep = (ts >= start) & (ts <= end)
        lo, hi = data.offsets[k], data.offsets[k + 1]
        assert data.timestamps[lo:hi].tolist() == ts[keep].tolist()
        assert bits(data.columns["value"][lo:hi]).tolist() == bits(vals[keep]).tolist()


async def test_matchers_select_series_like_the_head(block):
    _, meta, store = block
    table = await reader(store, meta).series_table(ReadCost())
    big = (-(1 << 62), 1 << 62)

    def names(*ms):
        return sorted(table.labels[i].get("__name__") for i in table.select(list(ms), *big))

    assert names(Matcher(MatchType.EQ, "cluster", "us")) == ["load", "specials", "sum_float"]
    assert names(Matcher(MatchType.EQ, "cluster", "")) == ["const", "tiny"]
    assert names(Matcher(MatchType.NEQ, "job", "")) == ["const", "mostly_int"]
    assert names(Matcher(MatchType.RE, "__name__", "c.*")) == [
        "const",
        "counter_int",
        "cpu_seconds",
    ]
    assert names(Matcher(MatchType.NRE, "cluster", "eu|us")) == ["const", "tiny"]
    assert names(Matcher(MatchType.EQ, "__name__", "nope")) == []
