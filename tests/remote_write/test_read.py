"""Remote-read bytes: requests, SAMPLES answers and streamed frames round-trip."""

from __future__ import annotations

import cramjam
import numpy as np
import pytest

from remote_write.errors import DecodeError
from remote_write.prompb import remote_pb2
from remote_write.read import (
    SAMPLES,
    STREAMED_XOR_CHUNKS,
    ReadHints,
    ReadQuery,
    decode_read_request,
    decode_read_response,
    encode_chunked_frames,
    encode_query_result,
    encode_read_request,
    encode_read_response,
    frame,
    read_frames,
)
from tests.support.xor_reference import decode_xor_chunk

LABELS = [
    (("__name__", "a"), ("job", "x")),
    (("__name__", "b"),),
    (("__name__", "c"), ("é", "ü" * 200)),
]
OFFSETS = np.array([0, 3, 3, 6], dtype=np.int64)
TS = np.array([1, 5, 1 << 40, -7, 1_700_000_000_000, 1 << 62], dtype=np.int64)
VALUES = np.array([1.5, np.nan, -0.0, 3.0, 4.0, 5.5])


def test_request_round_trip_and_response_type_choice():
    q = ReadQuery(1, 2, (("=~", "a", "b.*"), ("!=", "c", "")), ReadHints(step_ms=5, func="series"))
    read = decode_read_request(encode_read_request([q], [STREAMED_XOR_CHUNKS, SAMPLES]))
    assert read.queries == [q]
    assert read.streamed
    assert not decode_read_request(encode_read_request([q])).streamed


def test_samples_answer_is_what_protobuf_encodes():
    body = encode_read_response([encode_query_result(LABELS, OFFSETS, TS, VALUES)])
    parsed = remote_pb2.ReadResponse.FromString(cramjam.snappy.decompress_raw(body).read())
    (result,) = parsed.results
    got = [
        (tuple((lb.name, lb.value) for lb in s.labels), [(x.timestamp, x.value) for x in s.samples])
        for s in result.timeseries
    ]
    assert [g[0] for g in got] == LABELS
    assert got[0][1][0] == (1, 1.5)
    assert np.isnan(got[0][1][1][1])
    assert got[1][1] == []
    assert got[2][1] == [(-7, 3.0), (1_700_000_000_000, 4.0), (1 << 62, 5.5)]


def test_samples_answer_decodes_in_bulk():
    (decoded,) = decode_read_response(
        encode_read_response([encode_query_result(LABELS, OFFSETS, TS, VALUES)])
    )
    b = decoded.batch
    assert [tuple(b.series[i]) for i in range(len(b.series))] == LABELS
    assert b.series_idx.tolist() == [0, 0, 0, 2, 2, 2]
    assert b.timestamps.tolist() == TS.tolist()
    assert b.values.view(np.uint64).tolist() == VALUES.view(np.uint64).tolist()


def test_streamed_frames_carry_xor_chunks_per_series():
    frames = b"".join(encode_chunked_frames(3, LABELS, OFFSETS, TS, VALUES, max_frame_bytes=1))
    messages = list(read_frames(frames))
    assert [m.query_index for m in messages] == [3, 3]  # one series per frame; b has no samples
    series = [cs for m in messages for cs in m.chunked_series]
    assert [tuple((lb.name, lb.value) for lb in s.labels) for s in series] == [LABELS[0], LABELS[2]]
    points = [p for c in series[1].chunks for p in decode_xor_chunk(c.data)]
    assert points == [(-7, 3.0), (1_700_000_000_000, 4.0), (1 << 62, 5.5)]


def test_damaged_frames_and_bodies_are_decode_errors():
    good = frame(remote_pb2.ChunkedReadResponse(query_index=1).SerializeToString() + b"\x10\x01")
    with pytest.raises(DecodeError, match="checksum"):
        list(read_frames(good[:-1] + b"\x02"))
    with pytest.raises(DecodeError, match="past the end"):
        list(read_frames(good[:-1]))
    with pytest.raises(DecodeError, match="snappy"):
        decode_read_request(b"not snappy")
