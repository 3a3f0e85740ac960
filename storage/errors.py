"""Storage errors. Failures raise; problems a query can live with become warnings.

    StorageError
    ├── OutOfBounds          sample outside what this storage can take (e.g. before retention)
    ├── OutOfOrderSample     older than the series' newest sample beyond the out-of-order window
    ├── DuplicateSample      same timestamp as a stored sample, different value
    ├── TooOldSample         older than the head's accepted window
    ├── SeriesLimitExceeded  a cluster is at its active-series limit (retryable: 429)
    ├── ObjectNotFound       object store key missing
    ├── WALCorrupted         a WAL frame failed its CRC or length check
    ├── SampleLimitExceeded  a select would return more samples than its hints allow
    └── StorageUnavailable   a backend (member cluster, object store) cannot be reached

Per-sample problems on ingest are reported as `Rejection` records in an
`AppendResult`, not raised; these classes name the reasons and carry the
message text, so that both paths say the same thing.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of all storage errors."""


class OutOfBounds(StorageError):
    """A sample outside the time range this storage accepts."""


class OutOfOrderSample(StorageError):
    """A sample older than the series' newest sample minus the out-of-order window."""


class DuplicateSample(StorageError):
    """A sample at an existing timestamp with a different value."""


class TooOldSample(StorageError):
    """A sample older than the head's retention."""


class SeriesLimitExceeded(StorageError):
    """A new series past the cluster's active-series limit."""


class ObjectNotFound(StorageError):
    """An object-store key that does not exist."""


class WALCorrupted(StorageError):
    """A WAL frame whose length or CRC does not check out."""


class SampleLimitExceeded(StorageError):
    """A select refused before gathering: it would return more than `limit` samples."""

    def __init__(self, samples: int, limit: int) -> None:
        super().__init__(f"select would return {samples} samples, more than the limit of {limit}")
        self.samples = samples
        self.limit = limit


class StorageUnavailable(StorageError):
    """A backend that cannot be reached right now (retry may help)."""
