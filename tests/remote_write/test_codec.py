"""Remote-write codec: round trips, the bulk sample decoder against upb, bad bodies."""

import math
import struct

import numpy as np
import pytest
import snappy
from hypothesis import given, settings
from hypothesis import strategies as st

from remote_write.batch import STALE_NAN_BITS, SeriesMetadata, WriteBatch, is_stale_nan
from remote_write.codec import decode_samples, decode_write_request, encode_write_request
from remote_write.errors import DecodeError, PayloadTooLarge
from remote_write.prompb import remote_pb2, types_pb2
from tests.support.protowire import field, varint

label_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
label_pairs = st.lists(
    st.tuples(st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True), label_text),
    max_size=6,
    unique_by=lambda p: p[0],
)
samples = st.lists(
    st.tuples(
        st.integers(min_value=-(2**62), max_value=2**62),
        st.floats(allow_nan=False) | st.just(0.0) | st.just(-0.0),
    ),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(label_pairs, samples), max_size=8))
def test_round_trip_keeps_labels_and_samples(series):
    batch = WriteBatch.from_series(
        [(tuple(lbl), [t for t, _ in s], [v for _, v in s]) for lbl, s in series]
    )
    decoded = decode_write_request(encode_write_request(batch)).batch
    assert [tuple(s) for s in decoded.series] == [tuple(lbl) for lbl, _ in series]
    assert decoded.series_idx.tolist() == batch.series_idx.tolist()
    assert decoded.timestamps.tolist() == batch.timestamps.tolist()
    # Bit-exact: -0.0 and 0.0 differ, as do NaN payloads.
    assert decoded.values.view(np.uint64).tolist() == batch.values.view(np.uint64).tolist()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(allow_nan=True)),
            st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
            st.booleans(),
        ),
        max_size=20,
    )
)
def test_bulk_sample_decoder_agrees_with_protobuf(specs):
    """Every layout an encoder may produce decodes like upb decodes it."""
    raws = []
    for value, ts, reverse in specs:
        fields = []
        if value is not None:
            fields.append(b"\x09" + struct.pack("<d", value))
        if ts is not None:
            fields.append(b"\x10" + varint(ts & (2**64 - 1)))
        raws.append(b"".join(reversed(fields) if reverse else fields))
    ts_out, vals_out = decode_samples(raws)
    for i, raw in enumerate(raws):
        msg = types_pb2.Sample.FromString(raw)
        assert ts_out[i] == msg.timestamp
        assert struct.pack("<d", vals_out[i]) == struct.pack("<d", msg.value)


def test_unusual_sample_encodings_take_the_slow_path():
    # Repeated value field (last wins) and an unknown field: valid protobuf.
    raws = [
        b"\x09" + struct.pack("<d", 1.0) + b"\x09" + struct.pack("<d", 2.0) + b"\x10\x05",
        b"\x18\x07\x09" + struct.pack("<d", 3.0) + b"\x10\x06",
    ]
    ts, vals = decode_samples(raws)
    assert ts.tolist() == [5, 6]
    assert vals.tolist() == [2.0, 3.0]


def test_stale_marker_survives_bit_exact():
    stale = np.array([STALE_NAN_BITS], dtype=np.uint64).view(np.float64)[0]
    batch = WriteBatch.from_series([((("__name__", "up"),), [1000, 2000], [float("nan"), stale])])
    decoded = decode_write_request(encode_write_request(batch)).batch
    assert is_stale_nan(decoded.values).tolist() == [False, True]
    assert math.isnan(decoded.values[0])


def test_series_keys_identify_label_sets():
    a = (("__name__", "up"), ("job", "x"))
    b = (("__name__", "up"), ("job", "y"))
    one = decode_write_request(encode_write_request(WriteBatch.from_series([(a, [1], [1.0])])))
    two = decode_write_request(
        encode_write_request(WriteBatch.from_series([(b, [2], [1.0]), (a, [2], [2.0])]))
    )
    assert one.batch.series_keys[0] == two.batch.series_keys[1]
    assert one.batch.series_keys[0] != two.batch.series_keys[0]


def test_invalid_utf8_label_is_kept_for_validation_not_a_decode_error():
    # A Label whose value is not UTF-8: upb would refuse the whole request.
    series = (
        field(1, field(1, b"__name__") + field(2, b"up"))
        + field(1, field(1, b"a") + field(2, b"\xff\xfe"))
        + field(2, b"\x10\x01")
    )
    decoded = decode_write_request(snappy.compress(field(1, series))).batch
    labels = decoded.series[0]
    assert labels[0] == ("__name__", "up")
    assert labels[1][0] == "a"
    with pytest.raises(UnicodeEncodeError):
        labels[1][1].encode("utf-8")
    assert decoded.timestamps.tolist() == [1]


