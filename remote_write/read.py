"""Remote read: requests, SAMPLES answers and streamed XOR-chunk answers, as bytes.

Both sides of `POST /api/v1/read` (Prometheus `storage/remote/codec.go`,
`chunked.go`): the client encodes a `ReadRequest` (snappy block) and decodes
a `ReadResponse` (snappy block); the server does the reverse, or streams
`ChunkedReadResponse` frames (`uvarint length, big-endian CRC-32C, message`,
not compressed) when the client accepts STREAMED_XOR_CHUNKS.

A `QueryResult` carries its series in field 1 exactly as a `WriteRequest`
does, so answers decode with the write path's bulk decoder
(`codec.decode_series_message`), and encode here with numpy: every sample of
every series is laid out in one pass, Python touching each series once.
Matchers travel as plain `(type, name, value)` tuples: this package knows no
storage types.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import cramjam
import google_crc32c
import numpy as np
import snappy
from google.protobuf.message import DecodeError as ProtobufDecodeError
from numpy.typing import NDArray

from remote_write.codec import DecodedWrite, decode_series_message, decompress
from remote_write.errors import DecodeError
from remote_write.labelkeys import label_key
from remote_write.prompb import remote_pb2, types_pb2
from remote_write.varint import encode_uvarint, read_uvarint
from remote_write.xor import SAMPLES_PER_CHUNK, encode_xor_chunks

SAMPLES = remote_pb2.ReadRequest.SAMPLES
STREAMED_XOR_CHUNKS = remote_pb2.ReadRequest.STREAMED_XOR_CHUNKS
SAMPLES_CONTENT_TYPE = "application/x-protobuf"
STREAMED_CONTENT_TYPE = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"
MAX_FRAME_BYTES = 1 << 20
"""Prometheus's default for one streamed frame (`--storage.remote.read-max-bytes-in-frame`)."""

MATCH_TYPES = ("=", "!=", "=~", "!~")
"""LabelMatcher.Type numbers 0..3 as PromQL operators."""

Pairs = Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class ReadHints:
    """What the reader will do with the data (Prometheus passes them to its querier)."""

    step_ms: int = 0
    func: str = ""
    start_ms: int = 0
    end_ms: int = 0
    grouping: tuple[str, ...] = ()
    by: bool = False
    range_ms: int = 0


@dataclass(frozen=True, slots=True)
class ReadQuery:
    """One query of a ReadRequest: matchers as `(operator, name, value)`, times in ms."""

    start_ms: int
    end_ms: int
    matchers: tuple[tuple[str, str, str], ...]
    hints: ReadHints | None = None


@dataclass(frozen=True, slots=True)
class ReadRequest:
    queries: list[ReadQuery]
    accepted_response_types: list[int] = field(default_factory=list)

    @property
    def streamed(self) -> bool:
        """Whether the answer is streamed chunks: the first accepted type we implement."""
        for kind in self.accepted_response_types:
            if kind in (SAMPLES, STREAMED_XOR_CHUNKS):
                return kind == STREAMED_XOR_CHUNKS
        return False


def encode_read_request(
    queries: Sequence[ReadQuery], accepted: Sequence[int] = (SAMPLES,)
) -> bytes:
    """A snappy-block-compressed ReadRequest."""
    msg = remote_pb2.ReadRequest()
    for q in queries:
        pq = msg.queries.add(start_timestamp_ms=q.start_ms, end_timestamp_ms=q.end_ms)
        for op, name, value in q.matchers:
            pq.matchers.add(type=MATCH_TYPES.index(op), name=name, value=value)
        if q.hints is not None:
            h = q.hints
            pq.hints.CopyFrom(
                types_pb2.ReadHints(
                    step_ms=h.step_ms,
                    func=h.func,
                    start_ms=h.start_ms,
                    end_ms=h.end_ms,
                    grouping=list(h.grouping),
                    by=h.by,
                    range_ms=h.range_ms,
                )
            )
    msg.accepted_response_types.extend(accepted)
    return bytes(snappy.compress(msg.SerializeToString()))


