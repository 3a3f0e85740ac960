"""`HistogramBatch` -> protobuf `Histogram` messages (remote write 1.0).

The encode side is not on the ingest hot path (it serves the WAL for batches
that came without a body, recording rules, the sender and tests), so it
builds one protobuf message per histogram; bucket values go in as lists.
"""

from __future__ import annotations

import numpy as np

from remote_write.histograms import HistogramBatch, spans_from_buckets
from remote_write.prompb import remote_pb2, types_pb2


def add_histograms(request: remote_pb2.WriteRequest, hb: HistogramBatch) -> None:
    """Append each histogram of `hb` to `request.timeseries[hb.series_idx[i]]`."""
    series = request.timeseries
    for i in range(len(hb)):
        msg = series[int(hb.series_idx[i])].histograms.add()
        fill_histogram(msg, hb, i)


def fill_histogram(msg: types_pb2.Histogram, hb: HistogramBatch, i: int) -> None:
    """Write row `i` of `hb` into `msg` (integer deltas unless it has float counts)."""
    is_float = bool(hb.float_counts[i])
    if is_float:
        msg.count_float = float(hb.count[i])
        msg.zero_count_float = float(hb.zero_count[i])
    else:
        msg.count_int = int(hb.count[i])
        msg.zero_count_int = int(hb.zero_count[i])
    msg.sum = float(hb.sum[i])
    msg.schema = int(hb.schema[i])
    msg.zero_threshold = float(hb.zero_threshold[i])
    msg.reset_hint = int(hb.reset_hint[i])  # type: ignore[assignment]
    msg.timestamp = int(hb.timestamps[i])
    for spans, deltas, counts, off, index, values in (
        (msg.positive_spans, msg.positive_deltas, msg.positive_counts,
         hb.pos_offsets, hb.pos_index, hb.pos_counts),
        (msg.negative_spans, msg.negative_deltas, msg.negative_counts,
         hb.neg_offsets, hb.neg_index, hb.neg_counts),
    ):  # fmt: skip
        lo, hi = int(off[i]), int(off[i + 1])
        pairs, _ = spans_from_buckets(index[lo:hi])
        for offset, length in pairs:
            spans.add(offset=offset, length=length)
        vals = values[lo:hi]
        if is_float:
            counts.extend(vals.tolist())
        else:
            ints = vals.astype(np.int64)
            deltas.extend(np.diff(ints, prepend=0).tolist())
    lo, hi = int(hb.cv_offsets[i]), int(hb.cv_offsets[i + 1])
    if hi > lo:
        msg.custom_values.extend(hb.custom_values[lo:hi].tolist())
