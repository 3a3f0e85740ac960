"""`label_replace` and `label_join`: label edits, values untouched.

Regexes are RE2 (`storage.labels.compile_anchored`: fully anchored, `.`
matches newlines), as in Prometheus. Replacement templates follow Go's
`Regexp.Expand`: `$1`, `${1}`, `$name`, `${name}`, `$$`; a name is the
longest run of letters, digits and `_`, so `$1x` refers to a group named
"1x" (empty) — write `${1}x`. The work is per distinct source value, so
many series sharing values cost one regex match.

Series that end up with the same label set are not merged here: the
evaluator merges them where they do not overlap in time and raises
"vector cannot contain metrics with the same labelset" where they do.
The drop-name mark is cleared when the edit sets `__name__` itself, so a
name written by the user survives delayed name removal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from promql.errors import ExecutionError
from promql.eval.functions.common import is_valid_label_name, string_arg, vector_arg
from promql.eval.functions.registry import FunctionContext, register
from promql.value import EvalValue, StepVector
from storage.labels import METRIC_NAME, InvalidRegex, Labels, compile_anchored


def _template_name(template: str, i: int) -> tuple[str, int] | None:
    """Go `extract`: the name after a `$` at `template[i:]` and the index after it."""
    brace = i < len(template) and template[i] == "{"
    j = i + 1 if brace else i
    k = j
    while k < len(template) and (template[k].isalnum() or template[k] == "_"):
        k += 1
    if k == j:
        return None
    name = template[j:k]
    if brace:
        if k >= len(template) or template[k] != "}":
            return None
        k += 1
    return name, k


def expand_template(template: str, match: Any, groupindex: dict[str, int]) -> str:
    """Go `Regexp.ExpandString` semantics for a successful RE2 match."""
    out: list[str] = []
    i = 0
    ngroups = len(match.groups())
    while True:
        j = template.find("$", i)
        if j < 0:
            out.append(template[i:])
            return "".join(out)
        out.append(template[i:j])
        i = j + 1
        if i < len(template) and template[i] == "$":
            out.append("$")
            i += 1
            continue
        extracted = _template_name(template, i)
        if extracted is None:
            out.append("$")  # malformed: the dollar is literal text
            continue
        name, i = extracted
        if name.isascii() and name.isdigit() and not (name[0] == "0" and len(name) > 1):
            num = int(name) if len(name) <= 8 else -1
            if 0 <= num <= ngroups:
                value = match.group(num)
                if value is not None:
                    out.append(value)
            continue
        idx = groupindex.get(name)
        if idx is not None:
            value = match.group(idx)
            if value is not None:
                out.append(value)


def _with_drop(vec: StepVector, labels: list[Labels], touched: list[bool], dst: str) -> StepVector:
    drop = vec.drop_name
    if dst == METRIC_NAME and drop is not None and any(touched):
        drop = drop.copy()
        drop[np.asarray(touched, dtype=np.bool_)] = False
    return StepVector(labels, vec.values, vec.present, drop)


@register("label_replace")
def label_replace(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    """`label_replace(v, dst, replacement, src, regex)`: set dst where regex matches src."""
    dst = string_arg(args, 1)
    template = string_arg(args, 2)
    src = string_arg(args, 3)
    pattern = string_arg(args, 4)
    try:
        regex = compile_anchored(pattern)
    except InvalidRegex:
        raise ExecutionError(f"invalid regular expression in label_replace(): {pattern}") from None
    if not is_valid_label_name(dst):
        raise ExecutionError(f"invalid destination label name in label_replace(): {dst}")
    vec = vector_arg(args, 0)
    groupindex = dict(regex.groupindex)
    cache: dict[str, str | None] = {}
    labels: list[Labels] = []
    touched: list[bool] = []
    for lbl in vec.labels:
        value = lbl.get(src)
        if value in cache:
            new = cache[value]
        else:
            m = regex.match(value)
            new = None if m is None else expand_template(template, m, groupindex)
            cache[value] = new
        if new is None:
            labels.append(lbl)
            touched.append(False)
        else:
            labels.append(lbl.with_(dst, new))
            touched.append(True)
    return _with_drop(vec, labels, touched, dst)


@register("label_join")
def label_join(ctx: FunctionContext, args: Sequence[EvalValue]) -> EvalValue:
    """`label_join(v, dst, separator, src...)`: dst = the src values joined (absent = "")."""
    dst = string_arg(args, 1)
    sep = string_arg(args, 2)
    srcs = [string_arg(args, i) for i in range(3, len(args))]
    for src in srcs:
        if not is_valid_label_name(src):
            raise ExecutionError(f"invalid source label name in label_join(): {src}")
    if not is_valid_label_name(dst):
        raise ExecutionError(f"invalid destination label name in label_join(): {dst}")
    vec = vector_arg(args, 0)
    labels = [lbl.with_(dst, sep.join(lbl.get(s) for s in srcs)) for lbl in vec.labels]
    return _with_drop(vec, labels, [True] * len(labels), dst)
