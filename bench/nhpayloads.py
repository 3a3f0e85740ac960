"""Remote-write payloads of native histograms, for the ingest benchmark.

Each series carries one histogram per request (what a scraping Prometheus
sends): schema 3, a zero bucket and 12 populated buckets in two spans, integer
counts growing round by round, as a real latency histogram's would.
"""

from __future__ import annotations

from collections.abc import Sequence

import snappy

from remote_write.prompb import remote_pb2

HISTOGRAMS_PER_REQUEST = 500


def _labels(i: int) -> list[tuple[str, str]]:
    return [
        ("__name__", f"bench_latency_seconds_{i % 20}"),
        ("cluster", "bench"),
        ("instance", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}:9100"),
        ("job", "api"),
        ("namespace", f"ns-{i % 50}"),
        ("pod", f"pod-{i}"),
    ]


def build_round(series: int, ts: int, r: int) -> list[bytes]:
    """One round: every series gets one histogram at `ts`; bodies of HISTOGRAMS_PER_REQUEST."""
    bodies = []
    for start in range(0, series, HISTOGRAMS_PER_REQUEST):
        req = remote_pb2.WriteRequest()
        for i in range(start, min(series, start + HISTOGRAMS_PER_REQUEST)):
            s = req.timeseries.add()
            for name, value in _labels(i):
                s.labels.add(name=name, value=value)
            h = s.histograms.add()
            base = r + 1 + i % 7
            counts = [base * (k + 1) for k in range(12)]
            h.count_int = base + sum(counts)
            h.sum = float(sum(counts)) * 0.25
            h.schema = 3
            h.zero_threshold = 1e-128
            h.zero_count_int = base
            h.positive_spans.add(offset=-4, length=6)
            h.positive_spans.add(offset=2, length=6)
            prev = 0
            for c in counts:
                h.positive_deltas.append(c - prev)
                prev = c
            h.timestamp = ts
        bodies.append(snappy.compress(req.SerializeToString()))
    return bodies


def build_rounds(series: int, rounds: int, first_ts: int, interval_ms: int) -> list[list[bytes]]:
    return [build_round(series, first_ts + r * interval_ms, r) for r in range(rounds)]


def flatten(rounds: Sequence[Sequence[bytes]]) -> list[bytes]:
    return [b for rnd in rounds for b in rnd]
