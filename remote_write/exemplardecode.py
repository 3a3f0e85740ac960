"""Remote write `Exemplar` messages (1.0 and 2.0) -> `ExemplarBatch`, in bulk.

The numbers are walked together (`remote_write.pbscan`): value (field 2,
double) and timestamp (field 3, int64) become columns without a Python object
each. An exemplar's labels (field 1: Label messages in 1.0, packed references
into the symbols table in 2.0) become its label tuple; exemplars are a few per
request, so that tuple is the per-exemplar cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from remote_write.errors import DecodeError
from remote_write.exemplars import ExemplarBatch, LabelPairs
from remote_write.pbscan import (
    PAD,
    WIRE_I64,
    WIRE_LEN,
    WIRE_VARINT,
    Fields,
    packed_varints,
    scan_fields,
)
from remote_write.wirelabels import decode_label

_KNOWN = {1: WIRE_LEN, 2: WIRE_I64, 3: WIRE_VARINT}


def decode_exemplar_messages(
    messages: Sequence[bytes], series_idx: NDArray[np.int32]
) -> ExemplarBatch:
    """One exemplar per serialized message; `series_idx[i]` is message i's series."""
    n = len(messages)
    if not n:
        return ExemplarBatch.empty()
    lengths = np.fromiter(map(len, messages), dtype=np.int64, count=n)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    data = b"".join(messages)
    buf = np.frombuffer(data + bytes(PAD), dtype=np.uint8)
    f, values, timestamps = _numbers(buf, starts, starts + lengths)
    picked = f.pick(1, WIRE_LEN)
    pairs = [
        decode_label(data[a:b])
        for a, b in zip(f.start[picked].tolist(), f.end[picked].tolist(), strict=True)
    ]
    bounds = np.searchsorted(f.msg[picked], np.arange(n + 1)).tolist()
    labels: list[LabelPairs] = [tuple(pairs[bounds[k] : bounds[k + 1]]) for k in range(n)]
    return ExemplarBatch(np.asarray(series_idx, dtype=np.int32), timestamps, values, labels)


def decode_exemplars_v2(
    buf: NDArray[np.uint8],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    series_idx: NDArray[np.int64],
    symbols: Sequence[bytes],
) -> tuple[ExemplarBatch, NDArray[np.bool_]]:
    """The 2.0 Exemplar messages at `buf[starts[i]:ends[i]]` (`buf` padded by PAD),
    message i of series `series_idx[i]`, their labels resolved in `symbols`; and per
    exemplar whether its references are broken (malformed, odd, or past the table:
    such an exemplar gets no labels, and the caller refuses its series)."""
    n = len(starts)
    f, values, timestamps = _numbers(buf, starts, ends)
    picked = f.pick(1, WIRE_LEN)
    raw_refs, counts, ok = packed_varints(buf, f.start[picked], f.end[picked])
    per_exemplar = np.bincount(f.msg[picked], weights=counts, minlength=n).astype(np.int64)
    refs = np.minimum(raw_refs, 1 << 40).astype(np.int64) if len(raw_refs) else _NO_REFS
    broken = np.zeros(n, dtype=np.bool_)
    broken[f.msg[picked][~ok]] = True
    broken |= per_exemplar % 2 == 1
    past = refs >= len(symbols)
    broken[np.repeat(np.arange(n), per_exemplar)[past]] = True
    refs = np.where(past, 0, refs)
    strings = [symbols[r].decode("utf-8", "surrogateescape") for r in refs.tolist()]
    b = np.concatenate(([0], np.cumsum(per_exemplar))).tolist()
    labels: list[LabelPairs] = [
        ()
        if broken[k]
        else tuple(zip(strings[b[k] : b[k + 1] : 2], strings[b[k] + 1 : b[k + 1] : 2], strict=True))
        for k in range(n)
    ]
    batch = ExemplarBatch(np.asarray(series_idx, dtype=np.int32), timestamps, values, labels)
    return batch, broken


_NO_REFS = np.zeros(0, dtype=np.int64)


def _numbers(
    buf: NDArray[np.uint8], starts: NDArray[np.int64], ends: NDArray[np.int64]
) -> tuple[Fields, NDArray[np.float64], NDArray[np.int64]]:
    """The fields of the Exemplar messages (checked), and their values and timestamps."""
    n = len(starts)
    f = scan_fields(buf, starts, ends, what="Exemplar")
    assert f is not None
    wrong = f.other(_KNOWN)
    if len(wrong):
        k = int(wrong[0])
        raise DecodeError(
            f"protobuf: field {int(f.number[k])} of exemplar #{int(f.msg[k])} has wire type "
            f"{int(f.wire[k])}"
        )
    values = np.zeros(n, dtype=np.float64)
    picked = f.pick(2, WIRE_I64)
    if len(picked):
        values[f.msg[picked]] = buf[f.start[picked, None] + np.arange(8)].copy().view("<f8")[:, 0]
    timestamps = np.zeros(n, dtype=np.int64)
    picked = f.pick(3, WIRE_VARINT)
    timestamps[f.msg[picked]] = f.value[picked].view(np.int64)
    return f, values, timestamps
