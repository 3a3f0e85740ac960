"""PromQL functions; importing this package fills `registry.FUNCTIONS`.

Each module registers its implementations with `@register("name")`; the
evaluator looks them up in `registry.FUNCTIONS`. The engine-level functions
(`time`, `timestamp`, `vector`, `scalar`, `absent`, `absent_over_time`,
`sort*`) live with the evaluator.
"""

from promql.eval.functions import (
    histogram,
    labels,
    math,
    over_time,
    rate,
    smoothing,
    time,
)
from promql.eval.functions.registry import FUNCTIONS, FunctionContext, FunctionDef, register

__all__ = [
    "FUNCTIONS",
    "FunctionContext",
    "FunctionDef",
    "histogram",
    "labels",
    "math",
    "over_time",
    "rate",
    "register",
    "smoothing",
    "time",
]
