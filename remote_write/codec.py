"""Remote-write 1.0 bodies: snappy block + protobuf WriteRequest <-> WriteBatch.

Decoding is shaped around Python's cost model (DESIGN.md): snappy decodes
straight into one buffer, upb parses it once into the `fast.proto` view (each
TimeSeries one bytes object), and the series are joined and walked with numpy,
one step per label or sample position for all series at once: where each
series' Label fields end (its key is those bytes) and where every Sample
field is; all samples are then decoded together, read in place. Per series,
Python makes one bytes object, the key. Labels are decoded only for series
storage has not seen, in bulk as label keys (`_WireLabels.columns`). Requests
in any other layout (labels after samples, exemplars, histograms, long fields)
take upb views that are exact for any layout, with a few objects per series.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter
from typing import Any

import cramjam
import numpy as np
import snappy
from google.protobuf.message import DecodeError as ProtobufDecodeError
from numpy.typing import NDArray

from remote_write.batch import (
    LabelColumns,
    LabelPairs,
    LazyLabelSets,
    SeriesMetadata,
    WriteBatch,
)
from remote_write.errors import DecodeError, PayloadTooLarge
from remote_write.labelkeys import decode_label_keys, label_key
from remote_write.prompb import fast_pb2, remote_pb2, types_pb2
from remote_write.samples import PAD, decode_sample_spans, decode_samples

_METRIC_TYPES = {
    v.number: v.name.lower() for v in types_pb2.MetricMetadata.MetricType.DESCRIPTOR.values
}
_METRIC_TYPE_NUMBERS = {name: number for number, name in _METRIC_TYPES.items()}


@dataclass(slots=True)
class DecodedWrite:
    """A decoded request: the float samples as a batch, what was dropped, and why."""

    batch: WriteBatch
    dropped: dict[str, int] = field(default_factory=dict)
    """Counts of things in the request that are not stored (histograms, exemplars)."""
    decoded_bytes: int = 0


def snappy_decoded_length(body: bytes) -> int:
    """The uncompressed length a snappy block announces in its varint header."""
    result = shift = 0
    for i, byte in enumerate(body[:10]):
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result
        shift += 7
        if i == 4:
            break
    raise DecodeError("snappy: corrupt input (bad length header)")


def decompress(body: bytes, *, max_decoded_bytes: int) -> bytearray:
    """Snappy block decompression, refusing a body that would decode past the limit.

    Decodes straight into a buffer of the announced size: a `bytes` copy of
    cramjam's own output buffer costs more than the decompression itself.
    """
    if not body:
        raise DecodeError("snappy: empty body")
    size = snappy_decoded_length(body)
    if max_decoded_bytes and size > max_decoded_bytes:
        raise PayloadTooLarge(
            f"decompressed body of {size} bytes exceeds the limit of {max_decoded_bytes} bytes"
        )
    out = bytearray(size)
    try:
        written = cramjam.snappy.decompress_raw_into(body, out)
    except cramjam.DecompressionError as exc:
        reason = str(exc).removeprefix("snappy: ").removeprefix("corrupt input ").strip("()")
        raise DecodeError(f"snappy: corrupt input ({reason or 'undecodable'})") from None
    if written != size:
        raise DecodeError(f"snappy: corrupt input (announced {size} bytes, decoded {written})")
    return out


def decode_write_request(body: bytes, *, max_decoded_bytes: int = 0) -> DecodedWrite:
    """Decode a snappy-compressed WriteRequest into a batch.

    Raises `DecodeError` for bad snappy or protobuf and `PayloadTooLarge` when
    the decoded size passes `max_decoded_bytes` (0: no limit). The batch keeps
    `body` as `encoded`, so the WAL can log it without encoding again.

    Series keys are the raw bytes of a series' Label fields: equal for every
    request in which a sender writes the same label set. The usual layout
    (each series' labels, then its samples, nothing else) is walked with numpy
    for all series at once; any other layout goes through upb views, slower
    but exact. One corner of the slowest path is lossy: a label with an empty
    name directly after a label with an empty value reads like one label, so
    such a series (invalid anyway) may share the key of the valid series it
    resembles.
    """
    raw = decompress(body, max_decoded_bytes=max_decoded_bytes)
    return decode_series_message(raw, encoded=body)


def decode_series_message(raw: bytes | bytearray, *, encoded: bytes | None = None) -> DecodedWrite:
    """Decode an uncompressed message whose field 1 is repeated TimeSeries.

    That is a WriteRequest, and equally a remote-read `QueryResult` (same
    field number, same TimeSeries), so the read client decodes answers with
    the write path's bulk decoder. `encoded` is kept on the batch for the WAL.
    """
    try:
        request = fast_pb2.SeriesWriteRequest.FromString(raw)
    except ProtobufDecodeError as exc:
        raise DecodeError(f"protobuf: cannot parse WriteRequest ({exc})") from None
    joined = _join(request.timeseries)
    labels_walk = _walk_labels(joined)
    spans = None if labels_walk is None else _walk_samples(joined, labels_walk[0])
    dropped: dict[str, int] = {}
    fields = None
    if labels_walk is not None and spans is not None:
        pos, steps = labels_walk
        counts, sample_starts, sample_lengths = spans
        timestamps, values = decode_sample_spans(joined.buf, sample_starts, sample_lengths)
        keys = _keys(joined, pos)
        fields = _LabelFields(steps, joined.starts)
    else:
        keys, counts, timestamps, values, dropped, fields = _decode_other(raw, joined, labels_walk)
    labels = _WireLabels(raw, keys, fields)
    batch = WriteBatch(
        series=LazyLabelSets(len(keys), labels, labels.columns),
        series_idx=np.repeat(np.arange(len(keys), dtype=np.int32), counts),
        timestamps=timestamps,
        values=values,
        metadata=[_decode_metadata(m) for m in request.metadata],
        series_keys=keys,
        encoded=encoded,
    )
    return DecodedWrite(batch=batch, dropped=dropped, decoded_bytes=len(raw))


def _decode_other(
    raw: bytes | bytearray,
    joined: _Joined,
    labels_walk: tuple[NDArray[np.int64], list[tuple[NDArray[np.bool_], NDArray[np.int64]]]] | None,
) -> tuple[
    list[bytes],
    NDArray[np.int64],
    NDArray[np.int64],
    NDArray[np.float64],
    dict[str, int],
    _LabelFields | None,
]:
    """Keys, sample counts, samples, dropped counts and label fields of a request
    whose series are not all labels-then-samples with short Sample fields."""
    try:
        flat = fast_pb2.FlatWriteRequest.FromString(raw)
    except ProtobufDecodeError as exc:
        raise DecodeError(f"protobuf: cannot parse WriteRequest ({exc})") from None
    merged = flat.timeseries
    dropped = {}
    if n := len(merged.histograms):
        dropped["histograms"] = n
    if n := len(merged.exemplars):
        dropped["exemplars"] = n
    samples = list(merged.samples)
    sample_len = np.fromiter(map(len, samples), dtype=np.int64, count=len(samples))
    counts = None
    if labels_walk is not None and not dropped:
        counts = _split_series(joined, labels_walk[0], sample_len)
    if counts is None:  # per-series views
        keys, samples, counts = _keyed_series(raw)
        timestamps, values = decode_samples(samples)
        return keys, counts, timestamps, values, dropped, None
    assert labels_walk is not None
    pos, steps = labels_walk
    timestamps, values = decode_samples(samples, sample_len)
    fields = _LabelFields(steps, joined.starts)
    return _keys(joined, pos), counts, timestamps, values, dropped, fields


def _keyed_series(raw: bytes | bytearray) -> tuple[list[bytes], list[bytes], NDArray[np.int64]]:
    """Series keys, all samples and per-series sample counts through upb's per-series
    views: exact for any layout, with a few Python objects per series."""
    try:
        timeseries = fast_pb2.KeyedWriteRequest.FromString(raw).timeseries
    except ProtobufDecodeError as exc:
        raise DecodeError(f"protobuf: cannot parse WriteRequest ({exc})") from None
    keys = list(map(_BLOB_KEY.__add__, map(_serialize_blob, map(_get_labels, timeseries))))
    sample_lists = list(map(_get_samples, timeseries))
    counts = np.fromiter(map(len, sample_lists), dtype=np.int64, count=len(sample_lists))
    return keys, list(chain.from_iterable(sample_lists)), counts


@dataclass(frozen=True, slots=True)
class _Joined:
    """A request's serialized TimeSeries laid end to end, each followed by a zero
    byte, `PAD` zero bytes after the last: series i is `data[starts[i]:ends[i]]`,
    and `buf` views `data`."""

    data: bytes
    buf: NDArray[np.uint8]
    starts: NDArray[np.int64]
    ends: NDArray[np.int64]


def _join(series: Sequence[bytes]) -> _Joined:
    chunks = list(series)
    lengths = np.fromiter(map(len, chunks), dtype=np.int64, count=len(chunks))
    chunks.append(bytes(PAD))  # reads a few bytes past a series' end stay inside
    # A zero byte after each series: no field tag, so a walk stops at a series' end.
    data = b"\x00".join(chunks)
    ends = np.cumsum(lengths + 1) - 1
    return _Joined(data, np.frombuffer(data, dtype=np.uint8), ends - lengths, ends)


def _keys(joined: _Joined, label_ends: NDArray[np.int64]) -> list[bytes]:
    """Each series' Label fields, as one bytes object: its series key."""
    data = joined.data
    return [data[a:b] for a, b in zip(joined.starts.tolist(), label_ends.tolist(), strict=True)]


@dataclass(frozen=True, slots=True)
class _LabelFields:
    """Where the Label fields of a request's series start, as `_walk_labels` found
    them: at step k, series i has a k-th label where `on[i]`, starting at `at[i]`
    in the joined series; series i begins at `starts[i]`."""

    steps: list[tuple[NDArray[np.bool_], NDArray[np.int64]]]
    starts: NDArray[np.int64]


def _walk_labels(
    joined: _Joined,
) -> tuple[NDArray[np.int64], list[tuple[NDArray[np.bool_], NDArray[np.int64]]]] | None:
    """Where each series' leading Label fields end, and where each of them starts
    (see `_LabelFields`); None for labels of 16 KiB or more, or a field that runs
    past its series' end.

    One numpy step per label position, for all series at once.
    """
    buf, ends = joined.buf, joined.ends
    after = buf[1:]  # after.take(p) is the byte after p
    pos = joined.starts
    steps = []
    while True:
        # Clipped reads: a field running past its series' end (checked below) can
        # send a position anywhere, even past the buffer.
        on = buf.take(pos, mode="clip") == 0x0A  # the zero byte after a series stops it
        if not on.any():
            break
        size = after.take(pos, mode="clip")
        stop = pos + size
        stop += 2
        if size.max() >= 0x80:  # two-byte lengths (or a byte past a walk's end)
            long = np.flatnonzero(on & (size >= 0x80))
            b2 = buf.take(pos[long] + 2, mode="clip").astype(np.int64)
            if (b2 >= 0x80).any():
                return None  # a label of 16 KiB or more
            stop[long] = pos[long] + 3 + ((size[long] & 0x7F) | (b2 << 7))
        steps.append((on, pos))
        pos = np.where(on, stop, pos)
    if (pos > ends).any():
        return None  # a field running past its series' end
    return pos, steps


MAX_SAMPLE_STEPS = 16
"""Series with more samples than this in one request take the general path."""


def _walk_samples(
    joined: _Joined, label_ends: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]] | None:
    """Per series its sample count, and the start and length of every Sample
    message (series by series, in order), when the rest of each series after
    its labels is nothing but Sample fields with one-byte lengths and at most
    MAX_SAMPLE_STEPS of them; else None.

    One numpy step per sample position, for all series at once.
    """
    buf, ends = joined.buf, joined.ends
    uniform = _uniform_samples(joined, label_ends)
    if uniform is not None:
        return uniform
    pos = label_ends
    steps: list[tuple[NDArray[np.bool_], NDArray[np.int64]]] = []
    while True:
        on = pos < ends
        if not on.any():
            break
        if len(steps) == MAX_SAMPLE_STEPS:
            return None
        size = buf[pos + 1].astype(np.int64)
        if not ((buf[pos] == 0x12) | ~on).all() or not ((size < 0x80) | ~on).all():
            return None
        steps.append((on, pos))
        pos = np.where(on, pos + 2 + size, pos)
        if (pos > ends).any():
            return None
    if len(steps) == 1:  # one sample per series, in every series
        on, at = steps[0]
        if on.all():
            starts = at + 2
            return on.astype(np.int64), starts, buf[starts - 1].astype(np.int64)
    counts = np.zeros(len(ends), dtype=np.int64)
    for on, _ in steps:
        counts += on
    if len(steps) > 1 and (counts == len(steps)).all():  # k samples in every series
        starts = np.stack([at for _, at in steps], axis=1).ravel() + 2
        return counts, starts, buf[starts - 1].astype(np.int64)
    offsets = np.zeros(len(ends), dtype=np.int64)
    np.cumsum(counts[:-1], out=offsets[1:])
    starts = np.empty(int(counts.sum()), dtype=np.int64)
    for k, (on, at) in enumerate(steps):
        active = np.flatnonzero(on)
        starts[offsets[active] + k] = at[active] + 2
    return counts, starts, buf[starts - 1].astype(np.int64)


