"""Remote write 1.0 `Exemplar` messages -> `ExemplarBatch`, in bulk.

The numbers are walked together (`remote_write.pbscan`): value (field 2,
double) and timestamp (field 3, int64) become columns without a Python object
each. An exemplar's labels (field 1, Label messages) become its label tuple;
exemplars are a few per request, so that tuple is the per-exemplar cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from remote_write.errors import DecodeError
from remote_write.exemplars import ExemplarBatch, LabelPairs
from remote_write.pbscan import PAD, WIRE_I64, WIRE_LEN, WIRE_VARINT, scan_fields
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
    f = scan_fields(buf, starts, starts + lengths, what="Exemplar")
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
    picked = f.pick(1, WIRE_LEN)
    pairs = [
        decode_label(data[a:b])
        for a, b in zip(f.start[picked].tolist(), f.end[picked].tolist(), strict=True)
    ]
    bounds = np.searchsorted(f.msg[picked], np.arange(n + 1)).tolist()
    labels: list[LabelPairs] = [tuple(pairs[bounds[k] : bounds[k + 1]]) for k in range(n)]
    return ExemplarBatch(np.asarray(series_idx, dtype=np.int32), timestamps, values, labels)