def decode_read_request(body: bytes, *, max_decoded_bytes: int = 0) -> ReadRequest:
    """Decode a snappy-block-compressed ReadRequest; `DecodeError` names what is wrong."""
    raw = decompress(body, max_decoded_bytes=max_decoded_bytes)
    try:
        msg = remote_pb2.ReadRequest.FromString(bytes(raw))
    except ProtobufDecodeError as exc:
        raise DecodeError(f"protobuf: cannot parse ReadRequest ({exc})") from None
    queries = []
    for i, pq in enumerate(msg.queries):
        matchers = []
        for m in pq.matchers:
            if not 0 <= m.type < len(MATCH_TYPES):
                raise DecodeError(f"query {i}: unknown matcher type {m.type}")
            matchers.append((MATCH_TYPES[m.type], m.name, m.value))
        hints = None
        if pq.HasField("hints"):
            h = pq.hints
            hints = ReadHints(
                h.step_ms, h.func, h.start_ms, h.end_ms, tuple(h.grouping), h.by, h.range_ms
            )
        queries.append(
            ReadQuery(pq.start_timestamp_ms, pq.end_timestamp_ms, tuple(matchers), hints)
        )
    return ReadRequest(queries, list(msg.accepted_response_types))


# -- SAMPLES answers -----------------------------------------------------------


def encode_query_result(
    labels: Sequence[Pairs],
    offsets: NDArray[np.int64],
    timestamps: NDArray[np.int64],
    values: NDArray[np.float64],
) -> bytes:
    """A serialized QueryResult: series `i` has `labels[i]` and samples `offsets[i]:offsets[i+1]`.

    Each Sample is `0x12 len 0x09 <8-byte value> 0x10 <varint timestamp>`,
    written for all samples at once; each series adds its tag, length and
    label fields around its run of samples.
    """
    n = len(timestamps)
    ts_u = timestamps.astype(np.int64, copy=False).view(np.uint64)
    vlen = _varint_sizes(ts_u)
    size = 12 + vlen  # 0x12, len, 0x09, 8 bytes, 0x10, varint
    ends = np.cumsum(size)
    pos = ends - size
    buf = np.zeros(int(ends[-1]) if n else 0, dtype=np.uint8)
    if n:
        buf[pos] = 0x12
        buf[pos + 1] = (10 + vlen).astype(np.uint8)
        buf[pos + 2] = 0x09
        raw = values.astype("<f8", copy=False).view(np.uint8).reshape(n, 8)
        buf[(pos + 3)[:, None] + np.arange(8)] = raw
        buf[pos + 11] = 0x10
        for k in range(10):
            more = vlen > k
            if not more.any():
                break
            byte = (ts_u[more] >> np.uint64(7 * k)) & np.uint64(0x7F)
            byte |= (vlen[more] > k + 1).astype(np.uint64) << np.uint64(7)
            buf[pos[more] + 12 + k] = byte.astype(np.uint8)
    data = buf.tobytes()
    bounds = np.concatenate(([0], ends))[offsets].tolist()
    out = []
    for i, pairs in enumerate(labels):
        label_fields = b"".join(b"\x0a" + label_key(n_, v).encode("latin-1") for n_, v in pairs)
        body_len = len(label_fields) + bounds[i + 1] - bounds[i]
        out.append(b"\x0a" + encode_uvarint(body_len) + label_fields)
        out.append(data[bounds[i] : bounds[i + 1]])
    return b"".join(out)


def encode_read_response(results: Sequence[bytes]) -> bytes:
    """A snappy-block-compressed ReadResponse from serialized QueryResults (one per query)."""
    body = b"".join(b"\x0a" + encode_uvarint(len(r)) + r for r in results)
    return bytes(cramjam.snappy.compress_raw(body))