def _uniform_samples(
    joined: _Joined, label_ends: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]] | None:
    """`_walk_samples` when all Sample fields of the request have one size (the
    usual case): counts from the byte counts, every field's tag and length
    checked at once; None otherwise."""
    buf, ends = joined.buf, joined.ends
    rest = ends - label_ends
    some = np.flatnonzero(rest)
    if not len(some):
        return None
    size = int(buf[label_ends[some[0]] + 1])
    if size >= 0x80:
        return None
    field = size + 2
    counts = rest // field
    if not (counts * field == rest).all():
        return None
    total = int(counts.sum())
    ends_k = np.cumsum(counts)
    starts = (
        np.repeat(label_ends + 2 - (ends_k - counts) * field, counts)
        + np.arange(total, dtype=np.int64) * field
    )
    if not ((buf[starts - 2] == 0x12).all() and (buf[starts - 1] == size).all()):
        return None
    return counts, starts, np.full(total, size, dtype=np.int64)


def _split_series(
    joined: _Joined, label_ends: NDArray[np.int64], sample_len: NDArray[np.int64]
) -> NDArray[np.int64] | None:
    """Sample counts of the joined series whose Label fields end at `label_ends`
    and whose samples (all of them, in order) have the byte lengths `sample_len`;
    None if the rest of some series is not just its samples.

    If the byte counts of all rests and of all Sample fields agree, nothing else
    is there, and each series owns the run of samples that fills its rest.
    """
    if not len(label_ends):
        return np.zeros(0, dtype=np.int64)
    field_size = sample_len + 2 + (sample_len >= 0x80) + (sample_len >= 0x4000)
    rest = joined.ends - label_ends
    if int(rest.sum()) != int(field_size.sum()) or (sample_len >= 0x200000).any():
        return None
    upto = np.searchsorted(np.cumsum(field_size), np.cumsum(rest), side="right")
    counts = upto.copy()
    counts[1:] -= upto[:-1]
    return counts


