"""Remote-write errors.

    RemoteWriteError
    ├── DecodeError        body is not snappy-block-compressed protobuf WriteRequest (400)
    ├── PayloadTooLarge    body or decoded body over the configured limit (413)
    └── RecoverableError   a sender-side failure a retry can fix (5xx, 429); carries retry_after

Per-series problems (bad label names, too many labels, ...) are not exceptions:
they are `Rejection` records, so one bad series never loses a request's good ones.
"""

from __future__ import annotations


class RemoteWriteError(Exception):
    """Base of all remote-write errors."""


class DecodeError(RemoteWriteError):
    """The body could not be decompressed or parsed; the message says which and where."""


class PayloadTooLarge(RemoteWriteError):
    """The body, or what it decompresses to, is larger than the configured limit."""


class RecoverableError(RemoteWriteError):
    """A failed send that a retry may fix; `retry_after` is seconds, if the server said."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
