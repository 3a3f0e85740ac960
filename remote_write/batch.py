"""The columnar write batch: what the wire decodes into and what storage appends.

A leaf module (no protobuf, no storage) so that `storage` can import the type
from below, as DESIGN.md's dependency arrow requires.

Samples are three parallel numpy columns; `series_idx[i]` says which entry of
`series` sample `i` belongs to. Label sets are kept as the sender wrote them
(order, duplicates, empty values and all) so that validation can report exactly
what was sent.

`series_keys` is the fast path for ingest: for a batch decoded from the wire,
key `i` is the raw protobuf bytes of series `i`'s labels. The same sender
encodes the same label set to the same bytes every time, so storage can map a
key it has seen to its series id with one dict lookup and decode (and validate)
the labels only for keys it has not seen. Decoding the labels lazily is what
keeps the per-series Python work small.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from itertools import chain, starmap
from operator import itemgetter
from typing import overload

import numpy as np
from numpy.typing import NDArray

from remote_write.exemplars import ExemplarBatch
from remote_write.histograms import HistogramBatch
from remote_write.labelkeys import label_key

LabelPairs = tuple[tuple[str, str], ...]

_NO_TS = np.zeros(0, dtype=np.int64)
_NO_VALUES = np.zeros(0, dtype=np.float64)

STALE_NAN_BITS = 0x7FF0000000000002
"""Prometheus's stale marker: a NaN with this exact bit pattern ends a series."""

STALE_NAN: float = float(np.array([STALE_NAN_BITS], dtype=np.uint64).view(np.float64)[0])


