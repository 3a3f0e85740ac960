"""Helpers shared by the function modules: argument access, output shaping,
annotation wording, and the few Go formatting rules Prometheus messages use.

Output shaping follows Prometheus 3: most functions drop `__name__` from their
output; with delayed name removal (`FunctionContext.delayed_name_removal`)
they keep it and set the `drop_name` mark instead, so that `label_replace`
and friends can still read it and the evaluator removes it at the end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from promql.errors import ExecutionError
from promql.eval.functions.registry import FunctionContext, drop_metric_names
from promql.value import EvalValue, StepRange, StepScalar, StepVector, String
from storage.labels import Labels

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
BOOL = NDArray[np.bool_]


# --- arguments -------------------------------------------------------------


def scalar_arg(args: Sequence[EvalValue], i: int, nsteps: int) -> F64:
    """Argument `i` as a `[steps]` float array (a scalar may vary by step)."""
    arg = args[i]
    if isinstance(arg, StepScalar):
        vals = np.asarray(arg.values, dtype=np.float64)
        if vals.shape == (nsteps,):
            return vals
        return np.broadcast_to(vals, (nsteps,)).astype(np.float64)
    if isinstance(arg, int | float):
        return np.full(nsteps, float(arg))
    raise ExecutionError(
        f"expected a scalar argument at position {i + 1}, got {type(arg).__name__}"
    )


def nsteps_of(ctx: FunctionContext, vec: StepVector) -> int:
    """Steps of a vector argument; an empty vector may come without a step axis."""
    if vec.values.ndim == 2 and (vec.num_series or vec.values.shape[1]):
        return int(vec.values.shape[1])
    return len(ctx.steps)


def string_arg(args: Sequence[EvalValue], i: int) -> str:
    arg = args[i]
    if isinstance(arg, String):
        return arg.value
    if isinstance(arg, str):
        return arg
    raise ExecutionError(
        f"expected a string argument at position {i + 1}, got {type(arg).__name__}"
    )


def vector_arg(args: Sequence[EvalValue], i: int) -> StepVector:
    arg = args[i]
    if not isinstance(arg, StepVector):
        raise ExecutionError(
            f"expected an instant vector at position {i + 1}, got {type(arg).__name__}"
        )
    return arg


def range_arg(args: Sequence[EvalValue], i: int) -> StepRange:
    arg = args[i]
    if not isinstance(arg, StepRange):
        raise ExecutionError(
            f"expected a range vector at position {i + 1}, got {type(arg).__name__}"
        )
    return arg


# --- outputs ---------------------------------------------------------------


def shape_labels(
    ctx: FunctionContext,
    labels: list[Labels],
    *,
    drop_name: bool,
    in_drop: BOOL | None = None,
) -> tuple[list[Labels], BOOL | None]:
    """Output labels and drop marks for a function's result.

    `drop_name=True`: the function removes `__name__` (now, or via the mark
    under delayed name removal). `drop_name=False`: the function keeps the
    name and passes the input's marks through.
    """
    if not drop_name:
        return list(labels), None if in_drop is None else in_drop.copy()
    if ctx.delayed_name_removal:
        return list(labels), np.ones(len(labels), dtype=np.bool_)
    return drop_metric_names(labels), None


def make_vector(
    ctx: FunctionContext,
    labels: list[Labels],
    values: F64,
    present: BOOL,
    *,
    drop_name: bool = True,
    in_drop: BOOL | None = None,
    keep_empty: bool = False,
) -> StepVector:
    """A StepVector result; series with no present step are removed unless `keep_empty`."""
    out_labels, marks = shape_labels(ctx, labels, drop_name=drop_name, in_drop=in_drop)
    if not keep_empty and len(out_labels):
        keep = present.any(axis=1)
        if not keep.all():
            idx = np.flatnonzero(keep)
            out_labels = [out_labels[i] for i in idx]
            values = values[idx]
            present = present[idx]
            if marks is not None:
                marks = marks[idx]
    return StepVector(out_labels, values, present, marks)


def empty_vector(nsteps: int) -> StepVector:
    return StepVector(
        [], np.empty((0, nsteps), dtype=np.float64), np.empty((0, nsteps), dtype=np.bool_)
    )


# --- annotations -----------------------------------------------------------


def _with_position(ctx: FunctionContext, message: str, arg: int) -> str:
    pos = ctx.position(arg)
    return f"{message} {pos}" if pos else message


def add_info(ctx: FunctionContext, text: str, arg: int) -> None:
    """An info annotation worded as Prometheus does: `PromQL info: <text> (line:col)`."""
    ctx.annotations.info(_with_position(ctx, f"PromQL info: {text}", arg))


def add_warning(ctx: FunctionContext, text: str, arg: int) -> None:
    ctx.annotations.warn(_with_position(ctx, f"PromQL warning: {text}", arg))


def warn_invalid_quantiles(ctx: FunctionContext, q: F64, arg: int) -> None:
    """Prometheus warns once per distinct out-of-range quantile value."""
    bad = np.isnan(q) | (q < 0) | (q > 1)
    if bad.any():
        for value in dict.fromkeys(q[bad].tolist()):
            add_warning(
                ctx,
                f"quantile value should be between 0 and 1, got {format_go_g(value)}",
                arg,
            )


# --- Go formatting ---------------------------------------------------------

_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def go_quote(s: str) -> str:
    """Go's `%q` / strconv.Quote for the strings that appear in messages."""
    out = ['"']
    for ch in s:
        esc = _GO_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif "\ud800" <= ch <= "\udfff":
            out.append(f"\\x{ord(ch) & 0xFF:02x}")  # surrogate-escaped raw byte
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def format_go_g(x: float) -> str:
    """Go's `%g` (strconv 'g', shortest repr): 1e+06, 1e-05, 0.0001, 123456, NaN, +Inf."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    digits = repr(x)  # shortest round-trip digits
    mantissa, _, exp_str = digits.partition("e")
    sign = ""
    if mantissa.startswith("-"):
        sign, mantissa = "-", mantissa[1:]
    int_part, _, frac_part = mantissa.partition(".")
    if frac_part == "0":
        frac_part = ""
    exp10 = int(exp_str) if exp_str else 0
    raw = (int_part + frac_part).lstrip("0")
    # decimal exponent of the first significant digit
    if int_part.strip("0"):
        point = len(int_part.lstrip("0")) + exp10
    else:
        point = -(len(frac_part) - len(frac_part.lstrip("0"))) + exp10
    digs = raw.rstrip("0") or "0"
    exp = point - 1
    if exp < -4 or exp >= 6:  # strconv uses precision 6 for the shortest form
        head, tail = digs[0], digs[1:]
        mant = f"{head}.{tail}" if tail else head
        return f"{sign}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{sign}0.{'0' * (-exp - 1)}{digs}"
    if len(digs) <= exp + 1:
        return f"{sign}{digs}{'0' * (exp + 1 - len(digs))}"
    return f"{sign}{digs[: exp + 1]}.{digs[exp + 1 :]}"


def format_openmetrics_float(x: float) -> str:
    """Prometheus `labels.FormatOpenMetricsFloat`: like %g, integers get `.0`."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    s = format_go_g(x)
    if "." not in s and "e" not in s:
        s += ".0"
    return s


def parse_go_float(text: str) -> float | None:
    """strconv.ParseFloat(text, 64) for `le` values: None where Go would fail.

    Go accepts decimal and hex floats, "inf"/"infinity"/"nan" in any case
    with an optional sign, and underscores only between digits of a
    base-prefixed (hex) literal; it rejects surrounding spaces.
    """
    if not text or text != text.strip():
        return None
    body = text[1:] if text[0] in "+-" else text
    if "_" in body:
        return None
    low = body.lower()
    if low.startswith("0x"):
        try:
            value = float.fromhex(body)
        except ValueError:
            return None
        return -value if text[0] == "-" else value
    if low in ("inf", "infinity"):
        return -math.inf if text[0] == "-" else math.inf
    if low == "nan":
        return math.nan
    if not all(c in "0123456789.eE+-" for c in body):
        return None
    try:
        return float(text)
    except ValueError:
        return None


def is_valid_label_name(name: str) -> bool:
    """Prometheus 3 (UTF-8 names): any non-empty, valid UTF-8 string."""
    if not name:
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates stand for invalid bytes
        return False
    return True
