"""Remote write 2.0 decoding: requests built with the schema generated from the spec."""

from __future__ import annotations

import math

import numpy as np
import pytest
import snappy

from remote_write.batch import WriteBatch
from remote_write.codec import decode_write_request, encode_write_request
from remote_write.codec_v2 import (
    BAD_SYMBOL_REFERENCE,
    MALFORMED_LABELS_REFS,
    decode_write_request_v2,
)
from remote_write.errors import DecodeError
from remote_write.prompb import write_v2_pb2
from remote_write.symbols import SymbolIds
from tests.support.rw2 import SeriesV2, build_v2, request_v2

T = 1_700_000_000_000
UP = (("__name__", "up"), ("instance", "a:9100"), ("job", "node"))
REQS = (("__name__", "http_requests_total"), ("code", "200"), ("job", "api"))


def decode(body: bytes, ids: SymbolIds | None = None):
    return decode_write_request_v2(body, symbol_ids=ids if ids is not None else SymbolIds())


def test_floats_come_out_as_columns_with_their_labels():
    decoded = decode(
        request_v2(
            [
                SeriesV2(UP, [(T, 1.0), (T + 15_000, 0.0)]),
                SeriesV2(REQS, [(T, 1027.5)]),
            ]
        )
    )
    batch = decoded.batch
    assert list(batch.series) == [UP, REQS]
    assert batch.series_idx.tolist() == [0, 0, 1]
    assert batch.timestamps.tolist() == [T, T + 15_000, T]
    assert batch.values.tolist() == [1.0, 0.0, 1027.5]
    assert decoded.rejected == []
    assert batch.encoded_format == 2


def test_special_values_and_negative_timestamps_survive():
    stale = float(np.array([0x7FF0000000000002], dtype=np.uint64).view(np.float64)[0])
    batch = decode(request_v2([SeriesV2(UP, [(-5, math.inf), (0, -0.0), (7, stale)])])).batch
    assert batch.timestamps.tolist() == [-5, 0, 7]
    bits = batch.values.view(np.uint64).tolist()
    assert bits[0] == np.array([math.inf]).view(np.uint64)[0]
    assert bits[1] == 1 << 63  # -0.0 kept
    assert bits[2] == 0x7FF0000000000002  # the stale marker, bit for bit


def test_keys_match_across_requests_whatever_the_symbol_order():
    ids = SymbolIds()
    one = decode(request_v2([SeriesV2(UP, [(T, 1.0)]), SeriesV2(REQS, [(T, 2.0)])]), ids).batch
    # The other order gives another symbols table and other references.
    two = decode(request_v2([SeriesV2(REQS, [(T, 2.0)]), SeriesV2(UP, [(T, 1.0)])]), ids).batch
    assert one.series_keys is not None
    assert two.series_keys is not None
    assert one.series_keys[0] == two.series_keys[1]
    assert one.series_keys[1] == two.series_keys[0]
    assert one.series_keys[0] != one.series_keys[1]


def test_keys_never_equal_a_1_0_key():
    v2 = decode(request_v2([SeriesV2(UP, [(T, 1.0)])])).batch
    v1 = decode_write_request(encode_write_request(WriteBatch.from_series([(UP, [T], [1.0])])))
    assert v2.series_keys is not None
    assert v1.batch.series_keys is not None
    assert v2.series_keys[0] != v1.batch.series_keys[0]
    assert v2.series_keys[0][:1] == b"\xff"


def test_keys_of_two_symbol_tables_never_meet():
    # The same strings get the same ids in two fresh tables; the keys still differ,
    # so a head never confuses one table's series with another's.
    body = request_v2([SeriesV2(UP, [(T, 1.0)])])
    one = decode(body, SymbolIds()).batch.series_keys
    two = decode(body, SymbolIds()).batch.series_keys
    assert one is not None
    assert two is not None
    assert one[0] != two[0]
    assert one[0][4:] == two[0][4:]


