"""Wire formats: Prometheus remote-write/read protobuf, snappy, columnar batches."""

from remote_write.batch import (
    STALE_NAN,
    STALE_NAN_BITS,
    Rejection,
    SeriesMetadata,
    WriteBatch,
    is_stale_nan,
)
from remote_write.histograms import HistogramBatch

__all__ = [
    "STALE_NAN",
    "STALE_NAN_BITS",
    "HistogramBatch",
    "Rejection",
    "SeriesMetadata",
    "WriteBatch",
    "is_stale_nan",
]
