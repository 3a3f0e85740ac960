"""PromQL: parse with promql-parser, evaluate whole expressions over any Queryable.

The public surface: `Engine` (instant and range queries over a `Queryable`),
its `QueryOpts` / `Result` / `QueryStats`, the result values, `parse_expr`,
and the printers `format_expr` / `prettify` (for `/api/v1/format_query`).
Errors live in `promql.errors`.
"""

from promql.engine import Engine, QueryOpts, QueryStats, Result
from promql.parser import parse_expr, parse_series_selector
from promql.printer import format_expr, prettify
from promql.value import Matrix, Scalar, String, Vector

__all__ = [
    "Engine",
    "Matrix",
    "QueryOpts",
    "QueryStats",
    "Result",
    "Scalar",
    "String",
    "Vector",
    "format_expr",
    "parse_expr",
    "parse_series_selector",
    "prettify",
]
