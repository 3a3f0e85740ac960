"""Remote-write 1.0 bodies: snappy block + protobuf WriteRequest <-> WriteBatch.

Decoding is shaped around Python's cost model (DESIGN.md): snappy decodes
straight into one buffer, upb parses it once into the `fast.proto` view (each
TimeSeries one bytes object), and the series are joined and walked with numpy,
one step per label or sample position for all series at once: where each
series' Label fields end (its key is those bytes) and where every Sample
field is; all samples are then decoded together, read in place. Per series,
Python makes one bytes object, the key. Labels are decoded only for series
storage has not seen, in bulk as label keys (`WireLabels.columns`). Requests
in any other layout (labels after samples, exemplars, histograms, long fields)
take upb views that are exact for any layout, with a few objects per series.

This module is the entry (snappy, the request, metadata, encoding); the walk
is `remote_write.serieswalk`, the labels `remote_write.wirelabels`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import TypeVar

import cramjam
import numpy as np
import snappy
from google.protobuf.message import DecodeError as ProtobufDecodeError
from numpy.typing import NDArray

from remote_write.batch import (
    LazyLabelSets,
    SeriesMetadata,
    WriteBatch,
)
from remote_write.errors import DecodeError, PayloadTooLarge
from remote_write.exemplardecode import decode_exemplar_messages
from remote_write.exemplars import ExemplarBatch
from remote_write.histdecode import decode_histogram_messages, decode_histogram_spans
from remote_write.histencode import add_histograms
from remote_write.histograms import HistogramBatch
from remote_write.prompb import fast_pb2, fast_v2_pb2, remote_pb2, types_pb2
from remote_write.samples import decode_sample_spans, decode_samples
from remote_write.serieswalk import (
    JoinedSeries,
    LabelFields,
    join_series,
    series_keys,
    split_series,
    walk_histograms,
    walk_labels,
    walk_samples,
)
from remote_write.wirelabels import WireLabels, keyed_series

T = TypeVar("T")

_METRIC_TYPES = {
    v.number: v.name.lower() for v in types_pb2.MetricMetadata.MetricType.DESCRIPTOR.values
}
_METRIC_TYPE_NUMBERS = {name: number for number, name in _METRIC_TYPES.items()}


@dataclass(slots=True)
class DecodedWrite:
    """A decoded request: the float samples as a batch, what was dropped, and why."""

    batch: WriteBatch
    dropped: dict[str, int] = field(default_factory=dict)
    """Counts of things in the request that are not stored."""
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
    joined = join_series(request.timeseries)
    labels_walk = walk_labels(joined)
    spans = hist_walk = None
    if labels_walk is not None:
        # Native histograms first when the first series' labels are followed by one.
        first_hist = _histogram_next(joined, labels_walk[0])
        if first_hist:
            hist_walk = walk_histograms(joined, labels_walk[0])
        if hist_walk is None:
            spans = walk_samples(joined, labels_walk[0])
            if spans is None and not first_hist:
                hist_walk = walk_histograms(joined, labels_walk[0])
    dropped: dict[str, int] = {}
    fields = None
    histograms = None
    exemplars = None
    if labels_walk is not None and hist_walk is not None:
        # Native histograms only (what a scraping Prometheus sends for them).
        pos, steps = labels_walk
        h_counts, h_starts, h_ends = hist_walk
        n_series = len(pos)
        counts = np.zeros(n_series, dtype=np.int64)
        timestamps, values = np.zeros(0, np.int64), np.zeros(0, np.float64)
        idx = np.repeat(np.arange(n_series, dtype=np.int32), h_counts)
        histograms = decode_histogram_spans(joined.buf, h_starts, h_ends, idx)
        keys = series_keys(joined, pos)
        fields = LabelFields(steps, joined.starts)
    elif labels_walk is not None and spans is not None:
        pos, steps = labels_walk
        counts, sample_starts, sample_lengths = spans
        timestamps, values = decode_sample_spans(joined.buf, sample_starts, sample_lengths)
        keys = series_keys(joined, pos)
        fields = LabelFields(steps, joined.starts)
    else:
        keys, counts, timestamps, values, dropped, fields = _decode_other(raw, joined, labels_walk)
        if dropped.pop("histograms", 0):
            histograms = _decode_histograms(raw)
        if dropped.pop("exemplars", 0):
            exemplars = _decode_exemplars(raw)
    labels = WireLabels(raw, keys, fields)
    batch = WriteBatch(
        series=LazyLabelSets(len(keys), labels, labels.columns),
        series_idx=np.repeat(np.arange(len(keys), dtype=np.int32), counts),
        timestamps=timestamps,
        values=values,
        metadata=[_decode_metadata(m) for m in request.metadata],
        series_keys=keys,
        encoded=encoded,
        histograms=histograms,
        exemplars=exemplars,
    )
    return DecodedWrite(batch=batch, dropped=dropped, decoded_bytes=len(raw))


def _histogram_next(joined: JoinedSeries, label_ends: NDArray[np.int64]) -> bool:
    """Whether a Histogram field (tag 0x22) follows the first series' labels."""
    return bool(len(label_ends)) and joined.data[int(label_ends[0])] == 0x22


