"""Per-cluster ingest rate limits: samples per second with a burst, answered with 429.

One token bucket per push cluster (or one for all writers while writes are
open): it refills at `ingest_rate` samples/s up to `ingest_burst` and each
write takes its samples from it. A write is let through whenever the bucket
is not empty, even if it holds fewer samples than the write brings (the
bucket then goes into debt), so a request bigger than the burst is never
refused forever; a write arriving while the bucket is in debt is refused with
429 and a `Retry-After` of the seconds the debt takes to pay off. Over time a
cluster writes at most its rate, and one misconfigured member can no longer
take the ingest path from the others.

Limits: `limits.ingest_rate` / `limits.ingest_burst` for every cluster,
`clusters[].ingest_rate` / `ingest_burst` for one. A rate of 0 means no limit;
a burst of 0 means one second's worth of the rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

from aggregator.clusterconfig import PushCluster
from aggregator.config import LimitsConfig
from aggregator.errors import RateLimited


class TokenBucket:
    """`rate` tokens per second up to `burst`; `take` may leave it in debt."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, n: int, now: float) -> float:
        """Take `n` tokens; returns 0, or the seconds to wait when the bucket is in debt."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens <= 0:
            return -self.tokens / self.rate if self.rate > 0 else math.inf
        self.tokens -= n
        return 0.0


class IngestLimiter:
    """The ingest buckets of every push cluster (see the module docstring)."""

    def __init__(
        self,
        limits: LimitsConfig,
        clusters: Iterable[PushCluster],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._limits: dict[str | None, tuple[float, float, str]] = {}
        default = _limit(limits.ingest_rate, limits.ingest_burst, "limits.ingest_rate")
        self._default = default
        for i, c in enumerate(clusters):
            if c.ingest_rate is None and c.ingest_burst is None:
                continue
            rate = c.ingest_rate if c.ingest_rate is not None else limits.ingest_rate
            burst = c.ingest_burst if c.ingest_burst is not None else limits.ingest_burst
            self._limits[c.name] = _limit(rate, burst, f"clusters[{i}].ingest_rate ({c.name})")
        self._buckets: dict[str | None, TokenBucket] = {}

    def admit(self, cluster: str | None, samples: int) -> None:
        """Count `samples` written by `cluster`; raises RateLimited when it is over its rate."""
        rate, burst, key = self._limits.get(cluster, self._default)
        if rate <= 0:
            return
        now = self._clock()
        bucket = self._buckets.get(cluster)
        if bucket is None:
            bucket = self._buckets[cluster] = TokenBucket(rate, burst, now)
        wait = bucket.take(samples, now)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            who = f"cluster {cluster!r}" if cluster is not None else "writers"
            raise RateLimited(
                f"{who} is over its ingest rate limit of {rate:g} samples/s ({key}, burst "
                f"{burst:g}): retry after {retry}s",
                retry_after_s=retry,
            )


def _limit(rate: float, burst: int, key: str) -> tuple[float, float, str]:
    return rate, float(burst) if burst > 0 else rate, key
