"""Calendar functions (`year()`, `month()`, ... `days_in_month()`) and the
query-bound scalars `start()`, `end()`, `range()`, `step()`.

With a vector argument the calendar functions read each sample's value as
Unix seconds (truncated to whole seconds, UTC); without one they use the
evaluation time of each step and return one series with no labels. Date
arithmetic is numpy `datetime64`, so all series and steps go in one call.
Samples whose value is not a finite time within ±2^53 seconds give NaN
(Go would silently wrap such values).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from promql.eval.functions.common import F64, I64, make_vector, vector_arg
from promql.eval.functions.registry import FunctionContext, register
from promql.value import EvalValue, StepScalar, StepVector
from storage.labels import EMPTY_LABELS

_SECONDS_PER_DAY = 86400
_MAX_SECONDS = float(2**53)


def _days(secs: I64) -> I64:
    return np.floor_divide(secs, _SECONDS_PER_DAY)


def _year(secs: I64) -> F64:
    d = _days(secs).astype("datetime64[D]")
    return d.astype("datetime64[Y]").astype(np.int64).astype(np.float64) + 1970


def _month(secs: I64) -> F64:
    d = _days(secs).astype("datetime64[D]")
    return (d.astype("datetime64[M]").astype(np.int64) % 12 + 1).astype(np.float64)


def _day_of_month(secs: I64) -> F64:
    d = _days(secs).astype("datetime64[D]")
    return ((d - d.astype("datetime64[M]")).astype(np.int64) + 1).astype(np.float64)


def _day_of_year(secs: I64) -> F64:
    d = _days(secs).astype("datetime64[D]")
    return ((d - d.astype("datetime64[Y]")).astype(np.int64) + 1).astype(np.float64)


def _day_of_week(secs: I64) -> F64:
    # 1970-01-01 was a Thursday (4); Sunday is 0
    return np.mod(_days(secs) + 4, 7).astype(np.float64)


def _days_in_month(secs: I64) -> F64:
    month = _days(secs).astype("datetime64[D]").astype("datetime64[M]")
    return ((month + 1).astype("datetime64[D]") - month.astype("datetime64[D]")).astype(np.float64)


def _hour(secs: I64) -> F64:
    return (np.mod(secs, _SECONDS_PER_DAY) // 3600).astype(np.float64)


def _minute(secs: I64) -> F64:
    return (np.mod(secs, 3600) // 60).astype(np.float64)


def _calendar(
    ctx: FunctionContext, args: Sequence[EvalValue], part: Callable[[I64], F64]
) -> StepVector:
    if not args:
        ms = np.asarray(ctx.steps, dtype=np.int64)
        secs = np.where(ms < 0, -(-ms // 1000), ms // 1000)  # Go truncates toward zero
        values = part(secs)[None, :]
        present = np.ones(values.shape, dtype=np.bool_)
        return StepVector([EMPTY_LABELS], values, present)
    vec = vector_arg(args, 0)
    raw = vec.values
    with np.errstate(all="ignore"):
        usable = np.isfinite(raw) & (np.abs(raw) < _MAX_SECONDS)
        secs = np.where(usable, np.trunc(raw), 0.0).astype(np.int64)
        values = np.where(usable, part(secs), np.nan)
    return make_vector(ctx, vec.labels, values, vec.present.copy(), in_drop=vec.drop_name)


def _register_calendar(name: str, part: Callable[[I64], F64]) -> None:
    def impl(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
        return _calendar(ctx, args, part)

    impl.__name__ = f"func_{name}"
    impl.__doc__ = f"PromQL `{name}(v=vector(time()) instant-vector)`, in UTC."
    register(name)(impl)


for _name, _part in {
    "year": _year,
    "month": _month,
    "day_of_month": _day_of_month,
    "day_of_year": _day_of_year,
    "day_of_week": _day_of_week,
    "days_in_month": _days_in_month,
    "hour": _hour,
    "minute": _minute,
}.items():
    _register_calendar(_name, _part)


# --- query bounds ----------------------------------------------------------------


def _bounds(ctx: FunctionContext) -> tuple[int, int, int]:
    return ctx.query_start_ms, ctx.query_end_ms, ctx.query_step_ms


def _const(ctx: FunctionContext, seconds: float) -> StepScalar:
    return StepScalar(np.full(len(ctx.steps), seconds))


@register("start")
def start(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    """The query's start time in Unix seconds (its evaluation time for an instant query)."""
    return _const(ctx, _bounds(ctx)[0] / 1000.0)


@register("end")
def end(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    return _const(ctx, _bounds(ctx)[1] / 1000.0)


@register("range")
def range_(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    """end() - start(), in seconds (0 for an instant query)."""
    s, e, _ = _bounds(ctx)
    return _const(ctx, (e - s) / 1000.0)


@register("step")
def step(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    """The query's resolution step in seconds (0 for an instant query)."""
    return _const(ctx, _bounds(ctx)[2] / 1000.0)