_BLOB_KEY = b"\x00"
"""Starts the keys `_keyed_series` makes, so that they never equal a key of
`_walk_labels` (raw Label fields, which start with 0x0A)."""
_get_labels = attrgetter("labels")
_get_samples = attrgetter("samples")
_serialize_blob = fast_pb2.Blob.SerializeToString


class _WireLabels:
    """The labels of a decoded request's series: one series exactly as sent
    (`__call__`, through upb on first use), or many as label-key columns
    (`columns`, cut in bulk from the series keys)."""

    __slots__ = ("_fields", "_keys", "_raw", "_series")

    def __init__(
        self, raw: bytes | bytearray, keys: list[bytes], fields: _LabelFields | None
    ) -> None:
        self._raw = raw
        self._keys = keys
        self._fields = fields
        self._series: Any = None

    def _parsed(self) -> Any:
        if self._series is None:
            self._series = fast_pb2.LabelsWriteRequest.FromString(self._raw).timeseries
        return self._series

    def __call__(self, i: int) -> LabelPairs:
        return tuple(map(_decode_label, self._parsed()[i].labels))

    def columns(self, indices: Sequence[int]) -> LabelColumns:
        """The labels of series `indices` as label keys (see `remote_write.labelkeys`)."""
        if self._fields is None:
            return self._columns_one_by_one(indices)
        keys, offsets = _wire_label_keys(self._keys, self._fields, indices)
        return LabelColumns(keys, offsets, decode_label_keys)

    def _columns_one_by_one(self, indices: Sequence[int]) -> LabelColumns:
        series = self._parsed()
        lists = list(map(_get_labels, map(series.__getitem__, indices)))
        offsets = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, lists), dtype=np.int64, count=len(lists)), out=offsets[1:])
        keys = [label_key(*_decode_label(m)) for m in chain.from_iterable(lists)]
        return LabelColumns(keys, offsets, decode_label_keys)


