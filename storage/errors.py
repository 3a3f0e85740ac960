"""Storage errors. Failures raise; problems a query can live with become warnings.

    StorageError
    ├── SampleRejected            why samples of one series were not written (never raised on
    │   │                         ingest: each class names a `Rejection` reason, see below)
    │   ├── SampleTooFarInFuture  newer than the server clock plus `limits.max_future`
    │   ├── TooOldSample          older than the head's retention boundary
    │   ├── OutOfOrderSample      behind its series' newest sample by more than the OOO window
    │   ├── DuplicateSample       same timestamp as a stored sample, different value
    │   └── SeriesLimitExceeded   a new series past its cluster's active-series limit (retryable)
    ├── ObjectNotFound            object store key missing
    ├── WALCorrupted              a WAL frame failed its CRC or length check
    ├── SampleLimitExceeded       a select would return more samples than its hints allow
    ├── ReadLimitExceeded         a query would read more from the object store than allowed
    ├── MemoryLimitExceeded       a read would take more memory than its query may
    │   └── MemoryBusy            ... than the shared total has left now (a retry may fit)
    └── StorageUnavailable        a backend (WAL, member cluster, object store) cannot be used now

Per-series problems on ingest are not raised: one bad series must never lose a
request's good samples. They are reported as `Rejection` records in an
`AppendResult`, and the `SampleRejected` classes are where those records come
from: each class holds the stable reason code (it labels self-metrics and the
sender's 4xx body) and whether a retry can help (429, not 400), and
`rejection()` builds the record. Label problems found while decoding are the
wire package's (`remote_write.validate`), not storage's.
"""

from __future__ import annotations

from typing import ClassVar

from remote_write.batch import Rejection


class StorageError(Exception):
    """Base of all storage errors."""


class SampleRejected(StorageError):
    """A reason storage refuses samples of a series; see the module docstring."""

    reason: ClassVar[str]
    """Stable code: the `reason` of the Rejection and of the rejected-samples metric."""
    retryable: ClassVar[bool] = False
    """True if the same samples may be accepted later (the sender should retry: 429)."""

    @classmethod
    def rejection(cls, series: str, message: str, samples: int) -> Rejection:
        """The record reporting `samples` samples of `series` refused for this reason."""
        return Rejection(series, cls.reason, message, samples, retryable=cls.retryable)


class SampleTooFarInFuture(SampleRejected):
    """A sample further ahead of the server clock than `limits.max_future`."""

    reason = "sample_too_far_in_future"


class TooOldSample(SampleRejected):
    """A sample older than the head's retention boundary."""

    reason = "sample_too_old"


class OutOfOrderSample(SampleRejected):
    """A sample older than the series' newest sample minus the out-of-order window."""

    reason = "out_of_order_sample"


class DuplicateSample(SampleRejected):
    """A sample at an existing timestamp with a different value (the first one wins)."""

    reason = "duplicate_sample_for_timestamp"


class SeriesLimitExceeded(SampleRejected):
    """A new series past the cluster's active-series limit; room may free up later."""

    reason = "series_limit"
    retryable = True


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


class ReadLimitExceeded(StorageError):
    """A query refused before reading: it would exceed a per-query object-store limit.

    `limit_name` is the config key (`query.max_object_store_bytes` or
    `query.max_object_store_requests`), so the message tells the user what to raise.
    """

    def __init__(self, limit_name: str, limit: int, needed: int, unit: str) -> None:
        super().__init__(
            f"query would read {needed} {unit} from the object store, more than the "
            f"{limit_name} limit of {limit}; narrow the time range or the selectors, "
            "or raise the limit"
        )
        self.limit_name = limit_name
        self.limit = limit
        self.needed = needed


class MemoryLimitExceeded(StorageError):
    """A read refused before allocating: the query would pass its memory bound.

    The message names the limit (a config key) and the amounts.
    """


class MemoryBusy(MemoryLimitExceeded):
    """A read refused because the memory shared by all queries is in use now."""

    def __init__(self, message: str, *, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StorageUnavailable(StorageError):
    """A backend that cannot be used right now (retry may help)."""
