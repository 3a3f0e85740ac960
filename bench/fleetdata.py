"""A day of realistic fleet metrics as numpy columns (for the tiering benchmark and tests).

Shaped after what a Kubernetes fleet's Prometheus actually holds, per scrape
target: classic-histogram buckets (integer counters, most of them barely
moving), their `_sum` (a float counter with arbitrary digits) and `_count`,
request counters, CPU-seconds counters with two decimals, memory and network
byte counts, small integer gauges, constant state gauges (0/1), and
summary quantiles (arbitrary floats). Every target is scraped every 15 s at
its own offset; a few targets disappear during the day (their series end with
a stale marker) and replacements appear. Values come from a seeded generator,
so two runs hold the same data.

`generate(targets, hours)` returns a `FleetData`: labels per series plus every
series' samples in CSR layout (`offsets`, `timestamps`, `values`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from remote_write.batch import STALE_NAN

SCRAPE_MS = 15_000
HOUR_MS = 3_600_000
BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf")
HANDLERS = ("/api/v1/query", "/api/v1/write", "/metrics")
CPU_MODES = ("idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user")
CLUSTERS = ("eu-west", "us-east", "ap-south", "edge-1")


@dataclass(frozen=True, slots=True)
class FleetData:
    """Series labels and their samples, CSR: series i owns [offsets[i], offsets[i+1])."""

    labels: list[dict[str, str]]
    offsets: NDArray[np.int64]
    timestamps: NDArray[np.int64]
    values: NDArray[np.float64]

    @property
    def num_samples(self) -> int:
        return len(self.timestamps)

    def series(self, i: int) -> tuple[dict[str, str], NDArray[np.int64], NDArray[np.float64]]:
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.labels[i], self.timestamps[lo:hi], self.values[lo:hi]


def _counter(rng: np.random.Generator, n: int, mean_step: float, start: float) -> NDArray:
    """An integer counter: Poisson increments, one reset somewhere in a few percent."""
    steps = rng.poisson(mean_step, n).astype(np.float64)
    steps[0] = start
    out = np.cumsum(steps)
    if rng.random() < 0.03 and n > 10:  # a restarted process
        at = int(rng.integers(1, n))
        out[at:] -= out[at - 1]
    return out


def _target_series(
    rng: np.random.Generator, target: int, cluster: str, n: int
) -> Iterator[tuple[dict[str, str], NDArray[np.float64]]]:
    """(labels, values) of every series of one scrape target with `n` scrapes."""
    base = {"cluster": cluster, "instance": f"10.{target >> 8 & 255}.{target & 255}.1:9100"}
    app = {**base, "job": "api", "namespace": f"ns-{target % 12}"}
    node = {**base, "job": "node"}
    load = rng.uniform(0.2, 5.0)  # requests per second of this target
    for h, handler in enumerate(HANDLERS):
        share = load / (h + 1)
        counts = _counter(rng, n, share * 15, float(rng.integers(0, 10**6)))
        # Latency buckets: cumulative shares of the requests.
        cum = np.sort(rng.dirichlet(np.ones(len(BUCKETS)) * 0.6).cumsum())
        cum[-1] = 1.0
        for le, frac in zip(BUCKETS, cum.tolist(), strict=True):
            yield (
                {"__name__": "http_request_duration_seconds_bucket", **app, "handler": handler}
                | {"le": le},
                np.floor(counts * frac),
            )
        mean_latency = rng.uniform(0.005, 0.4)
        inc = np.diff(counts, prepend=counts[0])
        inc[inc < 0] = counts[inc < 0]
        sums = np.cumsum(inc * rng.gamma(4.0, mean_latency / 4.0, n))
        yield {"__name__": "http_request_duration_seconds_sum", **app, "handler": handler}, sums
        yield {"__name__": "http_request_duration_seconds_count", **app, "handler": handler}, counts
        for code in ("200", "500"):
            rate = share * (15 if code == "200" else 0.05)
            yield (
                {"__name__": "http_requests_total", **app, "handler": handler, "code": code},
                _counter(rng, n, rate, float(rng.integers(0, 10**5))),
            )
    busy = rng.uniform(0.05, 0.6)
    for mode in CPU_MODES:
        share = (1 - busy) if mode == "idle" else busy / 7
        per_scrape = np.round(rng.normal(share * 15, share, n).clip(0), 2)
        start = np.round(rng.uniform(1e4, 1e7), 2)
        per_scrape[0] = start
        yield (
            {"__name__": "node_cpu_seconds_total", **node, "cpu": "0", "mode": mode},
            np.round(np.cumsum(per_scrape), 2),
        )
    for name in ("MemAvailable", "MemFree", "Cached", "Buffers", "Active", "Inactive"):
        level = rng.integers(2**28, 2**34)
        walk = np.cumsum(rng.integers(-300, 301, n)) * 4096
        yield {"__name__": f"node_memory_{name}_bytes", **node}, (level + walk).astype(np.float64)
    for name in ("MemTotal", "SwapTotal", "HugePages_Total", "Hugepagesize"):
        yield (
            {"__name__": f"node_memory_{name}_bytes", **node},
            np.full(n, float(rng.integers(0, 2**36))),
        )
    for device in ("eth0", "lo"):
        for way in ("receive", "transmit"):
            yield (
                {"__name__": f"node_network_{way}_bytes_total", **node, "device": device},
                _counter(rng, n, rng.uniform(1e3, 1e6), float(rng.integers(0, 10**12))),
            )
    for minutes in ("1", "5", "15"):
        yield (
            {"__name__": f"node_load{minutes}", **node},
            np.round(np.abs(busy * 8 + np.cumsum(rng.normal(0, 0.02, n))), 2),
        )
    yield (
        {"__name__": "go_goroutines", **app},
        (40 + np.cumsum(rng.integers(-1, 2, n)).clip(-30, None)).astype(np.float64),
    )
    yield (
        {"__name__": "process_open_fds", **app},
        (20 + rng.integers(0, 3, n) * rng.integers(0, 2, n)).astype(np.float64),
    )
    yield (
        {"__name__": "process_resident_memory_bytes", **app},
        (rng.integers(2**26, 2**29) + np.cumsum(rng.integers(-50, 51, n)) * 4096).astype(
            np.float64
        ),
    )
    yield (
        {"__name__": "process_cpu_seconds_total", **app},
        np.round(np.cumsum(np.round(rng.uniform(0, busy * 15, n), 2)), 2),
    )
    yield {"__name__": "up", **app}, np.ones(n)
    for q in ("0", "0.25", "0.5", "0.75", "1"):
        level = rng.uniform(1e-5, 1e-2) * (1 + float(q))
        changes = rng.random(n) < 0.2
        noise = rng.lognormal(0, 0.3, n)
        values = level * noise
        values[~changes] = np.nan
        values[0] = level
        keep = np.maximum.accumulate(np.where(np.isnan(values), 0, np.arange(n)))
        yield {"__name__": "go_gc_duration_seconds", **app, "quantile": q}, values[keep]
    for k in range(16):
        yield (
            {"__name__": "kube_pod_status_ready", **base, "pod": f"pod-{target}-{k}"},
            np.full(n, float(k % 5 != 0)),
        )


def generate(targets: int, hours: float, *, start_ms: int, seed: int = 7) -> FleetData:
    """`targets` scrape targets (about 110 series each) over `hours` from `start_ms`."""
    rng = np.random.default_rng(seed)
    points = int(hours * HOUR_MS // SCRAPE_MS)
    labels: list[dict[str, str]] = []
    ts_parts: list[NDArray[np.int64]] = []
    value_parts: list[NDArray[np.float64]] = []
    for target in range(targets):
        cluster = CLUSTERS[target % len(CLUSTERS)]
        offset = int(rng.integers(0, SCRAPE_MS))
        first, last = 0, points
        if target % 50 == 49:  # a target that goes away during the period
            last = int(rng.integers(points // 4, points))
        elif target % 50 == 48:  # its replacement, appearing later
            first = int(rng.integers(1, points // 2))
        n = last - first
        ts = start_ms + offset + (first + np.arange(n, dtype=np.int64)) * SCRAPE_MS
        for lbl, values in _target_series(rng, target, cluster, n):
            values = values.astype(np.float64)
            if last < points:
                values = values.copy()
                values[-1] = STALE_NAN  # the last scrape failed: Prometheus writes a marker
            labels.append(lbl)
            ts_parts.append(ts)
            value_parts.append(values)
    counts = np.array([len(t) for t in ts_parts], dtype=np.int64)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return FleetData(labels, offsets, np.concatenate(ts_parts), np.concatenate(value_parts))
