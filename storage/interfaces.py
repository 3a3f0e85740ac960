"""The read and write interfaces of storage (after Prometheus `storage/interface.go`).

Times are int milliseconds since the epoch. Sample arrays are numpy: int64
timestamps, float64 values, sorted by time, stale markers kept as the stale NaN
bit pattern. Reads are async because a member cluster is I/O; write staging is
sync and cheap, durability (`commit`) is async.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from remote_write.batch import Rejection, WriteBatch
from storage.annotations import Annotations
from storage.histset import HistogramSet
from storage.labels import Labels, Matcher

_EMPTY_I64 = np.zeros(0, dtype=np.int64)
_EMPTY_F64 = np.zeros(0, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Series:
    """One series' samples in [start, end] of a select, sorted by time."""

    labels: Labels
    timestamps: NDArray[np.int64]
    values: NDArray[np.float64]


@dataclass(slots=True)
class SeriesSet:
    """The answer of a select: series sorted by labels, samples in one flat block.

    Series `i` owns `timestamps[offsets[i]:offsets[i+1]]` (and the same slice
    of `values`), sorted by time with no duplicate timestamps. Keeping all
    samples in three flat arrays (CSR layout) lets PromQL evaluate every series
    at once without gluing per-series arrays together. Arrays are owned by the
    set and must not be modified by consumers.
    """

    labels: list[Labels]
    offsets: NDArray[np.int64]
    timestamps: NDArray[np.int64]
    values: NDArray[np.float64]
    warnings: Annotations = field(default_factory=Annotations)
    histograms: HistogramSet | None = None
    """Native histogram samples of the select, per series (own label list: a series
    may have floats, histograms or both); None when there are none."""

    def __post_init__(self) -> None:
        if len(self.offsets) != len(self.labels) + 1:
            raise ValueError("offsets must have one entry more than labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_samples(self) -> int:
        return len(self.timestamps)

    @property
    def series(self) -> list[Series]:
        """Per-series views into the flat arrays (no copies)."""
        o = self.offsets.tolist()
        return [
            Series(lbl, self.timestamps[o[i] : o[i + 1]], self.values[o[i] : o[i + 1]])
            for i, lbl in enumerate(self.labels)
        ]

    @classmethod
    def empty(cls, warnings: Annotations | None = None) -> SeriesSet:
        return cls(
            [], np.zeros(1, dtype=np.int64), _EMPTY_I64, _EMPTY_F64, warnings or Annotations()
        )

    @classmethod
    def from_series(
        cls, series: Sequence[Series], warnings: Annotations | None = None
    ) -> SeriesSet:
        """Gather per-series arrays into one set, sorted by labels."""
        ordered = sorted(series, key=lambda s: s.labels)
        counts = np.fromiter((len(s.timestamps) for s in ordered), np.int64, len(ordered))
        offsets = np.zeros(len(ordered) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        ts = np.concatenate([s.timestamps for s in ordered]) if ordered else _EMPTY_I64
        vals = np.concatenate([s.values for s in ordered]) if ordered else _EMPTY_F64
        return cls(
            [s.labels for s in ordered],
            offsets,
            ts.astype(np.int64, copy=False),
            vals.astype(np.float64, copy=False),
            warnings or Annotations(),
        )


class MemoryBudget(Protocol):
    """Memory one query may still take; readers ask before they allocate an answer.

    Called from any thread (a select may gather in a worker thread).
    """

    def reserve(self, nbytes: int) -> None:
        """Count `nbytes` about to be allocated; raises `MemoryLimitExceeded` past a limit."""
        ...


@dataclass(frozen=True, slots=True)
class SelectHints:
    """What the caller will do with a select; only hints, implementations may ignore them.

    `sample_limit` and `memory` are the exceptions that bite: a select that can
    count its samples before reading them (from index bounds) raises
    `SampleLimitExceeded` instead of gathering more than this many, and
    reserves the bytes it is about to gather from `memory` (which raises
    `MemoryLimitExceeded` to refuse). Sources that cannot count up front may
    return the set; the caller checks again.
    """

    start_ms: int | None = None
    end_ms: int | None = None
    step_ms: int | None = None
    range_ms: int | None = None
    func: str | None = None
    grouping: tuple[str, ...] = ()
    without: bool = False
    limit: int | None = None
    sample_limit: int | None = None
    memory: MemoryBudget | None = None


@dataclass(slots=True)
class LabelResult:
    """Label names or values, sorted, plus warnings (e.g. a member cluster was down)."""

    values: list[str]
    warnings: Annotations = field(default_factory=Annotations)


class Querier(Protocol):
    """Reads series over one time range; opened by a `Queryable` for one query."""

    async def select(
        self,
        matchers: Sequence[Matcher],
        start_ms: int,
        end_ms: int,
        *,
        hints: SelectHints | None = None,
    ) -> SeriesSet:
        """Series matching all `matchers` with their samples in [start_ms, end_ms].

        Series with no sample in the range are left out. Raises a
        `StorageError` if the data cannot be read, `SampleLimitExceeded`
        (before reading) if the answer would hold more than
        `hints.sample_limit` samples; problems the caller can live with (a
        secondary source down) are `warnings` on the set.
        """
        ...

    async def label_names(
        self, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        """Sorted label names of series matching `matchers` (all series if none)."""
        ...

    async def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), *, limit: int | None = None
    ) -> LabelResult:
        """Sorted distinct non-empty values of label `name` over matching series."""
        ...


class Queryable(Protocol):
    """Opens Queriers; the engine opens one per query for the query's whole range."""

    def querier(self, start_ms: int, end_ms: int) -> AbstractAsyncContextManager[Querier]:
        """A Querier over [start_ms, end_ms]; closing it releases snapshots and sessions."""
        ...


@dataclass(slots=True)
class AppendResult:
    """What an append did: accepted samples, rejected ones by series, dropped kinds."""

    accepted: int = 0
    """Samples accepted, float and native histogram together."""
    rejected: list[Rejection] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    exemplars: int = 0
    """Exemplars stored; refused ones are counted in `dropped` by reason."""
    histograms_accepted: int = 0
    """Of `accepted`, the native histogram samples."""

    @property
    def rejected_samples(self) -> int:
        return sum(r.samples for r in self.rejected)


class Appender(Protocol):
    """Writes batches; one per request (ingest) or per rule-group evaluation."""

    def append(self, batch: WriteBatch) -> AppendResult:
        """Validate and apply `batch` to memory; bad series are reported, not raised.

        The batch becomes visible to queries at once. It is durable only once
        `commit` returns; callers acknowledge a write only after that.
        """
        ...

    async def commit(self) -> None:
        """Return once everything appended is in the WAL (per the fsync policy)."""
        ...


class Appendable(Protocol):
    """Hands out Appenders; `cluster` is the writer's identity (None: trust the labels)."""

    def appender(self, *, cluster: str | None = None) -> Appender:
        """An appender that sets `cluster="<cluster>"` on every series it writes.

        With `cluster=None` series keep the `cluster` label they were sent with.
        """
        ...
