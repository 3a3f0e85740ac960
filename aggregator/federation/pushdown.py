"""`MemberEngine`: a pull cluster's own PromQL engine, for query pushdown.

Sends the inner part of a pushed aggregation to the member's
`/api/v1/query_range` (or `/api/v1/query` for instant queries) and returns
its answer as a Matrix. The member's answer has no `cluster` label and no
external labels; `partition_labels` says which labels its series carry in
the raw path, so the engine can add them back. Failures are
`StorageUnavailable` naming the cluster, as for remote read.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable, Collection
from typing import Any

import aiohttp
import numpy as np
import orjson

from aggregator.federation.metrics import FederationMetrics
from aggregator.federation.registry import PullState
from promql.value import Matrix
from storage.errors import StorageUnavailable
from storage.labels import CLUSTER_LABEL, Labels


class MemberEngine:
    """A RemoteEngine over one healthy pull endpoint whose version and labels are known."""

    def __init__(
        self,
        state: PullState,
        metrics: FederationMetrics | None,
        on_failure: Callable[[PullState, str], None] | None = None,
    ) -> None:
        assert state.session is not None
        assert state.external_labels is not None
        self._state = state
        self._session = state.session
        self._metrics = metrics
        self._on_failure = on_failure
        cluster = state.cluster
        ext = [p for p in state.external_labels if p[0] not in cluster.external_labels_drop]
        self._partition = Labels.from_pairs([*ext, (CLUSTER_LABEL, cluster.name)])

    @property
    def name(self) -> str:
        return f'cluster "{self._state.cluster.name}"'

    @property
    def partition_labels(self) -> Labels:
        return self._partition

    @property
    def dropped_labels(self) -> Collection[str]:
        return self._state.cluster.external_labels_drop

    @property
    def legacy(self) -> bool:
        version = self._state.version or "0"
        try:
            return int(version.split(".")[0]) < 3
        except ValueError:
            return True

    async def query(
        self, query: str, start_ms: int, end_ms: int, step_ms: int, *, instant: bool
    ) -> Matrix:
        cluster = self._state.cluster
        if instant:
            path, form = "api/v1/query", {"query": query, "time": _sec(end_ms)}
        else:
            path = "api/v1/query_range"
            form = {
                "query": query,
                "start": _sec(start_ms),
                "end": _sec(end_ms),
                "step": _sec(step_ms),
            }
        started = time.monotonic()
        try:
            async with self._session.post(path, data=form) as resp:
                body = await resp.read()
                size = len(body)
                if body[:2] == b"\x1f\x8b":
                    body = gzip.decompress(body)
                status = resp.status
        except TimeoutError:
            self._observe("error", started, 0)
            raise self._unavailable(
                f"query timed out after {cluster.timeout_ms / 1000:g}s"
            ) from None
        except aiohttp.ClientError as exc:
            self._observe("error", started, 0)
            raise self._unavailable(f"query failed: {exc or type(exc).__name__}") from None
        self._observe("success" if status == 200 else "error", started, size)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise self._unavailable(f"query answered HTTP {status} with no JSON") from None
        if status != 200 or data.get("status") != "success":
            raise self._unavailable(f"query answered HTTP {status}: {data.get('error', '')}")
        return _matrix(data["data"])

    def _observe(self, result: str, started: float, size: int) -> None:
        if self._metrics is not None:
            name = self._state.cluster.name
            self._metrics.requests.labels(name, "query", result).inc()
            self._metrics.duration.labels(name, "query").observe(time.monotonic() - started)
            if size:
                self._metrics.received_bytes.labels(name, "query").inc(size)

    def _unavailable(self, reason: str) -> StorageUnavailable:
        if self._on_failure is not None:
            self._on_failure(self._state, reason)
        c = self._state.cluster
        return StorageUnavailable(f'cluster "{c.name}" ({c.url}): {reason}')


def _sec(ms: int) -> str:
    return f"{ms / 1000:.3f}"


def _matrix(data: dict[str, Any]) -> Matrix:
    """A Prometheus API result (vector or matrix) as a Matrix, converted in bulk."""
    result = data.get("result") or []
    kind = data.get("resultType")
    labels = [Labels.from_dict(s["metric"]) for s in result]
    if kind == "vector":
        points = [s["value"] for s in result]
        counts = np.ones(len(result), dtype=np.int64)
    else:
        points = [p for s in result for p in s["values"]]
        counts = np.fromiter((len(s["values"]) for s in result), np.int64, len(result))
    offsets = np.zeros(len(result) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if points:
        arr = np.array(points, dtype=object)
        ts = np.rint(arr[:, 0].astype(np.float64) * 1000).astype(np.int64)
        values = arr[:, 1].astype(str).astype(np.float64)
    else:
        ts, values = np.zeros(0, np.int64), np.zeros(0)
    return Matrix(labels, offsets, ts, values)
