"""Service errors.

    AggregatorError
    ├── ConfigError   the config file or a flag is invalid (exit at start; names file, key, reason)
    ├── BadData       a request parameter is invalid: HTTP 400, errorType bad_data
    ├── NotReady      a component is still starting (e.g. storage replaying its WAL): HTTP 503
    ├── Unauthorized  no valid credential on a request that needs one: HTTP 401
    ├── Forbidden     a valid credential that may not do this (e.g. outside its clusters): 403
    ├── Overloaded    a limit on concurrent work is reached; retry later: HTTP 503 + Retry-After
    ├── RateLimited   a cluster writes faster than its ingest rate limit: HTTP 429 + Retry-After
    ├── RequestTimeout  a request body did not arrive within `server.body_timeout`: HTTP 408
    └── UnsupportedMediaType  a body in another format or encoding than the endpoint takes: 415

Errors raised below this package (storage, promql, remote_write) keep their own
trees; `aggregator.api.responses` translates all of them to HTTP in two tables
side by side: one for the JSON errors of the query API, one for the plain-text
answers of remote write.
"""

from __future__ import annotations


class AggregatorError(Exception):
    """Base of the service's own errors."""


class ConfigError(AggregatorError):
    """An invalid setting: `file` (or "command line"), the `key` path, and the `reason`.

    The key path is written the way a user finds it in the YAML file, e.g.
    `clusters[1].token_file` or `limits.max_future`.
    """

    def __init__(self, file: str, key: str, reason: str) -> None:
        self.file = file
        self.key = key
        self.reason = reason
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {reason}")


class BadData(AggregatorError):
    """A request the API refuses as malformed; the message is what the client sees."""


class NotReady(AggregatorError):
    """A component the request needs has not finished starting; retrying later helps."""


class Unauthorized(AggregatorError):
    """No valid credential on the request; the message says what was wrong."""


class Forbidden(AggregatorError):
    """A valid credential asking for something it may not have."""


class Overloaded(AggregatorError):
    """A limit on concurrent work is reached; the message names it (a config key)."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimited(AggregatorError):
    """A cluster sent more samples than its ingest rate allows; the message names the limit."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RequestTimeout(AggregatorError):
    """The client did not send its request body in time."""


class UnsupportedMediaType(AggregatorError):
    """A request body in a format, version or encoding the endpoint does not take."""
