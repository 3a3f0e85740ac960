"""The numpy XOR chunk encoder against a plain sample-by-sample decoder."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from remote_write.xor import SAMPLES_PER_CHUNK, encode_xor_chunks
from tests.support.xor_reference import decode_xor_chunk

SPECIAL = [0.0, -0.0, 1.0, np.nan, np.inf, -np.inf, 1e300, 5e-324, 0.1, 2.5e-3]


def _decoded(offsets, ts, values):
    chunks = encode_xor_chunks(offsets, ts, values)
    per_series: dict[int, list[tuple[int, int]]] = {}
    for series, lo, hi, data in zip(
        chunks.series.tolist(),
        chunks.min_t.tolist(),
        chunks.max_t.tolist(),
        chunks.data,
        strict=True,
    ):
        points = decode_xor_chunk(data)
        assert points[0][0] == lo
        assert points[-1][0] == hi
        assert len(points) <= SAMPLES_PER_CHUNK
        bits = [(t, int(np.float64(v).view(np.uint64))) for t, v in points]
        per_series.setdefault(series, []).extend(bits)
    return per_series


series_strategy = st.lists(
    st.tuples(
        st.lists(
            st.sampled_from([1, 1000, 14_999, 15_000, 15_001, 60_000, 1 << 20, 1 << 40]),
            max_size=300,
        ),
        st.integers(-(1 << 50), 1 << 50),
        st.sampled_from(["random", "counter", "special", "constant"]),
        st.integers(0, 1 << 30),
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=60, deadline=None)
@given(series_strategy)
def test_every_sample_decodes_bit_exact(spec):
    ts_parts, val_parts, sizes = [], [], []
    for steps, start, kind, seed in spec:
        rng = np.random.default_rng(seed)
        ts = start + np.cumsum(np.asarray(steps, dtype=np.int64))
        n = len(ts)
        if kind == "random":
            values = rng.normal(size=n) * 10.0 ** rng.integers(-5, 10)
        elif kind == "counter":
            values = np.cumsum(rng.integers(0, 50, size=n)).astype(np.float64)
        elif kind == "special":
            values = rng.choice(SPECIAL, size=n)
        else:
            values = np.full(n, 42.5)
        ts_parts.append(ts)
        val_parts.append(values)
        sizes.append(n)
    offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    ts = np.concatenate(ts_parts).astype(np.int64)
    values = np.concatenate(val_parts).astype(np.float64)
    got = _decoded(offsets, ts, values)
    for i in range(len(sizes)):
        lo, hi = offsets[i], offsets[i + 1]
        want = list(zip(ts[lo:hi].tolist(), values[lo:hi].view(np.uint64).tolist(), strict=True))
        assert got.get(i, []) == want


def test_scrape_like_data_compresses_like_gorilla():
    n = 12_000
    offsets = np.arange(0, n + 1, 1200, dtype=np.int64)
    ts = np.tile(1_700_000_000_000 + np.arange(1200, dtype=np.int64) * 15_000, 10)
    values = np.cumsum(np.random.default_rng(1).integers(0, 10, n)).astype(np.float64)
    chunks = encode_xor_chunks(offsets, ts, values)
    assert len(chunks.data) == 100  # 120 samples per chunk
    assert sum(map(len, chunks.data)) / n < 2.5  # bytes per sample


def test_no_samples_no_chunks():
    chunks = encode_xor_chunks(np.zeros(3, np.int64), np.zeros(0, np.int64), np.zeros(0))
    assert chunks.data == []
