"""Serialized Sample messages -> timestamp and value columns, in bulk.

Samples are decoded where they lie: `decode_sample_spans` takes one buffer and
the start and length of every Sample message in it (the request's series,
joined), so no Python object per sample is ever made. The layouts encoders
produce are decoded with numpy: `value` (tag 0x09, 8 bytes) then `timestamp`
(tag 0x10, varint), either field omitted when zero, or the two in reverse
order. Anything else (repeated or unknown fields) goes through the protobuf
parser one sample at a time, which is correct but slow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from google.protobuf.message import DecodeError as ProtobufDecodeError
from numpy.typing import NDArray

from remote_write.errors import DecodeError
from remote_write.prompb import types_pb2

VARINT_WIDTH = 10
PAD = VARINT_WIDTH + 9
"""Bytes a buffer needs past its last sample: reads may run that far."""
_SHIFTS = (np.arange(VARINT_WIDTH, dtype=np.uint64) * np.uint64(7)).reshape(1, -1)

Columns = tuple[NDArray[np.int64], NDArray[np.float64]]


def decode_samples(samples: Sequence[bytes], lengths: NDArray[np.int64] | None = None) -> Columns:
    """Decode serialized Sample messages (one bytes object each)."""
    n = len(samples)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    if lengths is None:
        lengths = np.fromiter(map(len, samples), dtype=np.int64, count=n)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    buf = np.frombuffer(b"".join(samples) + bytes(PAD), dtype=np.uint8)
    return decode_sample_spans(buf, starts, lengths)


def decode_sample_spans(
    buf: NDArray[np.uint8], starts: NDArray[np.int64], lengths: NDArray[np.int64]
) -> Columns:
    """Decode the Sample messages at `buf[starts[i]:starts[i] + lengths[i]]`.

    `buf` must extend at least `PAD` bytes past the last sample.
    """
    n = len(starts)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    uniform = _decode_uniform(buf, starts, lengths)
    if uniform is not None:
        return uniform
    ends = starts + lengths
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
            start = int(starts[i])
            try:
                msg = types_pb2.Sample.FromString(buf[start : start + int(lengths[i])].tobytes())
            except ProtobufDecodeError as exc:
                raise DecodeError(f"protobuf: cannot parse sample ({exc})") from None
            timestamps[i] = msg.timestamp
            values[i] = msg.value
    return timestamps, values


def _decode_uniform(
    buf: NDArray[np.uint8], starts: NDArray[np.int64], lengths: NDArray[np.int64]
) -> Columns | None:
    """The common case, one pass per column: every sample is `0x09 value 0x10
    varint` with varints of one width up to 8 bytes (timestamps of one era);
    else None. Values and varints are read in place as unaligned words."""
    size = int(lengths[0])
    width = size - 10
    if not 1 <= width <= 8 or (lengths != size).any():
        return None
    if not ((buf[starts] == 0x09).all() and (buf[starts + 9] == 0x10).all()):
        return None
    word = _words(buf, np.dtype("<u8"))[starts + 10]
    low = word & np.uint64((1 << (8 * width)) - 1) if width < 8 else word
    # Continuation bits: set in every varint byte but the last.
    if not ((low & np.uint64(_HIGH_BITS[width])) == np.uint64(_CONTINUED[width])).all():
        return None
    timestamps = low & np.uint64(0x7F)
    for k in range(1, width):
        timestamps |= (low >> np.uint64(k)) & np.uint64(0x7F << (7 * k))
    values = _words(buf, np.dtype("<f8"))[starts + 1].astype(np.float64, copy=False)
    return timestamps.view(np.int64), values


_HIGH_BITS = [sum(0x80 << (8 * k) for k in range(w)) for w in range(9)]
_CONTINUED = [sum(0x80 << (8 * k) for k in range(w - 1)) for w in range(9)]


def _words(buf: NDArray[np.uint8], dtype: np.dtype) -> NDArray:
    """`buf` read as 8-byte words starting at every byte (a view, no copy)."""
    return np.ndarray(shape=(len(buf) - 7,), dtype=dtype, buffer=buf, strides=(1,))


def _decode_varints(
    buf: NDArray[np.uint8],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    present: NDArray[np.bool_],
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Decode one varint per row spanning buf[starts:ends]; ok is False where malformed."""
    width = np.where(present, ends - starts, 0)
    cols = np.arange(VARINT_WIDTH).reshape(1, -1)
    in_range = cols < width[:, None]
    raw = buf[starts[:, None] + np.minimum(cols, np.maximum(width[:, None] - 1, 0))]
    # Every byte but the last has the continuation bit; the last does not.
    cont = (raw & 0x80) != 0
    is_last = cols == (width[:, None] - 1)
    well_formed = np.where(in_range, cont != is_last, True).all(axis=1)
    ok = ~present | ((width >= 1) & (width <= VARINT_WIDTH) & well_formed)
    payload = np.where(in_range, raw & 0x7F, 0).astype(np.uint64)
    value = np.bitwise_or.reduce(payload << _SHIFTS, axis=1)
    return value.view(np.int64), ok