def test_symbol_ids_outlive_a_generation_for_strings_in_use():
    ids = SymbolIds(generation_size=4)
    first = ids.ids([b"", b"a", b"b", b"c"]).tolist()
    ids.ids([b"d"])  # the current generation was full: a..c are the previous one now
    again = ids.ids([b"", b"a", b"b", b"c"]).tolist()
    assert again == first  # found in the previous generation: same ids
    ids.ids([f"x{i}".encode() for i in range(20)])  # now a..c are two generations old
    assert ids.ids([b"a"]).tolist() != [first[1]]  # a new id, never a reused one
    assert len(set(ids.ids([b"a", b"x19"]).tolist())) == 2


def test_metadata_is_kept_per_metric_family():
    batch = decode(
        request_v2(
            [
                SeriesV2(REQS, [(T, 1.0)], metric_type="counter", help="Requests.", unit=""),
                SeriesV2(
                    (("__name__", "rpc_seconds_bucket"), ("le", "0.5")),
                    [(T, 3.0)],
                    metric_type="histogram",
                    help="RPC latency.",
                    unit="seconds",
                ),
                SeriesV2((("__name__", "rpc_seconds_count"),), [(T, 4.0)], metric_type="histogram"),
                SeriesV2(UP, [(T, 1.0)]),  # no metadata
            ]
        )
    ).batch
    got = {(m.metric_family_name, m.type, m.help, m.unit) for m in batch.metadata}
    assert ("http_requests_total", "counter", "Requests.", "") in got
    assert ("rpc_seconds", "histogram", "RPC latency.", "seconds") in got
    assert {m.metric_family_name for m in batch.metadata} == {"http_requests_total", "rpc_seconds"}


def test_exemplars_belong_to_their_series():
    batch = decode(
        request_v2(
            [
                SeriesV2(UP, [(T, 1.0)]),
                SeriesV2(
                    REQS,
                    [(T, 5.0)],
                    exemplars=[
                        ((("trace_id", "abc"),), 0.25, T - 10),
                        ((("span_id", "s1"), ("trace_id", "def")), 0.5, T - 5),
                    ],
                ),
            ]
        )
    ).batch
    ex = batch.exemplars
    assert ex is not None
    assert ex.series_idx.tolist() == [1, 1]
    assert ex.timestamps.tolist() == [T - 10, T - 5]
    assert ex.values.tolist() == [0.25, 0.5]
    assert list(ex.labels) == [(("trace_id", "abc"),), (("span_id", "s1"), ("trace_id", "def"))]


def test_created_timestamps_are_read_and_counted():
    decoded = decode(
        request_v2(
            [
                SeriesV2(REQS, [(T, 1.0)], metric_type="counter", created_ms=T - 60_000),
                SeriesV2(UP, [(T, 1.0)]),
            ]
        )
    )
    assert decoded.created == 1
    assert decoded.batch.values.tolist() == [1.0, 1.0]


def test_integer_float_and_custom_bucket_histograms_are_decoded():
    batch = decode(
        request_v2(
            [
                SeriesV2(
                    (("__name__", "rpc_seconds"),),
                    histograms=[
                        {
                            "count_int": 6,
                            "sum": 3.5,
                            "schema": 1,
                            "zero_threshold": 1e-128,
                            "zero_count_int": 1,
                            "positive_spans": [write_v2_pb2.BucketSpan(offset=0, length=2)],
                            "positive_deltas": [2, 1],  # counts 2, 3
                            "timestamp": T,
                        }
                    ],
                ),
                SeriesV2(
                    (("__name__", "ratio"),),
                    histograms=[
                        {
                            "count_float": 2.5,
                            "sum": 1.0,
                            "schema": -53,
                            "positive_spans": [write_v2_pb2.BucketSpan(offset=0, length=2)],
                            "positive_counts": [1.5, 1.0],
                            "custom_values": [0.5, 1.0],
                            "reset_hint": 3,
                            "timestamp": T + 1,
                        }
                    ],
                ),
                SeriesV2(UP, [(T, 1.0)]),
            ]
        )
    ).batch
    hb = batch.histograms
    assert hb is not None
    assert hb.series_idx.tolist() == [0, 1]
    assert hb.timestamps.tolist() == [T, T + 1]
    assert hb.schema.tolist() == [1, -53]
    assert hb.count.tolist() == [6.0, 2.5]
    assert hb.pos_counts.tolist() == [2.0, 3.0, 1.5, 1.0]
    assert hb.custom_values.tolist() == [0.5, 1.0]
    assert batch.values.tolist() == [1.0]