def test_histograms_and_exemplars_are_decoded():
    request = remote_pb2.WriteRequest()
    series = request.timeseries.add()
    series.labels.add(name="__name__", value="h")
    series.samples.add(value=1.0, timestamp=10)
    series.histograms.add(count_int=3, timestamp=10)
    series.histograms.add(count_int=4, timestamp=20)
    ex = series.exemplars.add(value=1.0, timestamp=10)
    ex.labels.add(name="trace_id", value="abc")
    decoded = decode_write_request(snappy.compress(request.SerializeToString()))
    assert decoded.dropped == {}
    ex_batch = decoded.batch.exemplars
    assert ex_batch is not None
    assert (ex_batch.series_idx.tolist(), ex_batch.timestamps.tolist()) == ([0], [10])
    assert (ex_batch.values.tolist(), list(ex_batch.labels)) == ([1.0], [(("trace_id", "abc"),)])
    assert decoded.batch.values.tolist() == [1.0]
    hb = decoded.batch.histograms
    assert hb is not None
    assert hb.count.tolist() == [3.0, 4.0]
    assert hb.timestamps.tolist() == [10, 20]


def test_metadata_is_decoded():
    batch = WriteBatch.from_series(
        [], metadata=[SeriesMetadata("http_requests_total", "counter", "Requests.", "")]
    )
    decoded = decode_write_request(encode_write_request(batch)).batch
    assert list(decoded.metadata) == [
        SeriesMetadata("http_requests_total", "counter", "Requests.", "")
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "snappy: empty body"),
        (b"\xff\xff\xff\xff\xff\xff", "snappy: corrupt input"),
        (b"\x10not snappy at all", "snappy: corrupt input"),
        (snappy.compress(b"\x0a\x05\x0a\x03"), "protobuf: cannot parse WriteRequest"),
        (snappy.compress(b"\x0b"), "protobuf: cannot parse WriteRequest"),
    ],
)
def test_bad_bodies_raise_decode_error_with_reason(body, message):
    with pytest.raises(DecodeError, match=message):
        decode_write_request(body)


def test_decoded_size_limit_checked_before_decompressing():
    body = snappy.compress(b"\x00" * 10_000)
    with pytest.raises(PayloadTooLarge, match="10000 bytes exceeds the limit of 1000 bytes"):
        decode_write_request(body, max_decoded_bytes=1000)


@pytest.mark.parametrize("width", range(1, 11))
def test_uniform_samples_of_every_timestamp_width(width):
    """All samples of one size (the usual request): the word-wise decoder, or the
    general one for widths it leaves alone, must match upb for each width."""
    rng = np.random.default_rng(width)
    low, high = (1 << (7 * (width - 1))) if width > 1 else 0, (1 << (7 * width)) - 1
    raws = []
    for _ in range(40):
        ts = (
            int(rng.integers(low, min(high, 2**63 - 1), endpoint=True))
            if width < 10
            else -int(rng.integers(1, 2**40))
        )
        raws.append(b"\x09" + struct.pack("<d", float(rng.normal())) + b"\x10" + varint(ts % 2**64))
    assert len({len(r) for r in raws}) == 1
    ts_out, vals_out = decode_samples(raws)
    for i, raw in enumerate(raws):
        msg = types_pb2.Sample.FromString(raw)
        assert ts_out[i] == msg.timestamp
        assert vals_out[i] == msg.value


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.integers(min_value=-(2**40), max_value=2**45),
                st.sampled_from([0.0, 1.5, -2.0, float("inf")]),
            ),
            max_size=20,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_samples_per_series_in_any_count_and_size(per_series):
    """Series with 0 to 20 samples, of one field size or mixed (zero values and
    timestamps leave fields out): each sample lands in its own series."""
    batch = WriteBatch.from_series(
        [
            ((("__name__", f"m{i}"),), [t for t, _ in s], [v for _, v in s])
            for i, s in enumerate(per_series)
        ]
    )
    decoded = decode_write_request(encode_write_request(batch)).batch
    assert decoded.series_idx.tolist() == batch.series_idx.tolist()
    assert decoded.timestamps.tolist() == batch.timestamps.tolist()
    assert decoded.values.tolist() == batch.values.tolist()


@pytest.mark.parametrize(
    "body",
    [
        snappy.compress(b"x" * 100)[:-3],  # truncated
        b"\x64" + snappy.compress(b"x" * 10)[1:],  # announces 100 bytes, holds 10
    ],
)
def test_corrupt_snappy_is_a_decode_error(body):
    with pytest.raises(DecodeError, match=r"^snappy: corrupt input \(.+\)$"):
        decode_write_request(body)
