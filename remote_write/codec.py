"""Remote-write 1.0 bodies: snappy block + protobuf WriteRequest <-> WriteBatch.

Decoding is shaped around Python's cost model (DESIGN.md): the protobuf is
parsed by upb in C into the `fast.proto` view, where each series' labels and
samples stay raw bytes. Per series, Python does a handful of C calls (join the
label bytes into a key, collect the sample bytes); the samples of the whole
request are then decoded at once with numpy. Labels are decoded only when
storage meets a key it has not seen (`LazyLabelSets`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter
from typing import Any

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


def decompress(body: bytes, *, max_decoded_bytes: int) -> bytes:
    """Snappy block decompression, refusing a body that would decode past the limit."""
    if not body:
        raise DecodeError("snappy: empty body")
    size = snappy_decoded_length(body)
    if max_decoded_bytes and size > max_decoded_bytes:
        raise PayloadTooLarge(
            f"decompressed body of {size} bytes exceeds the limit of {max_decoded_bytes} bytes"
        )
    try:
        return snappy.uncompress(body)
    except Exception as exc:  # python-snappy raises several types for corrupt input
        raise DecodeError(f"snappy: corrupt input ({exc or type(exc).__name__})") from None


def decode_write_request(body: bytes, *, max_decoded_bytes: int = 0) -> DecodedWrite:
    """Decode a snappy-compressed WriteRequest into a batch.

    Raises `DecodeError` for bad snappy or protobuf and `PayloadTooLarge` when
    the decoded size passes `max_decoded_bytes` (0: no limit). The batch keeps
    `body` as `encoded`, so the WAL can log it without encoding again.

    Series keys are the bytes of a series' Label messages merged in wire order
    (see fast.proto): equal for every request in which a sender writes the same
    label set. One corner is lossy: a label with an empty name directly after a
    label with an empty value reads like one label, so such a series (invalid
    anyway) may share the key of the valid series it resembles.
    """
    raw = decompress(body, max_decoded_bytes=max_decoded_bytes)
    try:
        flat = fast_pb2.FlatWriteRequest.FromString(raw)
        series = fast_pb2.SeriesWriteRequest.FromString(raw).timeseries
    except ProtobufDecodeError as exc:
        raise DecodeError(f"protobuf: cannot parse WriteRequest ({exc})") from None
    merged = flat.timeseries
    samples = list(merged.samples)
    sample_len = np.fromiter(map(len, samples), dtype=np.int64, count=len(samples))
    split = None
    if not merged.exemplars and not merged.histograms:
        split = _split_series(series, sample_len)
    fields = None
    if split is None:  # an unusual layout: per-series views (slower, same result)
        keys, samples, counts = _keyed_series(raw)
        sample_len = None
    else:
        keys, counts, fields = split
    timestamps, values = decode_samples(samples, sample_len)

    dropped = {}
    if n := len(merged.histograms):
        dropped["histograms"] = n
    if n := len(merged.exemplars):
        dropped["exemplars"] = n
    labels = _WireLabels(raw, keys, fields)
    batch = WriteBatch(
        series=LazyLabelSets(len(keys), labels, labels.columns),
        series_idx=np.repeat(np.arange(len(keys), dtype=np.int32), counts),
        timestamps=timestamps,
        values=values,
        metadata=[_decode_metadata(m) for m in flat.metadata],
        series_keys=keys,
        encoded=body,
    )
    return DecodedWrite(batch=batch, dropped=dropped, decoded_bytes=len(raw))


def _keyed_series(raw: bytes) -> tuple[list[bytes], list[bytes], NDArray[np.int64]]:
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
class _LabelFields:
    """Where the Label fields of a request's series start, as `_split_series` found
    them: step k lists the series that have a k-th label (`series`, ascending)
    and where it starts in the joined series (`at`); series i begins at `starts[i]`."""

    steps: list[tuple[NDArray[np.int64], NDArray[np.int64]]]
    starts: NDArray[np.int64]


def _split_series(
    series: Sequence[bytes], sample_len: NDArray[np.int64]
) -> tuple[list[bytes], NDArray[np.int64], _LabelFields] | None:
    """Keys and sample counts of the serialized TimeSeries `series`, whose samples
    (all of them, in order) have the byte lengths `sample_len`; None for layouts
    this does not handle.

    Handles what encoders write: each series' Label fields first, then its
    Sample fields, lengths as minimal varints. The Label fields are walked for
    all series at once (one numpy step per label position), and a series' key
    is the raw bytes of its Label fields. The rest of each series must be its
    samples: if the byte counts of all rests and of all Sample fields agree,
    nothing else is there, and each series owns the run of samples that fills
    its rest.
    """
    n = len(series)
    if n == 0:
        return [], np.zeros(0, dtype=np.int64), _LabelFields([], np.zeros(0, dtype=np.int64))
    series = list(series)
    lengths = np.fromiter(map(len, series), dtype=np.int64, count=n)
    series.append(bytes(4))  # reads up to 2 bytes past a series' end stay inside
    joined = b"".join(series)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    buf = np.frombuffer(joined, dtype=np.uint8)
    pos = starts.copy()
    active = np.flatnonzero((pos < ends) & (buf[pos] == 0x0A))
    steps = []
    while len(active):
        p = pos[active]
        steps.append((active, p))
        b1 = buf[p + 1].astype(np.int64)
        b2 = buf[p + 2].astype(np.int64)
        short = b1 < 0x80
        if not (short | (b2 < 0x80)).all():
            return None  # a label of 16 KiB or more
        stop = p + np.where(short, 2 + b1, 3 + ((b1 & 0x7F) | (b2 << 7)))
        if (stop > ends[active]).any():
            return None
        pos[active] = stop
        active = active[stop < ends[active]]
        active = active[buf[pos[active]] == 0x0A]
    # The rest of every series must be its Sample fields, in order.
    field_size = sample_len + 2 + (sample_len >= 0x80) + (sample_len >= 0x4000)
    rest = ends - pos
    if int(rest.sum()) != int(field_size.sum()) or (sample_len >= 0x200000).any():
        return None
    upto = np.searchsorted(np.cumsum(field_size), np.cumsum(rest), side="right")
    counts = upto.copy()
    counts[1:] -= upto[:-1]
    keys = list(map(joined.__getitem__, map(slice, starts.tolist(), pos.tolist())))
    return keys, counts, _LabelFields(steps, starts)


_BLOB_KEY = b"\x00"
"""Starts the keys `_keyed_series` makes, so that they never equal a key of
`_split_series` (raw Label fields, which start with 0x0A)."""
_get_labels = attrgetter("labels")
_get_samples = attrgetter("samples")
_serialize_blob = fast_pb2.Blob.SerializeToString


class _WireLabels:
    """The labels of a decoded request's series: one series exactly as sent
    (`__call__`, through upb on first use), or many as label-key columns
    (`columns`, cut in bulk from the series keys)."""

    __slots__ = ("_fields", "_keys", "_raw", "_series")

    def __init__(self, raw: bytes, keys: list[bytes], fields: _LabelFields | None) -> None:
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
    n_all = len(fields.starts)
    counts_all = np.zeros(n_all, dtype=np.int64)
    for active, _ in fields.steps:
        counts_all[active] += 1
    offsets_all = np.zeros(n_all + 1, dtype=np.int64)
    np.cumsum(counts_all, out=offsets_all[1:])
    rel = np.empty(int(offsets_all[-1]), dtype=np.int64)
    for k, (active, at) in enumerate(fields.steps):
        rel[offsets_all[active] + k] = at - fields.starts[active]
    rows = np.asarray(indices, dtype=np.int64)
    if len(rows) == n_all:  # every series of the request (they come in order)
        counts = counts_all
    else:
        counts = counts_all[rows]
        starts = offsets_all[:-1][rows]
        ends = np.cumsum(counts)
        rel = rel[np.repeat(starts - (ends - counts), counts) + np.arange(int(counts.sum()))]
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


_VARINT_WIDTH = 10
_SHIFTS = (np.arange(_VARINT_WIDTH, dtype=np.uint64) * np.uint64(7)).reshape(1, -1)


def decode_samples(
    samples: Sequence[bytes], lengths: NDArray[np.int64] | None = None
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Decode serialized Sample messages in bulk.

    Handles the layouts encoders produce: `value` (tag 0x09, 8 bytes) then
    `timestamp` (tag 0x10, varint), either field omitted when zero, or the two
    in reverse order. Anything else (repeated or unknown fields) goes through
    the protobuf parser one sample at a time, which is correct but slow.
    """
    n = len(samples)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    if lengths is None:
        lengths = np.fromiter(map(len, samples), dtype=np.int64, count=n)
    uniform = _decode_uniform(samples, lengths)
    if uniform is not None:
        return uniform
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    ends = starts + lengths
    buf = np.frombuffer(b"".join(samples) + bytes(_VARINT_WIDTH + 9), dtype=np.uint8)

    first = buf[starts]
    value_first = (first == 0x09) & (lengths >= 9)
    # Where the varint timestamp begins: after "0x09 + 8 bytes + 0x10", or after "0x10".
    ts_tag_pos = np.where(value_first, starts + 9, starts)
    has_ts = (ts_tag_pos < ends) & (buf[ts_tag_pos] == 0x10)
    varint_start = ts_tag_pos + 1
    ts_end = np.where(has_ts, ends, ts_tag_pos)
    # Reverse order: 0x10 varint 0x09 <8 bytes>, the value being the last 9 bytes.
    reverse = (first == 0x10) & (lengths >= 11) & (buf[np.maximum(ends - 9, 0)] == 0x09)
    ts_end = np.where(reverse, ends - 9, ts_end)
    value_pos = np.where(reverse, ends - 8, starts + 1)
    has_value = value_first | reverse

    timestamps, varint_ok = _decode_varints(buf, varint_start, ts_end, has_ts)
    fast_ok = varint_ok & (
        (lengths == 0) | (value_first & ((lengths == 9) | has_ts)) | (~value_first & has_ts)
    )
    values = np.zeros(n, dtype=np.float64)
    if has_value.any():
        idx = value_pos[has_value, None] + np.arange(8)
        values[has_value] = buf[idx].copy().view("<f8").ravel()
    if not fast_ok.all():
        for i in np.flatnonzero(~fast_ok).tolist():
            try:
                msg = types_pb2.Sample.FromString(samples[i])
            except ProtobufDecodeError as exc:
                raise DecodeError(f"protobuf: cannot parse sample ({exc})") from None
            timestamps[i] = msg.timestamp
            values[i] = msg.value
    return timestamps, values


