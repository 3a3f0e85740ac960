"""Remote write 2.0 requests for tests, built with the schema generated from the spec.

`request_v2` interns every string into the symbols table (the empty string
first, as the specification requires) and returns the snappy-compressed
`io.prometheus.write.v2.Request`; `raw=True` returns the message itself, for
tests that break it on purpose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import snappy

from remote_write.prompb import write_v2_pb2

Pairs = Sequence[tuple[str, str]]
RW2_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request",
    "X-Prometheus-Remote-Write-Version": "2.0.0",
}

METRIC_TYPE = {
    "unknown": 0,
    "counter": 1,
    "gauge": 2,
    "histogram": 3,
    "gaugehistogram": 4,
    "summary": 5,
    "info": 6,
    "stateset": 7,
}


@dataclass
class SeriesV2:
    """One TimeSeries of a 2.0 request."""

    labels: Pairs
    samples: Sequence[tuple[int, float]] = ()
    exemplars: Sequence[tuple[Pairs, float, int]] = ()
    metric_type: str = ""
    help: str = ""
    unit: str = ""
    created_ms: int = 0
    histograms: Sequence[dict[str, Any]] = field(default_factory=list)
    """Keyword arguments of `write_v2_pb2.Histogram` messages."""


def build_v2(series: Sequence[SeriesV2]) -> write_v2_pb2.Request:
    """The Request message for `series`."""
    request = write_v2_pb2.Request()
    table: dict[str, int] = {}

    def ref(text: str) -> int:
        if text not in table:
            table[text] = len(table)
            request.symbols.append(text)
        return table[text]

    ref("")
    for s in series:
        ts = request.timeseries.add()
        for name, value in s.labels:
            ts.labels_refs.extend([ref(name), ref(value)])
        for t, v in s.samples:
            ts.samples.add(timestamp=t, value=v)
        for labels, value, t in s.exemplars:
            ex = ts.exemplars.add(value=value, timestamp=t)
            for name, lvalue in labels:
                ex.labels_refs.extend([ref(name), ref(lvalue)])
        if s.metric_type or s.help or s.unit:
            ts.metadata.type = METRIC_TYPE[s.metric_type or "unknown"]
            ts.metadata.help_ref = ref(s.help)
            ts.metadata.unit_ref = ref(s.unit)
        if s.created_ms:
            ts.created_timestamp = s.created_ms
        for h in s.histograms:
            ts.histograms.add(**h)
    return request


def request_v2(series: Sequence[SeriesV2]) -> bytes:
    """The snappy-compressed 2.0 request for `series`."""
    return snappy.compress(build_v2(series).SerializeToString())
