"""Element-wise math on instant vectors, clamping and rounding, and the
scalar helpers `pi()`, `min_of()`, `max_of()`.

Every vector function here drops `__name__` (or marks it under delayed name
removal) and keeps each sample's presence: one numpy call does all series
and steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from promql.eval.functions.common import F64, make_vector, nsteps_of, scalar_arg, vector_arg
from promql.eval.functions.registry import FunctionContext, register
from promql.value import EvalValue, StepScalar, StepVector


def _map(ctx: FunctionContext, vec: StepVector, fn: Callable[[F64], F64]) -> StepVector:
    with np.errstate(all="ignore"):
        values = fn(vec.values)
    return make_vector(ctx, vec.labels, values, vec.present.copy(), in_drop=vec.drop_name)


def _register_unary(name: str, fn: Callable[[F64], F64]) -> None:
    def impl(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
        return _map(ctx, vector_arg(args, 0), fn)

    impl.__name__ = f"func_{name}"
    impl.__doc__ = f"PromQL `{name}(v instant-vector)`: element-wise."
    register(name)(impl)


def _sgn(v: F64) -> F64:
    # -1 / +1 by sign; 0 (either sign) and NaN stay as they are
    return np.where(v < 0, -1.0, np.where(v > 0, 1.0, v))


def _deg(v: F64) -> F64:
    return v * 180 / np.pi


def _rad(v: F64) -> F64:
    return v * np.pi / 180


_UNARY: dict[str, Callable[[F64], F64]] = {
    "abs": np.abs,
    "ceil": np.ceil,
    "floor": np.floor,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "ln": np.log,
    "log2": np.log2,
    "log10": np.log10,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "asin": np.arcsin,
    "acos": np.arccos,
    "atan": np.arctan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "asinh": np.arcsinh,
    "acosh": np.arccosh,
    "atanh": np.arctanh,
    "deg": _deg,
    "rad": _rad,
    "sgn": _sgn,
}

for _name, _fn in _UNARY.items():
    _register_unary(_name, _fn)


def _clamp(ctx: FunctionContext, vec: StepVector, lo: F64, hi: F64) -> StepVector:
    """Prometheus `clamp`: max(lo, min(hi, v)); no output at steps where hi < lo."""
    with np.errstate(all="ignore"):
        values = np.maximum(lo[None, :], np.minimum(hi[None, :], vec.values))
    present = vec.present & ~(hi < lo)[None, :]
    return make_vector(ctx, vec.labels, values, present, in_drop=vec.drop_name)


@register("clamp")
def clamp(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    vec = vector_arg(args, 0)
    nsteps = nsteps_of(ctx, vec)
    return _clamp(ctx, vec, scalar_arg(args, 1, nsteps), scalar_arg(args, 2, nsteps))


@register("clamp_min")
def clamp_min(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    vec = vector_arg(args, 0)
    nsteps = nsteps_of(ctx, vec)
    return _clamp(ctx, vec, scalar_arg(args, 1, nsteps), np.full(nsteps, np.inf))


@register("clamp_max")
def clamp_max(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    vec = vector_arg(args, 0)
    nsteps = nsteps_of(ctx, vec)
    return _clamp(ctx, vec, np.full(nsteps, -np.inf), scalar_arg(args, 1, nsteps))


@register("round")
def round_(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    """`round(v, to_nearest=1)`: floor(v / to_nearest + 0.5) * to_nearest, ties round up.

    Like Prometheus, it multiplies by the inverse of `to_nearest`, which
    gives fewer floating-point surprises than dividing.
    """
    vec = vector_arg(args, 0)
    nsteps = nsteps_of(ctx, vec)
    to_nearest = scalar_arg(args, 1, nsteps) if len(args) > 1 else np.ones(nsteps)
    with np.errstate(all="ignore"):
        inverse = (1.0 / to_nearest)[None, :]
        values = np.floor(vec.values * inverse + 0.5) / inverse
    return make_vector(ctx, vec.labels, values, vec.present.copy(), in_drop=vec.drop_name)


@register("pi")
def pi(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    return StepScalar(np.full(len(ctx.steps), np.pi))


@register("min_of")
def min_of(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    """`min_of(a, b)`: Go's math.Min per step (NaN if either is NaN)."""
    n = len(ctx.steps)
    return StepScalar(np.minimum(scalar_arg(args, 0, n), scalar_arg(args, 1, n)))


@register("max_of")
def max_of(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    n = len(ctx.steps)
    return StepScalar(np.maximum(scalar_arg(args, 0, n), scalar_arg(args, 1, n)))
