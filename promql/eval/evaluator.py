"""The evaluator: one node at a time, every step of the query at once.

`Evaluator.eval(expr, steps)` returns the node's value at all `steps` (int ms):
a `StepScalar`, `StepVector`, `StepRange` or `String`. Subqueries call `eval`
again with their own, finer step grid. The selected data was fetched before
evaluation starts (see `promql.plan`), so evaluation is synchronous numpy work
that checks the deadline and cancellation between nodes.

`__name__` removal follows `EvalContext.delayed_name_removal`. On (Prometheus
3 with `promql-delayed-name-removal`): operations mark series instead, and the
engine removes the names once evaluation ends, so `label_replace` and
`by (__name__)` still see them. Off (Prometheus 3's default): each operation
removes the name at once, and series that end up with one label set are
merged where they never meet; two at one step is the duplicate-labelset error
(`vectors.merge_same_labels`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from promql import ast
from promql.distribute import PushedAggregate
from promql.errors import ExecutionError
from promql.eval import binary, builtins, histglue, selectors
from promql.eval.aggregations import aggregate
from promql.eval.context import EvalContext, selector_key
from promql.eval.functions.registry import FUNCTIONS, FunctionContext
from promql.eval.histsel import unify
from promql.eval.pushed import evaluate_pushed
from promql.eval.vectors import compact, empty_vector, floats_only, merge_same_labels
from promql.value import EvalValue, HistCells, StepRange, StepScalar, StepVector, String

I64 = NDArray[np.int64]


class Evaluator:
    """Evaluates expression trees of one query over `EvalContext`'s data."""

    def __init__(self, ctx: EvalContext) -> None:
        self.ctx = ctx

    def eval(self, expr: ast.Expr, steps: I64) -> EvalValue:
        self.ctx.check()
        method = getattr(self, "_eval_" + type(expr).__name__, None)
        if method is None:
            raise ExecutionError(f"unsupported expression {type(expr).__name__}")
        out: EvalValue = method(expr, steps)
        return out

    def eval_vector(self, expr: ast.Expr, steps: I64) -> StepVector:
        out = self.eval(expr, steps)
        if not isinstance(out, StepVector):
            raise ExecutionError(f"expected an instant vector, got {type(out).__name__}")
        return out

    def eval_scalar(self, expr: ast.Expr, steps: I64) -> StepScalar:
        out = self.eval(expr, steps)
        if not isinstance(out, StepScalar):
            raise ExecutionError(f"expected a scalar, got {type(out).__name__}")
        return out

    # --- times ------------------------------------------------------------

    def times(self, at: ast.At | None, offset_ms: int, steps: I64) -> I64:
        """Evaluation times of a selector or subquery after `@` and `offset`."""
        if at is None:
            base = steps
        else:
            ts = {
                "start": self.ctx.query_start_ms,
                "end": self.ctx.query_end_ms,
            }.get(at.kind, at.ts_ms)
            base = np.full(len(steps), ts, dtype=np.int64)
        return (base - offset_ms).astype(np.int64, copy=False)

    # --- leaves -----------------------------------------------------------

    def _eval_NumberLiteral(self, e: ast.NumberLiteral, steps: I64) -> EvalValue:
        return StepScalar(np.full(len(steps), e.value))

    def _eval_StringLiteral(self, e: ast.StringLiteral, steps: I64) -> EvalValue:
        return String(e.value)

    def _eval_ParenExpr(self, e: ast.ParenExpr, steps: I64) -> EvalValue:
        return self.eval(e.expr, steps)

    def _eval_UnaryExpr(self, e: ast.UnaryExpr, steps: I64) -> EvalValue:
        inner = self.eval(e.expr, steps)
        if isinstance(inner, StepScalar):
            return StepScalar(-inner.values)
        if isinstance(inner, StepVector):
            delayed = self.ctx.delayed_name_removal
            if histglue.has_hist(inner):
                out = histglue.unary_minus(
                    inner, lambda v: binary.unary_minus(v, delayed=delayed), delayed
                )
            else:
                out = binary.unary_minus(inner, delayed=delayed)
            return out if self.ctx.delayed_name_removal else merge_same_labels(out)
        raise ExecutionError("unary minus is only defined for scalars and instant vectors")

    def select_vector(
        self, e: ast.VectorSelector, steps: I64, *, with_timestamps: bool = False
    ) -> tuple[StepVector, I64 | None]:
        ss, href, table = unify(self.ctx.data[selector_key(e)])
        self.ctx.check_points(len(ss.labels) * len(steps))
        times = self.times(e.at, e.offset_ms, steps)
        vec, ts = selectors.instant_vector(
            ss,
            times,
            self.ctx.lookback_ms,
            with_timestamps=with_timestamps,
            hist=None if href is None or table is None else (href, table),
        )
        return vec, ts

    def _eval_VectorSelector(self, e: ast.VectorSelector, steps: I64) -> EvalValue:
        vec, _ = self.select_vector(e, steps)
        return compact(vec)

    def _eval_MatrixSelector(self, e: ast.MatrixSelector, steps: I64) -> EvalValue:
        vs = e.selector
        ss, href, table = unify(self.ctx.data[selector_key(vs)])
        self.ctx.check_points(len(ss.labels) * len(steps))
        ends = self.times(vs.at, vs.offset_ms, steps)
        if href is None or table is None:
            offsets, ts, vals = selectors.drop_stale(ss)
            return selectors.range_vector(list(ss.labels), offsets, ts, vals, ends, e.range_ms)
        offsets, ts, vals, href = selectors.drop_stale_hist(ss, href)
        rng = selectors.range_vector(list(ss.labels), offsets, ts, vals, ends, e.range_ms)
        rng.hist = HistCells(href, table)
        return rng

    def _eval_SubqueryExpr(self, e: ast.SubqueryExpr, steps: I64) -> EvalValue:
        ends = self.times(e.at, e.offset_ms, steps)
        interval = e.step_ms or self.ctx.default_subquery_step_ms
        first = int(ends.min()) - e.range_ms
        start = (first // interval) * interval
        if start <= first:
            start += interval
        last = int(ends.max())
        inner_steps = np.arange(start, last + 1, interval, dtype=np.int64)
        self.ctx.check_points(len(inner_steps))
        if len(inner_steps) == 0:
            vec = empty_vector(0)
        else:
            inner = self.eval(e.expr, inner_steps)
            if not isinstance(inner, StepVector):
                raise ExecutionError("subquery is only allowed on instant vector expressions")
            # Equal label sets never overlap in time here; make each one series.
            vec = merge_same_labels(compact(inner))
        offsets, ts, vals = selectors.vector_to_csr(vec, inner_steps)
        rng = selectors.range_vector(
            list(vec.labels), offsets, ts, vals, ends, e.range_ms, vec.drop_name
        )
        if vec.hist is not None:
            rows, cols = np.nonzero(vec.present)
            rng.hist = HistCells(vec.hist.ref[rows, cols], vec.hist.table)
        return rng

    # --- operators --------------------------------------------------------

    def _eval_BinaryExpr(self, e: ast.BinaryExpr, steps: I64) -> EvalValue:
        out = self._binary(e, steps)
        if self.ctx.delayed_name_removal or not isinstance(out, StepVector):
            return out
        return merge_same_labels(out)

    def _binary(self, e: ast.BinaryExpr, steps: I64) -> EvalValue:
        lhs = self.eval(e.lhs, steps)
        rhs = self.eval(e.rhs, steps)
        delayed = self.ctx.delayed_name_removal
        if isinstance(lhs, StepScalar) and isinstance(rhs, StepScalar):
            return binary.scalar_binop(e.op, lhs, rhs)
        if isinstance(lhs, StepVector) and isinstance(rhs, StepScalar):
            if histglue.has_hist(lhs):
                return histglue.vector_scalar(
                    self.ctx, e.op, lhs, rhs, scalar_left=False,
                    float_op=lambda v: binary.vector_scalar_binop(
                        e.op, v, rhs, scalar_left=False, return_bool=e.return_bool,
                        delayed=delayed),
                )  # fmt: skip
            return binary.vector_scalar_binop(
                e.op, lhs, rhs, scalar_left=False, return_bool=e.return_bool, delayed=delayed
            )
        if isinstance(lhs, StepScalar) and isinstance(rhs, StepVector):
            if histglue.has_hist(rhs):
                return histglue.vector_scalar(
                    self.ctx, e.op, rhs, lhs, scalar_left=True,
                    float_op=lambda v: binary.vector_scalar_binop(
                        e.op, v, lhs, scalar_left=True, return_bool=e.return_bool,
                        delayed=delayed),
                )  # fmt: skip
            return binary.vector_scalar_binop(
                e.op, rhs, lhs, scalar_left=True, return_bool=e.return_bool, delayed=delayed
            )
        if isinstance(lhs, StepVector) and isinstance(rhs, StepVector):
            matching = e.matching or ast.VectorMatching()
            hist = histglue.has_hist(lhs) or histglue.has_hist(rhs)
            if e.op in ast.SET_OPS:
                if hist:
                    return compact(histglue.set_op(e.op, lhs, rhs, matching, binary.set_binop))
                return compact(binary.set_binop(e.op, lhs, rhs, matching))
            if hist:
                return compact(
                    histglue.vector_vector(
                        self.ctx, e.op, lhs, rhs, matching,
                        lambda a, b: binary.vector_binop(
                            e.op, a, b, matching, return_bool=e.return_bool, delayed=delayed),
                        return_bool=e.return_bool,
                    )
                )  # fmt: skip
            out = binary.vector_binop(
                e.op, lhs, rhs, matching, return_bool=e.return_bool, delayed=delayed
            )
            return compact(out)
        raise ExecutionError(
            f"binary operator {e.op!r} is not defined between "
            f"{type(lhs).__name__} and {type(rhs).__name__}"
        )

    def _eval_PushedAggregate(self, e: PushedAggregate, steps: I64) -> EvalValue:
        return evaluate_pushed(self, e, steps)

    def _eval_AggregateExpr(self, e: ast.AggregateExpr, steps: I64) -> EvalValue:
        param = None
        if e.param is not None:
            p = self.eval(e.param, steps)
            if not isinstance(p, StepScalar | String):
                raise ExecutionError(f"invalid parameter for {e.op}")
            param = p
        vec = self.eval_vector(e.expr, steps)
        if histglue.has_hist(vec):
            return compact(
                histglue.aggregate(
                    self.ctx, e, vec, param, lambda v: aggregate(self.ctx, e, v, param)
                )
            )
        return compact(aggregate(self.ctx, e, vec, param))

    # --- calls ------------------------------------------------------------

    def _eval_Call(self, e: ast.Call, steps: I64) -> EvalValue:
        ctx = self.ctx
        special = builtins.SPECIAL.get(e.func)
        if special is not None:
            out = special(self, e, steps)
            if e.func in ("sort", "sort_desc") and isinstance(out, StepVector):
                out = compact(floats_only(out))  # sorting by value skips histograms
            if ctx.delayed_name_removal or not isinstance(out, StepVector):
                return out
            return merge_same_labels(out)
        fdef = FUNCTIONS.get(e.func)
        if fdef is None:
            raise ExecutionError(f"function {e.func!r} is not implemented")
        args = [self.eval(a, steps) for a in e.args]
        fctx = FunctionContext(
            name=e.func,
            steps=steps,
            annotations=ctx.annotations,
            delayed_name_removal=ctx.delayed_name_removal,
            query_start_ms=ctx.query_start_ms,
            query_end_ms=ctx.query_end_ms,
            query_step_ms=ctx.query_step_ms,
            arg_exprs=e.args,
            arg_positions=tuple([ctx.position(a) for a in e.args]),
        )
        if any(histglue.has_hist(a) for a in args):
            out = histglue.call(fctx, fdef, args)
        else:
            out = fdef.impl(fctx, args)
        if not isinstance(out, StepVector):
            return out
        out = compact(_propagate_drop(e.func, args, out))
        return out if ctx.delayed_name_removal else merge_same_labels(out)


_KEEPS_NAME = frozenset({"last_over_time", "first_over_time"})


def _propagate_drop(func: str, args: list[EvalValue], out: StepVector) -> StepVector:
    """Carry delayed-name-removal marks through name-keeping range functions."""
    if out.drop_name is not None or func not in _KEEPS_NAME or not args:
        return out
    src = args[0]
    if not isinstance(src, StepRange | StepVector) or src.drop_name is None:
        return out
    marks = dict(zip(src.labels, src.drop_name.tolist(), strict=True))
    drop = np.array([marks.get(lbl, False) for lbl in out.labels], dtype=bool)
    return StepVector(out.labels, out.values, out.present, drop if drop.any() else None)
