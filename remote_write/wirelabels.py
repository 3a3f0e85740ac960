"""The labels of a decoded request: exactly as sent, or as label-key columns.

A series' labels are decoded only when storage has not seen its series key:
one series as sent through upb (`WireLabels.__call__`, for validation and
messages), or many at once as label keys (`WireLabels.columns`, cut in bulk
from the series keys the walk found, see `remote_write.labelkeys`). Label
messages are parsed by hand (`decode_label`), because upb would refuse bad
UTF-8 outright instead of letting validation name the series.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from operator import attrgetter
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError as ProtobufDecodeError
from numpy.typing import NDArray

from remote_write.batch import LabelColumns, LabelPairs
from remote_write.errors import DecodeError
from remote_write.labelkeys import decode_label_keys, label_key
from remote_write.prompb import fast_pb2
from remote_write.serieswalk import LabelFields
from remote_write.varint import read_uvarint

BLOB_KEY = b"\x00"
"""Starts the keys `keyed_series` makes, so that they never equal a key of
`serieswalk.walk_labels` (raw Label fields, which start with 0x0A)."""
_get_labels = attrgetter("labels")
_get_samples = attrgetter("samples")
_serialize_blob = fast_pb2.Blob.SerializeToString


class WireLabels:
    """The labels of a decoded request's series: one series exactly as sent
    (`__call__`, through upb on first use), or many as label-key columns
    (`columns`, cut in bulk from the series keys)."""

    __slots__ = ("_fields", "_keys", "_raw", "_series")

    def __init__(
        self, raw: bytes | bytearray, keys: list[bytes], fields: LabelFields | None
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
        return tuple(map(decode_label, self._parsed()[i].labels))

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
        keys = [label_key(*decode_label(m)) for m in chain.from_iterable(lists)]
        return LabelColumns(keys, offsets, decode_label_keys)


_KEY_SEP = 0xFF
"""Cuts label keys apart; UTF-8 text never holds this byte, and lengths rarely do."""
_KEY_PAD = 260  # reads past a label's end stay inside the buffer (header + name length)


def _wire_label_keys(
    series_keys: list[bytes], fields: LabelFields, indices: Sequence[int]
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
            keys[k] = label_key(*decode_label(message))
    return keys, offsets


def decode_label(raw: bytes) -> tuple[str, str]:
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
    return decode_label_fields(raw)


def decode_label_fields(raw: bytes) -> tuple[str, str]:
    """The general Label parser: any field order, long fields, unknown fields."""
    fields = {1: b"", 2: b""}
    pos, end = 0, len(raw)
    while pos < end:
        tag, pos = read_uvarint(raw, pos)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 2:
            length, pos = read_uvarint(raw, pos)
            if pos + length > end:
                raise DecodeError("protobuf: truncated label")
            if number in fields:
                fields[number] = raw[pos : pos + length]
            pos += length
        elif wire_type == 0:
            _, pos = read_uvarint(raw, pos)
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


def keyed_series(raw: bytes | bytearray) -> tuple[list[bytes], list[bytes], NDArray[np.int64]]:
    """Series keys, all samples and per-series sample counts through upb's per-series
    views: exact for any layout, with a few Python objects per series."""
    try:
        timeseries = fast_pb2.KeyedWriteRequest.FromString(raw).timeseries
    except ProtobufDecodeError as exc:
        raise DecodeError(f"protobuf: cannot parse WriteRequest ({exc})") from None
    keys = list(map(BLOB_KEY.__add__, map(_serialize_blob, map(_get_labels, timeseries))))
    sample_lists = list(map(_get_samples, timeseries))
    counts = np.fromiter(map(len, sample_lists), dtype=np.int64, count=len(sample_lists))
    return keys, list(chain.from_iterable(sample_lists)), counts