def is_stale_nan(values: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Elementwise: is this value the stale marker (bit-exact, not just any NaN)?"""
    return np.asarray(values, dtype=np.float64).view(np.uint64) == STALE_NAN_BITS


@dataclass(frozen=True, slots=True)
class LabelColumns:
    """The labels of several series as one flat list of label keys: series k's
    labels are `keys[offsets[k]:offsets[k+1]]`, in the order sent.

    A key is `remote_write.labelkeys.label_key(name, value)`: it names one
    label exactly, and equal labels have equal keys, however they were sent.
    Storage finds labels it has seen by key with one dict lookup and decodes
    only new ones: `decode(keys)` gives the names and values of some keys.

    The bulk form of label sets: storage checks and canonicalizes the new
    series of a request with C-level loops instead of per-series Python.
    """

    keys: list[str]
    offsets: NDArray[np.int64]
    decode: Callable[[Sequence[str]], tuple[list[str], list[str]]]

    def __len__(self) -> int:
        return len(self.offsets) - 1


def label_columns(series: Sequence[LabelPairs], indices: Sequence[int]) -> LabelColumns:
    """The label sets `series[i]` for `i` in `indices`, as columns (see `LabelColumns`)."""
    if isinstance(series, LazyLabelSets) and series._columns is not None:
        return series._columns(indices)
    sets = list(map(series.__getitem__, indices))
    offsets = np.zeros(len(sets) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, sets), dtype=np.int64, count=len(sets)), out=offsets[1:])
    pairs = list(chain.from_iterable(sets))
    keys = list(starmap(label_key, pairs))
    known = dict(zip(keys, pairs, strict=True))

    def decode(wanted: Sequence[str]) -> tuple[list[str], list[str]]:
        chosen = list(map(known.__getitem__, wanted))
        return list(map(_first, chosen)), list(map(_second, chosen))

    return LabelColumns(keys, offsets, decode)


_first = itemgetter(0)
_second = itemgetter(1)


class LazyLabelSets(Sequence[LabelPairs]):
    """Label sets decoded on first access, by series index (or in bulk, see
    `label_columns`, when the decoder offers it)."""

    __slots__ = ("_cache", "_columns", "_count", "_decode")

    def __init__(
        self,
        count: int,
        decode: Callable[[int], LabelPairs],
        columns: Callable[[Sequence[int]], LabelColumns] | None = None,
    ) -> None:
        self._count = count
        self._decode = decode
        self._columns = columns
        self._cache: dict[int, LabelPairs] = {}

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, i: int) -> LabelPairs: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[LabelPairs]: ...
    def __getitem__(self, i: int | slice) -> LabelPairs | Sequence[LabelPairs]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._count))]
        if i < 0:
            i += self._count
        if not 0 <= i < self._count:
            raise IndexError(i)
        hit = self._cache.get(i)
        if hit is None:
            hit = self._cache[i] = self._decode(i)
        return hit


@dataclass(frozen=True, slots=True)
class SeriesMetadata:
    """Metric-family metadata as remote write carries it (type is lowercase, e.g. "counter")."""

    metric_family_name: str
    type: str
    help: str = ""
    unit: str = ""


@dataclass(frozen=True, slots=True)
class WriteBatch:
    """Series label sets plus columnar samples; see the module docstring."""

    series: Sequence[LabelPairs]
    series_idx: NDArray[np.int32]
    timestamps: NDArray[np.int64]
    values: NDArray[np.float64]
    metadata: Sequence[SeriesMetadata] = ()
    series_keys: Sequence[Hashable] | None = None
    encoded: bytes | None = field(default=None, repr=False)
    """The snappy-compressed WriteRequest this batch was decoded from, if any; the
    WAL logs it as is instead of encoding the batch again."""
    encoded_format: int = 1
    """The remote-write major version of `encoded`: 1 (`prometheus.WriteRequest`) or
    2 (`io.prometheus.write.v2.Request`)."""
    exemplars: ExemplarBatch | None = None
    """Exemplars of the same series (`exemplars.series_idx` points into `series`)."""
    histograms: HistogramBatch | None = None
    """Native histogram samples of the same series (`histograms.series_idx` points
    into `series`); see `remote_write.histograms`. None or empty: floats only."""

    def __post_init__(self) -> None:
        n = len(self.timestamps)
        if len(self.values) != n or len(self.series_idx) != n:
            raise ValueError("series_idx, timestamps and values must have the same length")
        if self.series_keys is not None and len(self.series_keys) != len(self.series):
            raise ValueError("series_keys must have one key per series")

    @property
    def num_samples(self) -> int:
        return len(self.timestamps)

    @property
    def num_exemplars(self) -> int:
        return 0 if self.exemplars is None else len(self.exemplars)

    @property
    def num_histograms(self) -> int:
        return 0 if self.histograms is None else len(self.histograms)

    @classmethod
    def from_series(
        cls,
        series: Sequence[tuple[LabelPairs, Sequence[int], Sequence[float]]],
        metadata: Sequence[SeriesMetadata] = (),
    ) -> WriteBatch:
        """Build a batch from (labels, timestamps, values) triples; for tests and rules."""
        counts = [len(ts) for _, ts, _ in series]
        idx = np.repeat(np.arange(len(series), dtype=np.int32), counts)
        ts = np.concatenate([np.asarray(t, dtype=np.int64) for _, t, _ in series] or [_NO_TS])
        vals = np.concatenate(
            [np.asarray(v, dtype=np.float64) for _, _, v in series] or [_NO_VALUES]
        )
        return cls(
            series=[tuple(labels) for labels, _, _ in series],
            series_idx=idx,
            timestamps=ts.astype(np.int64, copy=False),
            values=vals.astype(np.float64, copy=False),
            metadata=metadata,
        )


@dataclass(frozen=True, slots=True)
class Rejection:
    """Samples of one series that were not written, and why.

    `reason` is a short stable code (it labels self-metrics, e.g.
    "label_value_too_long"); `message` is the sentence a sender's log shows and
    names the series; `retryable` marks problems a retry can fix (the series
    limit: HTTP 429) as opposed to data that will never be accepted (HTTP 400).
    """

    series: str
    reason: str
    message: str
    samples: int
    retryable: bool = False