def decode_read_response(body: bytes, *, max_decoded_bytes: int = 0) -> list[DecodedWrite]:
    """Each QueryResult of a SAMPLES answer as a decoded batch of series, in query order."""
    raw = bytes(decompress(body, max_decoded_bytes=max_decoded_bytes))
    results = []
    for number, wire, value in _fields(raw, "ReadResponse"):
        if number == 1 and wire == 2:
            results.append(decode_series_message(value))
    return results


# -- streamed XOR chunks -------------------------------------------------------


def encode_chunked_frames(
    query_index: int,
    labels: Sequence[Pairs],
    offsets: NDArray[np.int64],
    timestamps: NDArray[np.int64],
    values: NDArray[np.float64],
    *,
    max_frame_bytes: int = MAX_FRAME_BYTES,
    samples_per_chunk: int = SAMPLES_PER_CHUNK,
) -> Iterator[bytes]:
    """Framed ChunkedReadResponse messages holding these series as XOR chunks.

    Series are never split across frames; a frame closes once its series
    pass `max_frame_bytes` (a single series may exceed it, as in Prometheus).
    """
    chunks = encode_xor_chunks(offsets, timestamps, values, samples_per_chunk=samples_per_chunk)
    per_series = np.searchsorted(chunks.series, np.arange(len(labels) + 1)).tolist()
    min_t = chunks.min_t.tolist()
    max_t = chunks.max_t.tolist()
    msg = remote_pb2.ChunkedReadResponse(query_index=query_index)
    size = 0
    for i, pairs in enumerate(labels):
        lo, hi = per_series[i], per_series[i + 1]
        if lo == hi:
            continue
        series = msg.chunked_series.add()
        for name, value in pairs:
            series.labels.add(name=name, value=value)
        for k in range(lo, hi):
            series.chunks.add(
                min_time_ms=min_t[k], max_time_ms=max_t[k], type=1, data=chunks.data[k]
            )
            size += len(chunks.data[k]) + 24
        if size >= max_frame_bytes:
            yield frame(msg.SerializeToString())
            msg = remote_pb2.ChunkedReadResponse(query_index=query_index)
            size = 0
    if len(msg.chunked_series):
        yield frame(msg.SerializeToString())


def frame(message: bytes) -> bytes:
    """One stream frame: uvarint length, big-endian CRC-32C (Castagnoli), the message."""
    crc = google_crc32c.value(message)
    return encode_uvarint(len(message)) + crc.to_bytes(4, "big") + message


def read_frames(stream: bytes) -> Iterator[remote_pb2.ChunkedReadResponse]:
    """The ChunkedReadResponse messages of a streamed answer, checking each frame's CRC."""
    pos = 0
    while pos < len(stream):
        length, pos = read_uvarint(stream, pos)
        if pos + 4 + length > len(stream):
            raise DecodeError("chunked read response: frame runs past the end of the stream")
        crc = int.from_bytes(stream[pos : pos + 4], "big")
        message = stream[pos + 4 : pos + 4 + length]
        if google_crc32c.value(message) != crc:
            raise DecodeError("chunked read response: frame checksum mismatch")
        pos += 4 + length
        yield remote_pb2.ChunkedReadResponse.FromString(message)


# -- helpers -------------------------------------------------------------------


def _varint_sizes(u: NDArray[np.uint64]) -> NDArray[np.int64]:
    size = np.ones(len(u), dtype=np.int64)
    for k in range(1, 10):
        size += u >= (np.uint64(1) << np.uint64(7 * k))
    return size


def _fields(raw: bytes, what: str) -> Iterator[tuple[int, int, bytes]]:
    """(field number, wire type, bytes) of a message's top-level length-delimited fields."""
    pos = 0
    while pos < len(raw):
        tag, pos = read_uvarint(raw, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 2:
            length, pos = read_uvarint(raw, pos)
            if pos + length > len(raw):
                raise DecodeError(f"protobuf: cannot parse {what} (field {number} truncated)")
            yield number, wire, raw[pos : pos + length]
            pos += length
        elif wire == 0:
            _, pos = read_uvarint(raw, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise DecodeError(f"protobuf: cannot parse {what} (wire type {wire})")
