"""Building remote-write requests with native histograms, for tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import snappy

from remote_write.prompb import remote_pb2


@dataclass
class H:
    """One native histogram sample as a test writes it (absolute bucket counts)."""

    ts: int
    count: float
    sum: float = 0.0
    schema: int = 0
    zero_threshold: float = 0.0
    zero_count: float = 0.0
    positive: dict[int, float] = field(default_factory=dict)
    negative: dict[int, float] = field(default_factory=dict)
    custom_values: Sequence[float] = ()
    float_counts: bool = False
    reset_hint: int = 0


def _spans(buckets: dict[int, float]) -> tuple[list[tuple[int, int]], list[float]]:
    idx = sorted(buckets)
    spans: list[tuple[int, int]] = []
    prev_end = None
    for i in idx:
        if prev_end is not None and i == prev_end:
            spans[-1] = (spans[-1][0], spans[-1][1] + 1)
        else:
            spans.append((i if prev_end is None else i - prev_end, 1))
        prev_end = i + 1
    return spans, [buckets[i] for i in idx]


def request(series: Sequence[tuple[dict[str, str], Sequence[H]]], floats=()) -> bytes:
    """A snappy-compressed WriteRequest: `series` with histograms, `floats` as
    (labels, [(ts, value)]) with float samples."""
    req = remote_pb2.WriteRequest()
    for labels, hs in series:
        ts = req.timeseries.add()
        for k in sorted(labels):
            ts.labels.add(name=k, value=labels[k])
        for h in hs:
            m = ts.histograms.add()
            if h.float_counts:
                m.count_float = h.count
                m.zero_count_float = h.zero_count
            else:
                m.count_int = int(h.count)
                m.zero_count_int = int(h.zero_count)
            m.sum = h.sum
            m.schema = h.schema
            m.zero_threshold = h.zero_threshold
            m.timestamp = h.ts
            m.reset_hint = h.reset_hint
            for side, spans_f, deltas_f, counts_f in (
                (h.positive, m.positive_spans, m.positive_deltas, m.positive_counts),
                (h.negative, m.negative_spans, m.negative_deltas, m.negative_counts),
            ):
                spans, vals = _spans(side)
                for o, n in spans:
                    spans_f.add(offset=o, length=n)
                if h.float_counts:
                    counts_f.extend(vals)
                else:
                    prev = 0
                    for v in vals:
                        deltas_f.append(int(v) - prev)
                        prev = int(v)
            m.custom_values.extend(h.custom_values)
    for labels, samples in floats:
        ts = req.timeseries.add()
        for k in sorted(labels):
            ts.labels.add(name=k, value=labels[k])
        for t, v in samples:
            ts.samples.add(timestamp=t, value=v)
    return snappy.compress(req.SerializeToString())
