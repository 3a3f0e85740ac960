"""Self-metrics of tiering, read from storage at scrape time (never stale).

The upload backlog (`aggregator_tiering_pending_*`: what waits on local disk
for the object store), the blocks in the store, totals of cuts, uploads,
compactions and deletions, every object-store operation (requests, failures,
bytes) and the block cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from storage.tiering.status import TieringMetrics

TieringSource = Callable[[], TieringMetrics | None]


class TieringCollector(Collector):
    """Gauges and counters from one `TieringMetrics` snapshot per scrape."""

    def __init__(self, source: TieringSource) -> None:
        self.source = source

    def describe(self) -> Iterable[Metric]:
        return []  # families depend on the snapshot; nothing to check at registration

    def collect(self) -> Iterable[Metric]:
        m = self.source()
        if m is None:
            return []

        def gauge(name: str, doc: str, value: float) -> Metric:
            family = GaugeMetricFamily(f"aggregator_{name}", doc)
            family.add_metric([], value)
            return family

        def counter(name: str, doc: str, value: float) -> Metric:
            family = CounterMetricFamily(f"aggregator_{name}", doc)
            family.add_metric([], value)
            return family

        s = m.stats
        out = [
            gauge(
                "tiering_pending_blocks",
                "Blocks written locally and waiting for their upload (the backlog).",
                m.pending_blocks,
            ),
            gauge(
                "tiering_pending_bytes", "Bytes of the blocks waiting for upload.", m.pending_bytes
            ),
            gauge(
                "tiering_pending_samples",
                "Samples in the blocks waiting for upload.",
                m.pending_samples,
            ),
            gauge(
                "tiering_oldest_pending_seconds",
                "How long the oldest block waiting for upload has waited.",
                m.oldest_pending_s,
            ),
            gauge("tiering_blocks", "Live blocks in the object store.", m.blocks),
            gauge(
                "tiering_block_bytes",
                "Bytes of the live blocks in the object store.",
                m.block_bytes,
            ),
            counter("tiering_blocks_cut", "Blocks cut from the head.", s.blocks_cut),
            counter("tiering_blocks_uploaded", "Blocks uploaded and verified.", s.blocks_uploaded),
            counter("tiering_uploaded_bytes", "Bytes of blocks uploaded.", s.bytes_uploaded),
            counter("tiering_upload_failures", "Failed block upload attempts.", s.upload_failures),
            counter("tiering_compactions", "Blocks made by compaction.", s.compactions),
            counter("tiering_downsamples", "Downsampled blocks made.", s.downsamples),
            counter(
                "tiering_blocks_deleted",
                "Blocks deleted (superseded or past retention).",
                s.blocks_deleted,
            ),
            gauge("block_cache_bytes", "Bytes in the block cache.", m.cache_bytes),
        ]
        cache = CounterMetricFamily(
            "aggregator_block_cache_lookups", "Block cache lookups by result.", labels=["result"]
        )
        cache.add_metric(["hit"], m.cache_hits)
        cache.add_metric(["miss"], m.cache_misses)
        requests = CounterMetricFamily(
            "aggregator_object_store_requests",
            "Object-store requests by operation.",
            labels=["operation"],
        )
        failures = CounterMetricFamily(
            "aggregator_object_store_request_failures",
            "Failed object-store requests by operation (not found is an answer, not a failure).",
            labels=["operation"],
        )
        transferred = CounterMetricFamily(
            "aggregator_object_store_transferred_bytes",
            "Bytes sent (put) or received (get, get_range) by operation.",
            labels=["operation"],
        )
        for op, stats in sorted(m.operations.items()):
            requests.add_metric([op], stats.requests)
            failures.add_metric([op], stats.failures)
            transferred.add_metric([op], stats.bytes)
        return [*out, cache, requests, failures, transferred]
