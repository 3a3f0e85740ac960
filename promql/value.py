"""PromQL values, in two shapes.

Evaluation shapes (what the evaluator passes between nodes) hold every step of
a query at once, so that one numpy operation does the work of a whole range
query (DESIGN.md "PromQL evaluated a whole expression at a time"):

- `StepVector`: an instant-vector expression at every step: a `[series x
  steps]` float array with a presence mask.
- `StepScalar`: a scalar expression at every step: a `[steps]` float array.
- `StepRange`: a range-vector expression (matrix selector or subquery) at
  every step: the samples of each series in one flat CSR block, plus the
  window `[lo, hi)` of sample indices that each (series, step) sees.
- `String`: a string literal.

Result shapes (what the engine returns and the API encodes) follow the
Prometheus API: `Vector`, `Matrix`, `Scalar`, `String`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from remote_write.histograms import HistogramBatch
from storage.labels import Labels


@dataclass(slots=True)
class HistCells:
    """Native histogram samples of a step vector or result.

    `ref` has the shape of the values it goes with; `ref[...] = k >= 0` means
    that cell holds histogram row `k` of `table` (its float value is
    meaningless), -1 that it holds a float (or nothing). Histogram rows are
    columns, never Python objects (see `remote_write.histograms`).
    """

    ref: NDArray[np.int64]
    table: HistogramBatch

    def any(self) -> bool:
        return bool((self.ref >= 0).any())


@dataclass(slots=True)
class StepScalar:
    """A scalar at every step: `values[j]` is the value at `steps[j]`."""

    values: NDArray[np.float64]


@dataclass(slots=True)
class StepVector:
    """An instant vector at every step.

    `values[i, j]` is series `i` at step `j`, meaningful only where
    `present[i, j]`. Series with no present step may be dropped by any
    operation. `drop_name[i]`, when set, marks series whose metric name is
    to be removed at the end of evaluation (Prometheus 3 delayed name
    removal); None means no series carries the mark.
    """

    labels: list[Labels]
    values: NDArray[np.float64]
    present: NDArray[np.bool_]
    drop_name: NDArray[np.bool_] | None = None
    hist: HistCells | None = None
    """Native histogram cells (`hist.ref` is `[series x steps]`); None: floats only."""

    @property
    def num_series(self) -> int:
        return len(self.labels)


@dataclass(slots=True)
class StepRange:
    """A range vector at every step.

    Series `i` owns flat samples `offsets[i]:offsets[i+1]` of `timestamps` and
    `values` (sorted by time, stale markers removed). At step `j` it sees the
    samples with indices in `[lo[i, j], hi[i, j])`, i.e. those with timestamp
    in `(window_end[j] - range_ms, window_end[j]]`. `window_end` already has
    `offset` and `@` applied. `lo` and `hi` are absolute indices into the
    flat `timestamps` / `values` arrays (so `offsets[i] <= lo[i, j] <= hi[i, j]
    <= offsets[i+1]`).

    `drop_name[i]`, when set, carries the Prometheus 3 delayed-name-removal
    mark of series `i` (a subquery over a name-dropping expression), so that
    functions which keep `__name__` (`last_over_time`, `first_over_time`)
    keep the mark too; None means no series carries it.
    """

    labels: list[Labels]
    offsets: NDArray[np.int64]
    timestamps: NDArray[np.int64]
    values: NDArray[np.float64]
    lo: NDArray[np.int64]
    hi: NDArray[np.int64]
    window_end: NDArray[np.int64]
    range_ms: int
    drop_name: NDArray[np.bool_] | None = None
    hist: HistCells | None = None
    """Native histogram samples (`hist.ref` per flat sample); None: floats only."""

    @property
    def num_series(self) -> int:
        return len(self.labels)


@dataclass(frozen=True, slots=True)
class String:
    """A string literal value (only ever the whole result of an instant query)."""

    value: str
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class Scalar:
    """The result of an instant query whose expression is a scalar."""

    value: float
    timestamp_ms: int


@dataclass(slots=True)
class Vector:
    """The result of an instant query: one sample per series, all at `timestamp_ms`."""

    labels: list[Labels]
    values: NDArray[np.float64]
    timestamp_ms: int
    hist: HistCells | None = None
    """Per series, the histogram row it holds instead of a float (`ref` -1: a float)."""

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(slots=True)
class Matrix:
    """The result of a range query (or of an instant range-vector query).

    Series `i` owns `timestamps[offsets[i]:offsets[i+1]]` and the same slice of
    `values`, sorted by time. Series are sorted by labels.
    """

    labels: list[Labels]
    offsets: NDArray[np.int64]
    timestamps: NDArray[np.int64]
    values: NDArray[np.float64]
    hist: HistCells | None = None
    """Per sample, the histogram row it holds instead of a float (`ref` -1: a float)."""

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_samples(self) -> int:
        return len(self.timestamps)


Value = Scalar | String | Vector | Matrix
"""What a query returns."""

EvalValue = StepScalar | StepVector | StepRange | String
"""What an expression node evaluates to."""