_KEY_SEP = 0xFF
"""Cuts label keys apart; UTF-8 text never holds this byte, and lengths rarely do."""
_KEY_PAD = 260  # reads past a label's end stay inside the buffer (header + name length)


def _wire_label_keys(
    series_keys: list[bytes], fields: _LabelFields, indices: Sequence[int]
) -> tuple[list[str], NDArray[np.int64]]:
    """Label keys of the series `indices`, flat, and where each series' keys begin.

    The series keys (each series' Label fields as sent) of `indices` are
    joined, each Label field's tag byte becomes a separator, and one latin-1
    decode and one split give every field without its tag, which is the
    label's key when the field has the usual layout (checked in bulk). Other
    fields are decoded one by one and get their key from `label_key`.
    """
    rows = np.asarray(indices, dtype=np.int64)
    if fields.steps:
        # Step k, series i -> [k, i]; read series by series, steps in order.
        on = np.stack([on for on, _ in fields.steps])
        at = np.stack([at for _, at in fields.steps]) - fields.starts
        if len(rows) != len(fields.starts):
            on, at = on[:, rows], at[:, rows]
        counts = on.sum(axis=0)
        rel = at.T[on.T]
    else:
        counts = np.zeros(len(rows), dtype=np.int64)
        rel = np.zeros(0, dtype=np.int64)
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    chosen = list(map(series_keys.__getitem__, indices))
    lengths = np.fromiter(map(len, chosen), dtype=np.int64, count=len(chosen))
    size = int(lengths.sum())
    region = bytearray().join(chosen)
    region.extend(bytes(_KEY_PAD))
    buf = np.frombuffer(region, dtype=np.uint8)
    f = rel + np.repeat(np.cumsum(lengths) - lengths, counts)  # field starts in `region`
    b1 = buf[f + 1].astype(np.int64)
    b2 = buf[f + 2].astype(np.int64)
    two = b1 >= 0x80
    length = np.where(two, (b1 & 0x7F) | (b2 << 7), b1)
    m = f + 2 + two  # the Label message
    name_len = buf[m + 1].astype(np.int64)
    value_tag = m + 2 + np.minimum(name_len, 0x80)
    value_len = buf[value_tag + 1].astype(np.int64)
    usual = (
        (~two | (b2 != 0))  # minimal length varint
        & (buf[m] == 0x0A)
        & (name_len < 0x80)
        & (buf[value_tag] == 0x12)
        & (value_len < 0x80)
        & (name_len + value_len + 4 == length)
    )
    buf[f] = _KEY_SEP
    keys: list[str] = []
    if np.count_nonzero(buf[:size] == _KEY_SEP) == len(f):
        keys = str(memoryview(region)[:size], "latin-1").split(chr(_KEY_SEP))
        del keys[0]
    if len(keys) != len(f):  # a separator byte inside some label: all one by one
        usual[:] = False
        keys = [""] * len(f)
    if not usual.all():
        for k in np.flatnonzero(~usual).tolist():
            start = int(m[k])
            message = bytes(region[start : start + int(length[k])])
            keys[k] = label_key(*_decode_label(message))
    return keys, offsets


