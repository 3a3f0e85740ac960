"""Everything that holds samples, behind one read and one write interface."""

from storage.annotations import Annotations
from storage.interfaces import (
    Appendable,
    Appender,
    AppendResult,
    LabelResult,
    MemoryBudget,
    Querier,
    Queryable,
    SelectHints,
    Series,
    SeriesSet,
)
from storage.labels import Labels, Matcher, MatchType

__all__ = [
    "Annotations",
    "AppendResult",
    "Appendable",
    "Appender",
    "LabelResult",
    "Labels",
    "MatchType",
    "Matcher",
    "MemoryBudget",
    "Querier",
    "Queryable",
    "SelectHints",
    "Series",
    "SeriesSet",
]
