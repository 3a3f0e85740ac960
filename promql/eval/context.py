"""What one query's evaluation shares: its data, times, limits and annotations."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from promql import ast
from promql.errors import QueryCanceled, QueryTimeout, TooManySamples
from storage.annotations import Annotations
from storage.interfaces import SeriesSet

SelectorKey = tuple[tuple[str, str, str], ...]

TOO_MANY_SAMPLES = "query processing would load too many samples into memory in query execution"


def selector_key(vs: ast.VectorSelector) -> SelectorKey:
    """Identity of a selector's matchers: equal keys select the same series."""
    return tuple(sorted((m.type.value, m.name, m.value) for m in vs.matchers))


@dataclass(slots=True)
class EvalContext:
    """Per-query state handed to every node's evaluation."""

    text: str
    query_start_ms: int
    query_end_ms: int
    lookback_ms: int
    data: Mapping[SelectorKey, SeriesSet]
    query_step_ms: int = 0
    """The query's step (0 for an instant query)."""
    annotations: Annotations = field(default_factory=Annotations)
    default_subquery_step_ms: int = 60_000
    delayed_name_removal: bool = True
    max_samples: int = 50_000_000
    deadline: float | None = None
    """`time.monotonic()` value past which the query times out."""
    cancel: threading.Event | None = None
    """Set from outside (another thread) to stop the evaluation."""
    timeout_s: float = 0.0

    def position(self, expr: ast.Expr) -> str:
        """`(line:col)` of a node, as Prometheus appends to annotations; "" if unknown."""
        pos = getattr(expr, "pos", -1)
        rendered = ast.render_position(self.text, pos)
        return f"({rendered})" if rendered else ""

    def check(self) -> None:
        """Raise if the query ran out of time or was cancelled (called between nodes)."""
        if self.cancel is not None and self.cancel.is_set():
            raise QueryCanceled("query was canceled in query execution")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise QueryTimeout(f"query timed out in query execution after {self.timeout_s:g}s")

    def check_points(self, points: int) -> None:
        """Refuse to hold more than `max_samples` points in one array."""
        if points > self.max_samples:
            raise TooManySamples(TOO_MANY_SAMPLES)
