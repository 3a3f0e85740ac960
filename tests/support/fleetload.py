"""Fleet-sized load for overload tests and benchmarks: bodies, pushers, latency probes.

Bodies are built with numpy (a sample field is 18 fixed bytes while timestamps
stay in [2^35, 2^42) ms, i.e. 1971-2109), so 100k series of an hour of history
encode in about a second. `Probe` sends one request every `interval` and keeps
each one's latency (or error), the way a readiness probe or a member's remote
write would see the service.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import aiohttp
import numpy as np
import snappy
from numpy.typing import NDArray

from tests.support import protowire

WRITE_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
_TS_MIN, _TS_MAX = 1 << 35, 1 << 42


def encode_labels(pairs: Sequence[tuple[str, str]]) -> bytes:
    """Serialized Label fields of one series (send them sorted by name)."""
    return b"".join(
        protowire.field(1, protowire.field(1, n.encode()) + protowire.field(2, v.encode()))
        for n, v in pairs
    )


def encode_samples(ts: NDArray[np.int64], values: NDArray[np.float64]) -> bytes:
    """The Sample fields of one TimeSeries, built in numpy (18 bytes per sample)."""
    n = len(ts)
    if n and (int(ts.min()) < _TS_MIN or int(ts.max()) >= _TS_MAX):
        raise ValueError("timestamps outside [2^35, 2^42) ms need longer varints")
    out = np.empty((n, 18), dtype=np.uint8)
    out[:, 0] = 0x12  # TimeSeries.samples, length-delimited
    out[:, 1] = 16
    out[:, 2] = 0x09  # Sample.value, fixed64
    out[:, 3:11] = np.ascontiguousarray(values, dtype="<f8").view(np.uint8).reshape(n, 8)
    out[:, 11] = 0x10  # Sample.timestamp, varint (6 bytes here)
    t = np.asarray(ts, dtype=np.int64)
    for k in range(6):
        byte = (t >> (7 * k)) & 0x7F
        out[:, 12 + k] = byte | (0x80 if k < 5 else 0)
    return out.tobytes()


def encode_series(labels: bytes, ts: NDArray[np.int64], values: NDArray[np.float64]) -> bytes:
    """One TimeSeries field: pre-encoded labels plus samples."""
    return protowire.field(1, labels + encode_samples(ts, values))


def compress(fields: Sequence[bytes]) -> bytes:
    """A snappy-compressed WriteRequest of these TimeSeries fields."""
    return bytes(snappy.compress(b"".join(fields)))


def fleet_labels(
    n: int, *, clusters: int = 20, metrics: int = 10, cluster_prefix: str = "c"
) -> list[bytes]:
    """Encoded labels of `n` counter series spread over clusters and metric names."""
    out = []
    for i in range(n):
        pairs = [
            ("__name__", f"metric_{i % metrics}"),
            ("cluster", f"{cluster_prefix}{i % clusters}"),
            ("instance", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}:9100"),
            ("job", "node"),
        ]
        out.append(encode_labels(pairs))
    return out


def history_bodies(
    labels: Sequence[bytes],
    first_ts: int,
    points: int,
    step_ms: int,
    *,
    series_per_body: int = 200,
) -> list[bytes]:
    """Every series' `points` samples from `first_ts` every `step_ms` (counters), as bodies."""
    ts = first_ts + np.arange(points, dtype=np.int64) * step_ms
    fields = []
    for i, lbl in enumerate(labels):
        values = np.arange(points, dtype=np.float64) * (1 + i % 7)
        fields.append(encode_series(lbl, ts, values))
    return [
        compress(fields[i : i + series_per_body]) for i in range(0, len(fields), series_per_body)
    ]


def round_bodies(
    labels: Sequence[bytes], ts_ms: int, value: float, *, series_per_body: int = 2000
) -> list[bytes]:
    """One sample per series at `ts_ms` (one scrape round), as bodies."""
    one_ts = np.array([ts_ms], dtype=np.int64)
    one_value = np.array([value], dtype=np.float64)
    fields = [encode_series(lbl, one_ts, one_value) for lbl in labels]
    return [
        compress(fields[i : i + series_per_body]) for i in range(0, len(fields), series_per_body)
    ]


async def push_all(
    session: aiohttp.ClientSession,
    url: str,
    bodies: Sequence[bytes],
    *,
    concurrency: int = 4,
    headers: dict[str, str] | None = None,
) -> None:
    """POST every body (at most `concurrency` at once); raise on any non-2xx answer."""
    queue = list(reversed(bodies))
    hdrs = {**WRITE_HEADERS, **(headers or {})}

    async def sender() -> None:
        while queue:
            body = queue.pop()
            async with session.post(f"{url}/api/v1/write", data=body, headers=hdrs) as resp:
                text = await resp.text()
                if resp.status // 100 != 2:
                    raise RuntimeError(f"write: HTTP {resp.status}: {text[:300]}")

    await asyncio.gather(*(sender() for _ in range(concurrency)))


@dataclass
class Probe:
    """Latencies of one request sent every `interval` seconds (errors kept by kind)."""

    name: str
    interval: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)

    async def run(self, call: Callable[[], Awaitable[str]], stop: asyncio.Event) -> None:
        """Call `call` every interval until `stop`; it returns a status word ("200", ...)."""
        while not stop.is_set():
            started = time.perf_counter()
            try:
                status = await call()
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                status = type(exc).__name__
            self.latencies.append(time.perf_counter() - started)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            rest = self.interval - (time.perf_counter() - started)
            if rest > 0:
                try:
                    await asyncio.wait_for(stop.wait(), rest)
                except TimeoutError:
                    pass

    def quantile(self, q: float) -> float:
        return quantile(self.latencies, q)

    def summary(self) -> str:
        worst = max(self.latencies, default=0.0)
        return (
            f"{self.name}: n={len(self.latencies)} p50={self.quantile(0.5) * 1000:.0f}ms "
            f"p99={self.quantile(0.99) * 1000:.0f}ms max={worst * 1000:.0f}ms "
            f"statuses={self.statuses}"
        )


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (nearest rank) of `values`; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
