"""A scrape target exposing a native histogram in Prometheus's protobuf format.

Prometheus 2.42 scrapes native histograms only from the protobuf exposition
(`io.prometheus.client.MetricFamily`, length-delimited). prometheus-client
(Python) cannot expose them, so this encodes the few messages by hand (field
numbers from the public `metrics.proto`). Each scrape sees the histogram a
little later: a fixed number of observations lands in fixed buckets per
scrape, so any two readers of the same scrapes compute the same rates.
"""

from __future__ import annotations

import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.protowire import field, uint, varint, zigzag

CONTENT_TYPE = (
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
)


def _double(number: int, value: float) -> bytes:
    return varint(number << 3 | 1) + struct.pack("<d", value)


def histogram_family(
    name: str,
    labels: dict[str, str],
    *,
    schema: int,
    zero_threshold: float,
    zero_count: int,
    total_sum: float,
    buckets: dict[int, int],
) -> bytes:
    """One MetricFamily (type HISTOGRAM) with one native histogram, delimited."""
    idx = sorted(buckets)
    spans = b""
    deltas = b""
    prev_end = None
    run_start = None
    run_len = 0
    prev_count = 0
    spans_list: list[tuple[int, int]] = []
    for i in idx:
        if prev_end is not None and i == prev_end:
            run_len += 1
        else:
            if run_start is not None:
                spans_list.append((run_start, run_len))
            run_start = i if prev_end is None else i - prev_end
            run_len = 1
        prev_end = i + 1
        deltas += varint(zigzag(buckets[i] - prev_count))
        prev_count = buckets[i]
    if run_start is not None:
        spans_list.append((run_start, run_len))
    for offset, length in spans_list:
        spans += field(12, uint(1, zigzag(offset) & 0xFFFFFFFF) + uint(2, length))
    count = zero_count + sum(buckets.values())
    hist = (
        uint(1, count)
        + _double(2, total_sum)
        + uint(5, zigzag(schema))
        + _double(6, zero_threshold)
        + uint(7, zero_count)
        + spans
        + field(13, deltas)
    )
    metric = b"".join(
        field(1, field(1, k.encode()) + field(2, v.encode())) for k, v in labels.items()
    )
    metric += field(7, hist)
    family = field(1, name.encode()) + field(2, b"test histogram") + uint(3, 4) + field(4, metric)
    return varint(len(family)) + family


class HistogramTarget:
    """Serves /metrics; every scrape adds `per_scrape` observations (bucket -> count)."""

    def __init__(self, name: str, per_scrape: dict[int, int], *, schema: int = 3) -> None:
        self.name = name
        self.per_scrape = per_scrape
        self.schema = schema
        self.scrapes = 0
        self._lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = target.body()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def body(self) -> bytes:
        with self._lock:
            self.scrapes += 1
            n = self.scrapes
        buckets = {i: c * n for i, c in self.per_scrape.items()}
        total_sum = float(n * sum(c * (1 + 0.01 * i) for i, c in self.per_scrape.items()))
        return histogram_family(
            self.name,
            {"path": "/api"},
            schema=self.schema,
            zero_threshold=1e-128,
            zero_count=n,
            total_sum=total_sum,
            buckets=buckets,
        )

    def __enter__(self) -> HistogramTarget:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
