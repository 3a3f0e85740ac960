"""Exemplars as columns: what remote write 1.0 and 2.0 carry beside samples.

An exemplar is one example observation of a series (value, timestamp and a
few labels such as `trace_id`), which lets a dashboard jump from a spike to
a trace. A batch keeps them columnar, like samples: `series_idx[i]` is the
entry of the write batch's `series` that exemplar `i` belongs to. Their label
sets are tuples, one per exemplar: exemplars are a handful per request, not
one per sample.

A leaf module (numpy only), so that `batch` and `storage` can import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

LabelPairs = tuple[tuple[str, str], ...]

MAX_EXEMPLAR_LABELS_RUNES = 128
"""Prometheus's limit on an exemplar's label names and values together (in characters)."""


@dataclass(frozen=True, slots=True)
class ExemplarBatch:
    """Exemplars of a write batch's series; see the module docstring."""

    series_idx: NDArray[np.int32]
    timestamps: NDArray[np.int64]
    values: NDArray[np.float64]
    labels: Sequence[LabelPairs]

    def __post_init__(self) -> None:
        n = len(self.series_idx)
        if not len(self.timestamps) == len(self.values) == len(self.labels) == n:
            raise ValueError("exemplar columns must have the same length")

    def __len__(self) -> int:
        return len(self.series_idx)

    @classmethod
    def empty(cls) -> ExemplarBatch:
        return cls(
            np.zeros(0, dtype=np.int32),
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.float64),
            (),
        )

    def take(self, rows: NDArray[np.int64]) -> ExemplarBatch:
        """The exemplars at `rows`, in that order."""
        labels = self.labels
        return ExemplarBatch(
            self.series_idx[rows],
            self.timestamps[rows],
            self.values[rows],
            [labels[i] for i in rows.tolist()],
        )


def labels_too_long(labels: Sequence[LabelPairs]) -> NDArray[np.bool_]:
    """Per exemplar: are its label names and values together over the limit?"""
    sizes = np.fromiter(
        (sum(len(n) + len(v) for n, v in pairs) for pairs in labels),
        dtype=np.int64,
        count=len(labels),
    )
    return sizes > MAX_EXEMPLAR_LABELS_RUNES
