"""Query errors, one tree; the API maps each class to a Prometheus errorType once.

QueryError
├── ParseError          bad PromQL (bad_data, 400); carries the query and position
│   └── InvalidQuery    valid PromQL the engine refuses as asked (bad step, too many points)
├── QueryTimeout        over the query timeout (timeout, 503)
├── QueryCanceled       the client went away (canceled, 499)
├── TooManySamples      over the max-samples limit (execution, 422)
├── ExecutionError      a well-formed query that cannot be evaluated (execution, 422)
└── StorageUnavailable  a source the query needs failed (unavailable, 503)
"""

from __future__ import annotations


class QueryError(Exception):
    """Base of all query errors."""


class ParseError(QueryError):
    """The query text is not valid PromQL; `position` is a 0-based offset if known."""

    def __init__(self, message: str, *, query: str = "", position: int | None = None) -> None:
        super().__init__(message)
        self.query = query
        self.position = position


class InvalidQuery(ParseError):
    """A query the engine refuses as asked (bad_data, 400): e.g. too many points per series."""

    def __init__(self, message: str, *, query: str = "") -> None:
        super().__init__(message, query=query)


class QueryTimeout(QueryError):
    """The query ran past its timeout."""


class QueryCanceled(QueryError):
    """The query was cancelled before it finished."""


class TooManySamples(QueryError):
    """The query would load more samples than the configured maximum."""


class ExecutionError(QueryError):
    """The query is well-formed but cannot be evaluated (e.g. many-to-many matching)."""


class StorageUnavailable(QueryError):
    """Data the query needs could not be read."""
