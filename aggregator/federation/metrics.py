"""Per-cluster federation metrics, registered in the service's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from aggregator.selfmetrics import LATENCY_BUCKETS


class FederationMetrics:
    """Requests to member clusters, the bytes they moved, and their health."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "aggregator_federation_requests_total",
            "Requests sent to pull clusters, by kind (read, query, health) and result.",
            ["cluster", "kind", "result"],
            registry=registry,
        )
        self.received_bytes = Counter(
            "aggregator_federation_received_bytes_total",
            "Response bytes received from pull clusters (as sent, i.e. compressed), by kind.",
            ["cluster", "kind"],
            registry=registry,
        )
        self.duration = Histogram(
            "aggregator_federation_request_duration_seconds",
            "Duration of requests to pull clusters, by kind.",
            ["cluster", "kind"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.up = Gauge(
            "aggregator_cluster_up",
            "1 if the pull cluster passed its last health check (push: 1 if not stale).",
            ["cluster", "mode"],
            registry=registry,
        )
        self.last_success = Gauge(
            "aggregator_cluster_last_success_timestamp_seconds",
            "When a pull cluster last passed a health check, or a push cluster's newest sample.",
            ["cluster", "mode"],
            registry=registry,
        )
