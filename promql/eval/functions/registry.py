"""The function table: PromQL function name -> implementation.

An implementation gets a `FunctionContext` and its evaluated arguments, in
the order the call has them, and returns the evaluated result. Arguments are
evaluation shapes from `promql.value`: `StepVector`, `StepScalar`,
`StepRange` or `String` (the parser has already checked the types against the
function's signature). Implementations work on whole `[series x steps]`
arrays: no Python loop over samples or steps, at most over series.

Implementations register themselves with `@register("name")` in the modules
of this package; `promql.eval.functions` imports them all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from promql import ast
from promql.value import EvalValue
from storage.annotations import Annotations
from storage.labels import Labels


@dataclass(slots=True)
class FunctionContext:
    """What a function sees besides its arguments; the evaluator builds one per call.

    Every field is explicit and typed: a function needing something new adds
    a field here and the evaluator fills it, so what a function may depend on
    is visible in one place.
    """

    name: str
    steps: NDArray[np.int64]
    """Evaluation timestamps of the query, in ms, one per step."""
    annotations: Annotations
    """Add warnings / infos here (messages as Prometheus words them, see `position`)."""
    delayed_name_removal: bool
    """Prometheus 3 'promql-delayed-name-removal': True marks series whose
    `__name__` is to go (`drop_name`) and the evaluator removes it at the end;
    False removes it at once, as Prometheus 3 does without the feature flag."""
    query_start_ms: int
    """Start of the whole query (ms), for `start()` / `range()`."""
    query_end_ms: int
    """End of the whole query (ms), for `end()` / `range()`."""
    query_step_ms: int
    """Step of the whole query (ms), for `step()`; 0 for an instant query."""
    arg_exprs: tuple[ast.Expr, ...] = ()
    """The argument expressions, for the few functions that look at them."""
    arg_positions: tuple[str, ...] = ()
    """Each argument's position rendered for annotation messages, e.g. "(1:6)"."""

    def position(self, arg: int = 0) -> str:
        """The rendered position of argument `arg` ("" when unknown)."""
        return self.arg_positions[arg] if arg < len(self.arg_positions) else ""

    @property
    def num_steps(self) -> int:
        return len(self.steps)


FunctionImpl = Callable[[FunctionContext, Sequence[EvalValue]], EvalValue]


@dataclass(frozen=True, slots=True)
class FunctionDef:
    name: str
    impl: FunctionImpl


FUNCTIONS: dict[str, FunctionDef] = {}


def register(*names: str) -> Callable[[FunctionImpl], FunctionImpl]:
    """Register `impl` under each of `names` (aliases share one implementation)."""

    def wrap(impl: FunctionImpl) -> FunctionImpl:
        for name in names:
            if name in FUNCTIONS:
                raise ValueError(f"function {name!r} registered twice")
            FUNCTIONS[name] = FunctionDef(name, impl)
        return impl

    return wrap


def drop_metric_names(labels: Sequence[Labels]) -> list[Labels]:
    """The label sets without `__name__`, as most functions' outputs are."""
    return [lbl.without_metric_name() for lbl in labels]