def test_a_bad_symbol_reference_refuses_only_its_series():
    request = build_v2([SeriesV2(UP, [(T, 1.0)]), SeriesV2(REQS, [(T, 2.0), (T + 1, 3.0)])])
    request.timeseries[1].labels_refs[3] = 999
    decoded = decode(snappy.compress(request.SerializeToString()))
    assert list(decoded.batch.series) == [UP]
    assert decoded.batch.values.tolist() == [1.0]
    (rejection,) = decoded.rejected
    assert rejection.reason == BAD_SYMBOL_REFERENCE
    assert rejection.samples == 2
    assert "label reference 999 is past the symbols table" in rejection.message
    assert "series #1 of the request" in rejection.message


def test_a_bad_exemplar_or_metadata_reference_refuses_its_series():
    request = build_v2(
        [
            SeriesV2(UP, [(T, 1.0)], exemplars=[((("trace_id", "a"),), 1.0, T)]),
            SeriesV2(REQS, [(T, 2.0)], metric_type="counter", help="h"),
        ]
    )
    request.timeseries[0].exemplars[0].labels_refs[1] = 500
    request.timeseries[1].metadata.help_ref = 400
    decoded = decode(snappy.compress(request.SerializeToString()))
    assert decoded.batch.num_samples == 0
    assert sorted(r.reason for r in decoded.rejected) == [BAD_SYMBOL_REFERENCE] * 2
    assert any("metadata reference 400" in r.message for r in decoded.rejected)


def test_an_odd_number_of_references_is_malformed():
    request = build_v2([SeriesV2(UP, [(T, 1.0)]), SeriesV2(REQS, [(T, 2.0)])])
    del request.timeseries[0].labels_refs[-1]
    decoded = decode(snappy.compress(request.SerializeToString()))
    assert list(decoded.batch.series) == [REQS]
    (rejection,) = decoded.rejected
    assert rejection.reason == MALFORMED_LABELS_REFS
    assert "odd number of references" in rejection.message


def test_a_request_without_symbols_is_refused_whole():
    request = build_v2([SeriesV2(UP, [(T, 1.0)])])
    del request.symbols[:]
    with pytest.raises(DecodeError, match="has no symbols table"):
        decode(snappy.compress(request.SerializeToString()))


def test_the_symbols_table_must_start_with_the_empty_string():
    request = build_v2([SeriesV2(UP, [(T, 1.0)])])
    request.symbols[0] = "oops"
    with pytest.raises(DecodeError, match="must start with the empty string"):
        decode(snappy.compress(request.SerializeToString()))


def test_a_1_0_body_sent_as_2_0_is_refused_not_acknowledged_empty():
    body = encode_write_request(WriteBatch.from_series([(UP, [T], [1.0])]))
    with pytest.raises(DecodeError, match=r"a 1\.0 WriteRequest sent with the 2\.0 Content-Type"):
        decode(body)


def test_an_empty_request_is_an_empty_batch():
    decoded = decode(snappy.compress(b""))
    assert decoded.batch.num_samples == 0
    assert len(decoded.batch.series) == 0


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"\x22\x00\x2a\x03\x0a\x05\x01", "runs past its end"),  # labels_refs cut short
        (b"\x22\x00\x2a\x03\x0b\x00\x00", "not protobuf 3"),  # a group (wire type 3)
        (b"\x22\x00\x2a\x02\x08\x01", "field 1 of TimeSeries #0 has wire type 0"),
    ],
)
def test_broken_protobuf_is_a_decode_error_naming_the_place(raw: bytes, match: str):
    with pytest.raises(DecodeError, match=match):
        decode(snappy.compress(raw))