def _decode_uniform(
    samples: Sequence[bytes], lengths: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.float64]] | None:
    """The common case in one pass per column: every sample is `0x09 value 0x10
    varint` with varints of one width (timestamps of one era); else None."""
    width = int(lengths[0]) - 10
    if not 1 <= width <= _VARINT_WIDTH or (lengths != lengths[0]).any():
        return None
    rows = np.frombuffer(b"".join(samples), dtype=np.uint8).reshape(len(samples), width + 10)
    if not (
        (rows[:, 0] == 0x09).all()
        and (rows[:, 9] == 0x10).all()
        and (rows[:, 10:-1] >= 0x80).all()
        and (rows[:, -1] < 0x80).all()
    ):
        return None
    values = rows[:, 1:9].copy().view("<f8").ravel().astype(np.float64, copy=False)
    timestamps = np.zeros(len(samples), dtype=np.uint64)
    for k in range(width):
        timestamps |= (rows[:, 10 + k] & 0x7F).astype(np.uint64) << np.uint64(7 * k)
    return timestamps.view(np.int64), values


def _decode_varints(
    buf: NDArray[np.uint8],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    present: NDArray[np.bool_],
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Decode one varint per row spanning buf[starts:ends]; ok is False where malformed."""
    width = np.where(present, ends - starts, 0)
    cols = np.arange(_VARINT_WIDTH).reshape(1, -1)
    in_range = cols < width[:, None]
    raw = buf[starts[:, None] + np.minimum(cols, np.maximum(width[:, None] - 1, 0))]
    # Every byte but the last has the continuation bit; the last does not.
    cont = (raw & 0x80) != 0
    is_last = cols == (width[:, None] - 1)
    well_formed = np.where(in_range, cont != is_last, True).all(axis=1)
    ok = ~present | ((width >= 1) & (width <= _VARINT_WIDTH) & well_formed)
    payload = np.where(in_range, raw & 0x7F, 0).astype(np.uint64)
    value = np.bitwise_or.reduce(payload << _SHIFTS, axis=1)
    return value.view(np.int64), ok


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
            type=_METRIC_TYPE_NUMBERS.get(meta.type, 0),  # type: ignore[arg-type]
            metric_family_name=meta.metric_family_name,
            help=meta.help,
            unit=meta.unit,
        )
    return snappy.compress(request.SerializeToString())
