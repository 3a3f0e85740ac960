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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from promql.value import EvalValue
from storage.annotations import Annotations
from storage.labels import Labels


@dataclass(slots=True)
class FunctionContext:
    """What a function sees besides its arguments."""

    name: str
    steps: NDArray[np.int64]
    """Evaluation timestamps of the query, in ms, one per step."""
    annotations: Annotations
    """Add warnings / infos here (messages as Prometheus words them, see `position`)."""
    arg_exprs: Sequence[Any] = ()
    """The argument expressions (promql.ast nodes), for the few functions that look at them."""
    arg_positions: Sequence[str] = ()
    """Each argument's position rendered for annotation messages, e.g. "(1:6)"."""
    delayed_name_removal: bool = False
    """Prometheus 3 'promql-delayed-name-removal': mark instead of dropping __name__."""
    extra: dict[str, Any] = field(default_factory=dict)
    query_start_ms: int | None = None
    """Start of the whole query (ms), for `start()` / `range()`; None: `steps[0]`."""
    query_end_ms: int | None = None
    """End of the whole query (ms), for `end()` / `range()`; None: `steps[-1]`."""
    query_step_ms: int | None = None
    """Step of the whole query (ms, 0 for an instant query), for `step()`;
    None: the spacing of `steps` (0 with a single step)."""

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
