"""The service's own metrics, in its own prometheus-client registry (never the global one).

Names share the `aggregator_` prefix. Ingest counters carry the writing
cluster (`cluster=""` when writes are open and the sender is not known);
HTTP metrics carry the route pattern as `handler` (bounded, unlike paths).
Gauges that describe storage (active series per cluster, readiness) are read
from their source at scrape time, so they are never stale.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from aggregator.tieringmetrics import TieringCollector, TieringSource
from remote_write.batch import Rejection
from storage.blocks.cache import ReadCost

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
)
FSYNC_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
)

BYTES_BUCKETS = tuple(float(1 << k) for k in range(10, 36, 2))
"""1 KiB to 32 GiB, by powers of 4."""
REQUEST_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 20000)

ActiveSeriesSource = Callable[[], Mapping[str, int]]
ReadySource = Callable[[], bool]


class SelfMetrics:
    """Counters and histograms the handlers update, plus the exposition of all of them."""

    def __init__(self, *, version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self._state = _StateCollector()
        r.register(self._state)

        Gauge(
            "aggregator_build_info",
            "A metric with a constant '1' value labeled by the build's version.",
            ["version", "python_version"],
            registry=r,
        ).labels(version, platform.python_version()).set(1)
        self.samples_received = Counter(
            "aggregator_received_samples_total",
            "Float samples received by remote write (before validation).",
            ["cluster"],
            registry=r,
        )
        self.series_received = Counter(
            "aggregator_received_series_total",
            "Time series entries received by remote write (one per series per request).",
            ["cluster"],
            registry=r,
        )
        self.bytes_received = Counter(
            "aggregator_received_bytes_total",
            "Remote-write request bytes received, as sent (compressed).",
            ["cluster"],
            registry=r,
        )
        self.decoded_bytes_received = Counter(
            "aggregator_received_decoded_bytes_total",
            "Remote-write request bytes received, after snappy decompression.",
            ["cluster"],
            registry=r,
        )
        self.samples_rejected = Counter(
            "aggregator_rejected_samples_total",
            "Received samples not written, by reason (e.g. too_far_in_future, series_limit).",
            ["cluster", "reason"],
            registry=r,
        )
        self.items_dropped = Counter(
            "aggregator_dropped_items_total",
            "Received items that are not stored, by kind (e.g. exemplar_out_of_order).",
            ["cluster", "kind"],
            registry=r,
        )
        self.write_errors = Counter(
            "aggregator_write_requests_failed_total",
            "Remote-write requests refused as a whole, by reason (decode, too_large, auth, ...).",
            ["reason"],
            registry=r,
        )
        self.requests = Counter(
            "aggregator_http_requests_total",
            "HTTP requests by route and status code.",
            ["handler", "code"],
            registry=r,
        )
        self.request_duration = Histogram(
            "aggregator_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["handler"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.wal_fsync_duration = Histogram(
            "aggregator_wal_fsync_duration_seconds",
            "Duration of WAL fsyncs.",
            buckets=FSYNC_BUCKETS,
            registry=r,
        )
        self.query_store_bytes = Histogram(
            "aggregator_query_object_store_bytes",
            "Bytes one query read from the object store (cache hits not counted).",
            buckets=BYTES_BUCKETS,
            registry=r,
        )
        self.query_store_requests = Histogram(
            "aggregator_query_object_store_requests",
            "Object-store requests one query made.",
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.query_cache_bytes = Counter(
            "aggregator_query_block_cache_bytes",
            "Bytes queries read from the block cache instead of the object store.",
            registry=r,
        )

    def bind_storage(self, active_series: ActiveSeriesSource, ready: ReadySource) -> None:
        """Read active series per cluster and readiness from these at every scrape."""
        self._state.active_series = active_series
        self._state.ready = ready

    def bind_tiering(self, source: TieringSource) -> None:
        """Read the upload backlog and object-store totals from `source` at every scrape."""
        r = self.registry
        r.register(TieringCollector(source))

    def observe_query_cost(self, cost: ReadCost) -> None:
        """What one query spent on the object store."""
        self.query_store_bytes.observe(cost.bytes)
        self.query_store_requests.observe(cost.requests)
        self.query_cache_bytes.inc(cost.cached_bytes)

    def bind_reads(
        self,
        running: Callable[[], int],
        queued: Callable[[], int],
        reserved_bytes: Callable[[], int],
    ) -> None:
        """Read the query gate's state at every scrape (`aggregator.querygate`)."""
        Gauge(
            "aggregator_reads_running",
            "Reads (queries, series, labels, remote read) holding one of query.max_concurrency.",
            registry=self.registry,
        ).set_function(running)
        Gauge(
            "aggregator_reads_queued",
            "Reads waiting for a slot (at most query.max_queued).",
            registry=self.registry,
        ).set_function(queued)
        Gauge(
            "aggregator_reads_memory_reserved_bytes",
            "Memory reserved by running reads (counted against query.max_memory).",
            registry=self.registry,
        ).set_function(reserved_bytes)

    def observe_wal_fsync(self, seconds: float) -> None:
        """`StorageOptions.on_wal_fsync` callback (thread-safe)."""
        self.wal_fsync_duration.observe(seconds)

    def count_rejections(self, cluster: str, rejections: Iterable[Rejection]) -> None:
        by_reason: dict[str, int] = {}
        for r in rejections:
            by_reason[r.reason] = by_reason.get(r.reason, 0) + r.samples
        for reason, samples in by_reason.items():
            self.samples_rejected.labels(cluster, reason).inc(samples)

    def count_dropped(self, cluster: str, dropped: Mapping[str, int]) -> None:
        for kind, count in dropped.items():
            self.items_dropped.labels(cluster, kind).inc(count)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The text (or OpenMetrics, if the scraper asks) exposition and its content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class _StateCollector(Collector):
    """Gauges read from storage when scraped; empty until storage is bound."""

    def __init__(self) -> None:
        self.active_series: ActiveSeriesSource | None = None
        self.ready: ReadySource | None = None

    def describe(self) -> Iterable[Metric]:
        return [self._active_family(), self._ready_family()]

    def collect(self) -> Iterable[Metric]:
        active = self._active_family()
        if self.active_series is not None:
            for cluster, count in sorted(self.active_series().items()):
                active.add_metric([cluster], count)
        ready = self._ready_family()
        ready.add_metric([], 1.0 if self.ready is not None and self.ready() else 0.0)
        return [active, ready]

    @staticmethod
    def _active_family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "aggregator_active_series",
            "Series in the in-memory head, by cluster label value.",
            labels=["cluster"],
        )

    @staticmethod
    def _ready_family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "aggregator_ready", "1 once storage has replayed its WAL and serves requests."
        )
