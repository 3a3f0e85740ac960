"""Self-metrics of rule evaluation and notification, named as Prometheus names them.

With the service's prefix `aggregator` the names read
`aggregator_rule_group_last_duration_seconds{rule_group="file;group"}`,
`aggregator_rule_group_iterations_missed_total`,
`aggregator_rule_evaluation_failures_total`,
`aggregator_notifications_sent_total{alertmanager="..."}` and so on: the
Prometheus names with the prefix swapped, so dashboards and alerts written
for a Prometheus ruler work after a search and replace. They live in the
registry the caller passes in (never the global one).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Summary


def group_key(file: str, name: str) -> str:
    """The `rule_group` label value: `file;group`, as Prometheus's `GroupKey`."""
    return f"{file};{name}"


class RuleMetrics:
    """Per-group evaluation metrics plus config-reload status."""

    def __init__(self, registry: CollectorRegistry, prefix: str = "aggregator") -> None:
        p = prefix
        self.eval_duration = Summary(
            f"{p}_rule_evaluation_duration_seconds",
            "The duration for a rule to execute.",
            registry=registry,
        )
        self.iteration_duration = Summary(
            f"{p}_rule_group_duration_seconds",
            "The duration of rule group evaluations.",
            registry=registry,
        )
        g = ["rule_group"]
        self.iterations_missed = Counter(
            f"{p}_rule_group_iterations_missed_total",
            "The total number of rule group evaluations missed due to slow rule group evaluation.",
            g,
            registry=registry,
        )
        self.iterations_scheduled = Counter(
            f"{p}_rule_group_iterations_total",
            "The total number of scheduled rule group evaluations, whether executed or missed.",
            g,
            registry=registry,
        )
        self.eval_total = Counter(
            f"{p}_rule_evaluations_total",
            "The total number of rule evaluations.",
            g,
            registry=registry,
        )
        self.eval_failures = Counter(
            f"{p}_rule_evaluation_failures_total",
            "The total number of rule evaluation failures.",
            g,
            registry=registry,
        )
        self.group_interval = Gauge(
            f"{p}_rule_group_interval_seconds",
            "The interval of a rule group.",
            g,
            registry=registry,
        )
        self.last_evaluation = Gauge(
            f"{p}_rule_group_last_evaluation_timestamp_seconds",
            "The timestamp of the last rule group evaluation in seconds.",
            g,
            registry=registry,
        )
        self.last_duration = Gauge(
            f"{p}_rule_group_last_duration_seconds",
            "The duration of the last rule group evaluation.",
            g,
            registry=registry,
        )
        self.group_rules = Gauge(
            f"{p}_rule_group_rules",
            "The number of rules.",
            g,
            registry=registry,
        )
        self.group_samples = Gauge(
            f"{p}_rule_group_last_evaluation_samples",
            "The number of samples returned during the last rule group evaluation.",
            g,
            registry=registry,
        )
        self.reload_success = Gauge(
            f"{p}_config_last_reload_successful",
            "Whether the last configuration (rules and alerting) reload attempt was successful.",
            registry=registry,
        )
        self.reload_success_time = Gauge(
            f"{p}_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload.",
            registry=registry,
        )

    def forget_group(self, key: str) -> None:
        """Drop a removed group's series (Prometheus deletes them too)."""
        for metric in (
            self.iterations_missed,
            self.iterations_scheduled,
            self.eval_total,
            self.eval_failures,
            self.group_interval,
            self.last_evaluation,
            self.last_duration,
            self.group_rules,
            self.group_samples,
        ):
            try:
                metric.remove(key)
            except KeyError:
                pass


class NotifierMetrics:
    """Delivery metrics per target (`alertmanager` label: the target's URL)."""

    def __init__(self, registry: CollectorRegistry, prefix: str = "aggregator") -> None:
        p = prefix
        t = ["alertmanager"]
        self.sent = Counter(
            f"{p}_notifications_sent_total",
            "Total number of alerts sent.",
            t,
            registry=registry,
        )
        self.errors = Counter(
            f"{p}_notifications_errors_total",
            "Total number of errors sending alert notifications.",
            t,
            registry=registry,
        )
        self.dropped = Counter(
            f"{p}_notifications_dropped_total",
            "Total number of alerts dropped due to errors or a full queue.",
            t,
            registry=registry,
        )
        self.latency = Summary(
            f"{p}_notifications_latency_seconds",
            "Latency quantiles for sending alert notifications.",
            t,
            registry=registry,
        )
        self.queue_length = Gauge(
            f"{p}_notifications_queue_length",
            "The number of alert notifications in the queue.",
            t,
            registry=registry,
        )
        self.queue_capacity = Gauge(
            f"{p}_notifications_queue_capacity",
            "The capacity of the alert notifications queue.",
            t,
            registry=registry,
        )
        self.targets = Gauge(
            f"{p}_notifications_alertmanagers_discovered",
            "The number of alertmanagers and webhooks alerts are sent to.",
            registry=registry,
        )