def _decode_other(
    raw: bytes | bytearray,
    joined: JoinedSeries,
    labels_walk: tuple[NDArray[np.int64], list[tuple[NDArray[np.bool_], NDArray[np.int64]]]] | None,
) -> tuple[
    list[bytes],
    NDArray[np.int64],
    NDArray[np.int64],
    NDArray[np.float64],
    dict[str, int],
    LabelFields | None,
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
        counts = split_series(joined, labels_walk[0], sample_len)
    if counts is None:  # per-series views
        keys, samples, counts = keyed_series(raw)
        timestamps, values = decode_samples(samples)
        return keys, counts, timestamps, values, dropped, None
    assert labels_walk is not None
    pos, steps = labels_walk
    timestamps, values = decode_samples(samples, sample_len)
    fields = LabelFields(steps, joined.starts)
    return series_keys(joined, pos), counts, timestamps, values, dropped, fields


def _decode_histograms(raw: bytes | bytearray) -> HistogramBatch:
    """Every series' native histograms, decoded in bulk (per series: one list)."""
    try:
        timeseries = fast_pb2.HistWriteRequest.FromString(raw).timeseries
    except ProtobufDecodeError as exc:
        raise DecodeError(f"protobuf: cannot parse WriteRequest ({exc})") from None
    return decode_histogram_messages(*_flatten([ts.histograms for ts in timeseries]))


def _decode_exemplars(raw: bytes | bytearray) -> ExemplarBatch:
    """Every series' exemplars, decoded in bulk (per series: one list)."""
    try:
        timeseries = fast_v2_pb2.ExemplarRequest.FromString(raw).timeseries
    except ProtobufDecodeError as exc:
        raise DecodeError(f"protobuf: cannot parse WriteRequest ({exc})") from None
    return decode_exemplar_messages(*_flatten([ts.exemplars for ts in timeseries]))


def _flatten(lists: list[Sequence[T]]) -> tuple[list[T], NDArray[np.int32]]:
    """Per-series message lists as one list, with the series index of each message."""
    counts = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    idx = np.repeat(np.arange(len(lists), dtype=np.int32), counts)
    return list(chain.from_iterable(lists)), idx


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
    if batch.histograms is not None and len(batch.histograms):
        add_histograms(request, batch.histograms)
    for meta in batch.metadata:
        request.metadata.add(
            type=_METRIC_TYPE_NUMBERS.get(meta.type, 0),
            metric_family_name=meta.metric_family_name,
            help=meta.help,
            unit=meta.unit,
        )
    return snappy.compress(request.SerializeToString())