def _decode_label(raw: bytes) -> tuple[str, str]:
    """Parse one serialized Label message by hand: upb would reject bad UTF-8 outright.

    Invalid UTF-8 is kept as surrogate escapes, so that validation can name the
    series and reject it instead of failing the whole request.

    The common layout (name then value, each under 128 bytes, so one-byte
    lengths) is sliced directly; anything else goes through the general parser.
    """
    n = len(raw)
    if n >= 4 and raw[0] == 0x0A:
        name_len = raw[1]
        if name_len < 0x80 and n > name_len + 3 and raw[name_len + 2] == 0x12:
            value_len = raw[name_len + 3]
            if value_len < 0x80 and name_len + value_len + 4 == n:
                return (
                    raw[2 : name_len + 2].decode("utf-8", "surrogateescape"),
                    raw[name_len + 4 :].decode("utf-8", "surrogateescape"),
                )
    return _decode_label_fields(raw)


def _decode_label_fields(raw: bytes) -> tuple[str, str]:
    """The general Label parser: any field order, long fields, unknown fields."""
    fields = {1: b"", 2: b""}
    pos, end = 0, len(raw)
    while pos < end:
        tag, pos = _read_varint(raw, pos)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 2:
            length, pos = _read_varint(raw, pos)
            if pos + length > end:
                raise DecodeError("protobuf: truncated label")
            if number in fields:
                fields[number] = raw[pos : pos + length]
            pos += length
        elif wire_type == 0:
            _, pos = _read_varint(raw, pos)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise DecodeError(f"protobuf: unsupported wire type {wire_type} in label")
    return (
        fields[1].decode("utf-8", "surrogateescape"),
        fields[2].decode("utf-8", "surrogateescape"),
    )


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise DecodeError("protobuf: truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _decode_metadata(raw: bytes) -> SeriesMetadata:
    msg = types_pb2.MetricMetadata.FromString(raw)
    return SeriesMetadata(
        metric_family_name=msg.metric_family_name,
        type=_METRIC_TYPES.get(msg.type, "unknown"),
        help=msg.help,
        unit=msg.unit,
    )


def encode_write_request(batch: WriteBatch) -> bytes:
    """Encode a batch as a snappy-compressed WriteRequest (one TimeSeries per series)."""
    request = remote_pb2.WriteRequest()
    order = np.argsort(batch.series_idx, kind="stable")
    idx = batch.series_idx[order]
    ts = batch.timestamps[order].tolist()
    vals = batch.values[order].tolist()
    bounds = np.searchsorted(idx, np.arange(len(batch.series) + 1)).tolist()
    for i, pairs in enumerate(batch.series):
        series = request.timeseries.add()
        for name, value in pairs:
            series.labels.add(name=name, value=value)
        for j in range(bounds[i], bounds[i + 1]):
            series.samples.add(value=vals[j], timestamp=ts[j])
    for meta in batch.metadata:
        request.metadata.add(
            type=_METRIC_TYPE_NUMBERS.get(meta.type, 0),
            metric_family_name=meta.metric_family_name,
            help=meta.help,
            unit=meta.unit,
        )
    return snappy.compress(request.SerializeToString())
