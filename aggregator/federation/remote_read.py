"""`RemoteCluster`: a Querier over one pull cluster's `POST /api/v1/read`.

Every series it returns carries `cluster="<name>"` (replacing whatever the
member sent) and loses the labels in `external_labels_drop`. Matchers on
those labels are decided here, against the values the series will have,
and never sent: the member knows neither. Label names and values come from
a remote read with the `series` hint, for which Prometheus reads no chunks.

With `keep_cluster_label` (the endpoint is a shard of a scale-out, holding
many clusters) series keep the `cluster` they carry and only those without
one get `<name>`. A `cluster` matcher that rejects `<name>` is then sent (the
shard narrows its answer by it); one that accepts `<name>` cannot be, since
unlabelled series would match it only after relabelling, so it is applied
here to the relabelled series.

With `after_ms` (the endpoint is a shard whose blocks this service reads
from the object store directly, up to that time) the request carries
`BLOCKS_READ_THROUGH` = after_ms: the shard answers from its blocks only
what is newer, and from its head everything (its head holds, besides the
samples after its newest block, only samples that arrived late for older
ranges and are not in a block yet). So no sample arrives twice, late
samples are answered at once, and the shard is spared reading its history
back.

Any failure to get an answer (refused, timed out, HTTP error, undecodable
body) is a `StorageUnavailable` naming the cluster and the reason; the
merge above turns it into a warning or an error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence

import aiohttp
import numpy as np

from aggregator.clusterconfig import PullCluster
from aggregator.federation.metrics import FederationMetrics
from remote_write.batch import WriteBatch
from remote_write.errors import RemoteWriteError
from remote_write.read import (
    SAMPLES_CONTENT_TYPE,
    ReadHints,
    ReadQuery,
    decode_read_response,
    encode_read_request,
)
from storage.csr import offsets_of, ranges
from storage.errors import SampleLimitExceeded, StorageUnavailable
from storage.interfaces import LabelResult, SelectHints, SeriesSet
from storage.labels import CLUSTER_LABEL, METRIC_NAME, Labels, Matcher, MatchType
from storage.merge import sort_series

BLOCKS_READ_THROUGH = "X-Aggregator-Blocks-Read-Through"
"""Remote-read request header (milliseconds): the caller reads this service's blocks up
to and including that time itself; answer older samples from the head only."""

ResultHook = Callable[[str | None], None]
"""Told the outcome of every request: None on success, else the reason."""

_ANY_NAME = ("=~", METRIC_NAME, ".+")
MAX_CACHED_LABEL_SETS = 500_000
"""Relabelled label sets kept per pull endpoint, by the raw bytes the member sends
for them (a member encodes a series the same way every time); cleared when full."""


class RemoteCluster:
    """A Querier over a pull cluster for [start_ms, end_ms]; shares the cluster's session."""

    def __init__(
        self,
        cluster: PullCluster,
        session: aiohttp.ClientSession,
        metrics: FederationMetrics | None,
        start_ms: int,
        end_ms: int,
        on_result: ResultHook | None = None,
        labels_cache: dict[Hashable, Labels] | None = None,
        after_ms: int | None = None,
    ) -> None:
        self.cluster = cluster
        self.after_ms = after_ms
        """The shard's blocks up to this time are read directly: it answers older samples
        from its head only (`BLOCKS_READ_THROUGH`)."""
        self._labels_cache = labels_cache if labels_cache is not None else {}
        self._session = session
        self._metrics = metrics
        self.start_ms = start_ms
        self.end_ms = end_ms
        self._on_result = on_result
        self.partition_labels = (
            Labels.from_pairs([])
            if cluster.keep_cluster_label
            else Labels.from_pairs([(CLUSTER_LABEL, cluster.name)])
        )

    @property
    def name(self) -> str:
        return f'cluster "{self.cluster.name}"'

    def _request_matchers(
        self, matchers: Sequence[Matcher]
    ) -> tuple[tuple[str, str, str], ...] | None:
        """Matchers to send, or None when none of this cluster's series can match."""
        local = {CLUSTER_LABEL, *self.cluster.external_labels_drop}
        keep = self.cluster.keep_cluster_label
        sent = []
        for m in matchers:
            if keep and m.name == CLUSTER_LABEL:
                if not m.matches(self.cluster.name):
                    sent.append((m.type.value, m.name, m.value))
                continue  # else applied after relabelling (`_series_set`)
            if m.name in local:
                value = self.cluster.name if m.name == CLUSTER_LABEL else ""
                if not m.matches(value):
                    return None
                continue
            sent.append((m.type.value, m.name, m.value))
        if not any(_selective(op, v) for op, _, v in sent):
            sent.append(_ANY_NAME)
        return tuple(sent)

    async def select(
        self,
        matchers: Sequence[Matcher],
        start_ms: int,
        end_ms: int,
        *,
        hints: SelectHints | None = None,
    ) -> SeriesSet:
        sent = self._request_matchers(matchers)
        if sent is None or start_ms > end_ms:
            return SeriesSet.empty()
        read_hints = None
        if hints is not None:
            read_hints = ReadHints(
                step_ms=hints.step_ms or 0,
                func=hints.func or "",
                start_ms=start_ms,
                end_ms=end_ms,
                grouping=tuple(hints.grouping),
                by=not hints.without and bool(hints.grouping),
                range_ms=hints.range_ms or 0,
            )
        body = encode_read_request([ReadQuery(start_ms, end_ms, sent, read_hints)])
        raw = await self._post(body)
        try:
            results = decode_read_response(raw)
        except RemoteWriteError as exc:
            raise self._unavailable(f"undecodable remote-read answer: {exc}") from None
        if len(results) != 1:
            raise self._unavailable(f"remote-read answer holds {len(results)} results, not 1")
        batch = results[0].batch
        if hints is not None and hints.sample_limit is not None:
            if batch.num_samples > hints.sample_limit:
                raise SampleLimitExceeded(batch.num_samples, hints.sample_limit)
        keep_empty = hints is not None and hints.func == "series"
        unsent: list[Matcher] = []
        if self.cluster.keep_cluster_label:
            unsent = [
                m for m in matchers if m.name == CLUSTER_LABEL and m.matches(self.cluster.name)
            ]
        return self._series_set(batch, keep_empty, unsent)

    def _series_set(
        self, batch: WriteBatch, keep_empty: bool, cluster_matchers: Sequence[Matcher] = ()
    ) -> SeriesSet:
        """The answer relabelled. No matcher needs checking again: the member applied
        those it was sent, and `_request_matchers` decided the others against the
        values relabelling gives (`cluster`, and "" for dropped labels), except the
        `cluster_matchers` a `keep_cluster_label` endpoint could not be sent."""
        drop = self.cluster.external_labels_drop
        name = self.cluster.name
        keep = self.cluster.keep_cluster_label
        n = len(batch.series)
        counts = np.bincount(batch.series_idx, minlength=n).astype(np.int64)
        keys = batch.series_keys
        cache = self._labels_cache
        if len(cache) > MAX_CACHED_LABEL_SETS:
            cache.clear()
        labels: list[Labels] = []
        kept: list[int] = []
        has = counts.astype(bool).tolist()
        for i in range(n):
            if not (has[i] or keep_empty):
                continue
            key = keys[i] if keys is not None else None
            lbl = cache.get(key) if key is not None else None
            if lbl is None:
                pairs = [p for p in batch.series[i] if p[0] not in drop]
                if not (keep and any(n == CLUSTER_LABEL and v for n, v in pairs)):
                    pairs.append((CLUSTER_LABEL, name))  # a later duplicate name wins
                lbl = Labels.from_pairs(pairs)
                if key is not None:
                    cache[key] = lbl
            if cluster_matchers and not all(
                m.matches(lbl.get(CLUSTER_LABEL)) for m in cluster_matchers
            ):
                continue
            labels.append(lbl)
            kept.append(i)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        if len(kept) != n:
            which = np.asarray(kept, dtype=np.int64)
            sizes = counts[which]
            rows = ranges(offsets[:-1][which], sizes)
            return sort_series(
                labels, offsets_of(sizes), batch.timestamps[rows], batch.values[rows]
            )
        return sort_series(labels, offsets, batch.timestamps, batch.values)

    async def label_names(
        self, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        ss = await self._series_only(matchers)
        names = sorted({n for lbl in ss.labels for n, _ in lbl})
        return LabelResult(names[:limit] if limit else names)

    async def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        if name == CLUSTER_LABEL and not matchers and not self.cluster.keep_cluster_label:
            return LabelResult([self.cluster.name])
        ss = await self._series_only(matchers)
        values = sorted({v for lbl in ss.labels if (v := lbl.get(name))})
        return LabelResult(values[:limit] if limit else values)

    async def _series_only(self, matchers: Sequence[Matcher]) -> SeriesSet:
        hints = SelectHints(start_ms=self.start_ms, end_ms=self.end_ms, func="series")
        if not matchers:
            matchers = (Matcher(MatchType.RE, METRIC_NAME, ".+"),)
        return await self.select(matchers, self.start_ms, self.end_ms, hints=hints)

    # -- HTTP ------------------------------------------------------------------

    async def _post(self, body: bytes) -> bytes:
        started = time.monotonic()
        headers = {
            "Content-Encoding": "snappy",
            "Content-Type": SAMPLES_CONTENT_TYPE,
            "X-Prometheus-Remote-Read-Version": "0.1.0",
        }
        if self.after_ms is not None:
            headers[BLOCKS_READ_THROUGH] = str(self.after_ms)
        try:
            async with self._session.post("api/v1/read", data=body, headers=headers) as resp:
                data = await resp.read()
                if resp.status != 200:
                    text = data[:300].decode("utf-8", "replace").strip()
                    raise self._unavailable(f"remote read answered HTTP {resp.status}: {text}")
        except StorageUnavailable:
            self._observe("error", started, 0)
            raise
        except TimeoutError:
            self._observe("error", started, 0)
            limit = self.cluster.timeout_ms / 1000
            raise self._unavailable(f"remote read timed out after {limit:g}s") from None
        except aiohttp.ClientError as exc:
            self._observe("error", started, 0)
            raise self._unavailable(f"remote read failed: {_reason(exc)}") from None
        self._observe("success", started, len(data))
        return data

    def _observe(self, result: str, started: float, size: int) -> None:
        if self._metrics is not None:
            name = self.cluster.name
            self._metrics.requests.labels(name, "read", result).inc()
            self._metrics.duration.labels(name, "read").observe(time.monotonic() - started)
            if size:
                self._metrics.received_bytes.labels(name, "read").inc(size)

    def _unavailable(self, reason: str) -> StorageUnavailable:
        if self._on_result is not None:
            self._on_result(reason)
        return StorageUnavailable(f'cluster "{self.cluster.name}" ({self.cluster.url}): {reason}')


def _selective(op: str, value: str) -> bool:
    """Whether a matcher excludes the empty value (Prometheus wants at least one such)."""
    m = Matcher(MatchType(op), "x", value)
    return not m.matches("")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or exc.os_error}"
    return str(exc) or type(exc).__name__
