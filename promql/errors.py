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
    """The query text is not valid PromQL: `reason` at `position` (a 0-based offset) in `query`.

    Its message is Prometheus's, `1:5: parse error: unclosed left parenthesis`, or
    `parse error: <reason>` when the position is not known (`parse_error_message`).
    """

    def __init__(self, reason: str, *, query: str = "", position: int | None = None) -> None:
        super().__init__(parse_error_message(reason, query, position))
        self.reason = reason
        self.query = query
        self.position = position


class InvalidQuery(ParseError):
    """A query the engine refuses as asked (bad_data, 400): e.g. too many points per series.

    Not a syntax error, so its message is the reason alone, as Prometheus words it.
    """

    def __init__(self, message: str, *, query: str = "") -> None:
        QueryError.__init__(self, message)
        self.reason = message
        self.query = query
        self.position = None


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


def parse_error_message(reason: str, query: str, position: int | None) -> str:
    """The one wording of a parse error on every endpoint: `line:col: parse error: reason`."""
    if position is None:
        return f"parse error: {reason}"
    return f"{line_col(query, position)}: parse error: {reason}"


def line_col(text: str, pos: int) -> str:
    """Prometheus's `line:col` of offset `pos`: both 1-based, the column in UTF-8 bytes."""
    before = text[: max(0, pos)]
    line_start = before.rfind("\n") + 1
    column = before[line_start:]
    try:  # raw bytes kept as surrogate escapes count one byte each, as in Go
        width = len(column.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        width = len(column.encode("utf-8", "surrogatepass"))
    line = before.count("\n") + 1
    return f"{line}:{width + 1}"
