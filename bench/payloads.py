"""Hand-built remote-write bodies for benchmarks (built once, before any timing).

Writing the protobuf bytes directly keeps payload generation fast enough to
build millions of samples; `remote_write.codec` decodes them in the tests.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import snappy

from remote_write.varint import encode_uvarint

SAMPLES_PER_REQUEST = 2000
HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


def _field(number: int, payload: bytes) -> bytes:
    return encode_uvarint(number << 3 | 2) + encode_uvarint(len(payload)) + payload


def encode_labels(pairs: Sequence[tuple[str, str]]) -> bytes:
    """Serialized Label fields of one series, in the order given (send them sorted)."""
    return b"".join(_field(1, _field(1, n.encode()) + _field(2, v.encode())) for n, v in pairs)


def encode_sample(ts_ms: int, value: float) -> bytes:
    return _field(2, b"\x09" + struct.pack("<d", value) + b"\x10" + encode_uvarint(ts_ms))


def encode_series(labels: bytes, samples: Sequence[tuple[int, float]]) -> bytes:
    """One TimeSeries field: pre-encoded labels plus (timestamp, value) samples."""
    return _field(1, labels + b"".join(encode_sample(t, v) for t, v in samples))


HEADERS_V2 = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request",
    "X-Prometheus-Remote-Write-Version": "2.0.0",
}


def _packed(refs: Sequence[int]) -> bytes:
    return b"".join(map(encode_uvarint, refs))


def encode_request_v2(
    series: Sequence[tuple[Sequence[tuple[str, str]], Sequence[tuple[int, float]]]],
    metric_type: int = 2,
) -> bytes:
    """One uncompressed remote-write 2.0 Request: a symbols table built for this
    request (the empty string first), then per series its label references, its
    samples and metadata (`metric_type`, empty help and unit), as Prometheus
    sends them."""
    table: dict[str, int] = {"": 0}
    out = []
    meta = _field(5, b"\x08" + encode_uvarint(metric_type)) if metric_type else b""
    for pairs, samples in series:
        refs = []
        for name, value in pairs:
            for text in (name, value):
                ref = table.get(text)
                if ref is None:
                    ref = table[text] = len(table)
                refs.append(ref)
        body = _field(1, _packed(refs)) + b"".join(encode_sample(t, v) for t, v in samples)
        out.append(_field(5, body + meta))
    symbols = b"".join(_field(4, text.encode()) for text in table)
    return symbols + b"".join(out)


def bodies_of_v2(
    series: Sequence[tuple[Sequence[tuple[str, str]], Sequence[tuple[int, float]]]],
    series_per_request: int,
) -> list[bytes]:
    """Snappy-compressed 2.0 Requests of `series_per_request` series each."""
    return [
        snappy.compress(encode_request_v2(series[i : i + series_per_request]))
        for i in range(0, len(series), series_per_request)
    ]


def bodies_of(series_fields: Sequence[bytes], series_per_request: int) -> list[bytes]:
    """Snappy-compressed WriteRequests of `series_per_request` TimeSeries fields each."""
    return [
        snappy.compress(b"".join(series_fields[i : i + series_per_request]))
        for i in range(0, len(series_fields), series_per_request)
    ]
