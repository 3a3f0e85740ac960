"""Bulk native-histogram decoding against protobuf's own parser, on random histograms."""

from __future__ import annotations

import random

import numpy as np
import pytest
import snappy

from remote_write.codec import decode_write_request, encode_write_request
from remote_write.errors import DecodeError
from remote_write.histdecode import decode_histogram_messages
from remote_write.histograms import buckets_from_spans
from remote_write.prompb import remote_pb2, types_pb2


def random_histogram(rng: random.Random, ts: int) -> types_pb2.Histogram:
    h = types_pb2.Histogram(timestamp=ts, schema=rng.choice([-4, 0, 3, 8, -53]))
    floats = rng.random() < 0.5
    h.sum = rng.uniform(-100, 100)
    h.reset_hint = rng.randrange(4)  # type: ignore[assignment]
    if h.schema != -53:
        h.zero_threshold = rng.choice([0.0, 1e-128, 0.001])
    for spans, deltas, counts in (
        (h.positive_spans, h.positive_deltas, h.positive_counts),
        (h.negative_spans, h.negative_deltas, h.negative_counts),
    ):
        if h.schema == -53 and spans is h.negative_spans:
            continue
        n = 0
        for k in range(rng.randrange(4)):
            length = rng.randrange(1, 5)
            spans.add(
                offset=rng.randrange(-300, 300) if k == 0 else rng.randrange(0, 9), length=length
            )
            n += length
        if floats:
            counts.extend(rng.uniform(0, 50) for _ in range(n))
        else:
            deltas.extend(rng.randrange(-(2**40), 2**40) for _ in range(n))
    if h.schema == -53:
        h.custom_values.extend(sorted(rng.uniform(-10, 10) for _ in range(rng.randrange(1, 6))))
    if floats:
        h.count_float = rng.uniform(0, 1000)
        h.zero_count_float = rng.uniform(0, 5)
    else:
        h.count_int = rng.randrange(2**50)
        h.zero_count_int = rng.randrange(2**20)
    return h


def expected_buckets(spans, values, deltas: bool) -> dict[int, float]:
    out, idx, k, acc = {}, 0, 0, 0
    for j, s in enumerate(spans):
        idx = s.offset if j == 0 else idx + s.offset
        for _ in range(s.length):
            acc = acc + values[k] if deltas else values[k]
            out[idx] = float(acc)
            idx += 1
            k += 1
    return out


@pytest.mark.parametrize("seed", range(5))
def test_decode_matches_protobuf_parser(seed: int) -> None:
    rng = random.Random(seed)
    msgs = [random_histogram(rng, 1000 + i) for i in range(200)]
    raw = [m.SerializeToString() for m in msgs]
    hb = decode_histogram_messages(raw, np.zeros(len(raw), dtype=np.int32))
    for i, m in enumerate(msgs):
        is_float = m.WhichOneof("count") == "count_float"
        assert hb.float_counts[i] == (
            is_float or len(m.positive_counts) + len(m.negative_counts) > 0
        )
        assert hb.count[i] == (m.count_float if is_float else float(m.count_int))
        assert hb.sum[i] == m.sum
        assert hb.schema[i] == m.schema
        assert hb.timestamps[i] == m.timestamp
        assert hb.reset_hint[i] == m.reset_hint
        for side, spans, d, c in (
            ("pos", m.positive_spans, m.positive_deltas, m.positive_counts),
            ("neg", m.negative_spans, m.negative_deltas, m.negative_counts),
        ):
            off = getattr(hb, f"{side}_offsets")
            got = dict(
                zip(
                    getattr(hb, f"{side}_index")[off[i] : off[i + 1]].tolist(),
                    getattr(hb, f"{side}_counts")[off[i] : off[i + 1]].tolist(),
                    strict=True,
                )
            )
            want = expected_buckets(spans, list(c) if len(c) else list(d), deltas=not len(c))
            assert got == pytest.approx(want)
        assert hb.custom_values[hb.cv_offsets[i] : hb.cv_offsets[i + 1]].tolist() == list(
            m.custom_values
        )


def test_request_round_trip_and_series_attribution() -> None:
    rng = random.Random(7)
    req = remote_pb2.WriteRequest()
    for s in range(30):
        ts = req.timeseries.add()
        ts.labels.add(name="__name__", value=f"h{s}")
        for k in range(s % 4):
            ts.histograms.append(random_histogram(rng, 10 * k))
    body = snappy.compress(req.SerializeToString())
    batch = decode_write_request(body).batch
    assert batch.histograms is not None
    per_series = np.bincount(batch.histograms.series_idx, minlength=30).tolist()
    assert per_series == [s % 4 for s in range(30)]
    again = decode_write_request(encode_write_request(batch)).batch.histograms
    assert again is not None
    for name in (
        "count",
        "sum",
        "schema",
        "pos_index",
        "pos_counts",
        "neg_counts",
        "custom_values",
    ):
        assert np.array_equal(getattr(again, name), getattr(batch.histograms, name)), name


def test_spans_and_buckets_that_disagree_are_a_decode_error() -> None:
    h = types_pb2.Histogram(count_int=1, timestamp=1)
    h.positive_spans.add(offset=0, length=3)
    h.positive_deltas.extend([1])
    with pytest.raises(DecodeError, match="spans need 3 buckets but 1 were sent"):
        decode_histogram_messages([h.SerializeToString()], np.zeros(1, dtype=np.int32))


def test_buckets_from_spans_expands_in_bulk() -> None:
    off, idx, cnt = buckets_from_spans(
        np.array([0, 2, 2]), np.array([-2, 3]), np.array([2, 1]),
        np.array([0, 3, 3]), np.array([5, -2, 4]), deltas=True,
    )  # fmt: skip
    assert off.tolist() == [0, 3, 3]
    assert idx.tolist() == [-2, -1, 3]
    assert cnt.tolist() == [5.0, 3.0, 7.0]
