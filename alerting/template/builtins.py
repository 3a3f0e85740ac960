"""Go's text/template builtins, as Go 1.19 defines them (`text/template/funcs.go`).

Comparisons follow Go's rules: both sides must be of the same basic kind (an
int literal and a float64 `$value` are not, so `gt $value 0` fails as it does
in Prometheus); `len` counts bytes; `html` and `urlquery` print their
arguments with `fmt.Sprint` first.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from alerting.template.exec import FunctionError
from alerting.template.values import go_type, kind, sprint


def _basic_kind(value: Any) -> str:
    k = kind(value)
    if k in ("bool", "int", "float", "string"):
        return k
    raise FunctionError("invalid type for comparison")


def eq(arg1: Any, *others: Any) -> bool:
    if not others:
        raise FunctionError("missing argument for comparison")
    k1 = kind(arg1)
    for arg in others:
        k2 = kind(arg)
        if k1 != k2:
            if arg1 is not None and arg is not None:
                raise FunctionError("incompatible types for comparison")
            truth = False
        elif k1 in ("bool", "int", "float", "string"):
            truth = arg1 == arg
        elif k1 in ("map", "slice"):
            raise FunctionError(
                f"non-comparable types {sprint(arg1)}: {go_type(arg1)}, "
                f"{go_type(arg)}: {sprint(arg)}"
            )
        else:
            truth = arg1 is arg
        if truth:
            return True
    return False


def lt(arg1: Any, arg2: Any) -> bool:
    k1 = _basic_kind(arg1)
    k2 = _basic_kind(arg2)
    if k1 != k2:
        raise FunctionError("incompatible types for comparison")
    if k1 == "bool":
        raise FunctionError("invalid type for comparison")
    return bool(arg1 < arg2)


def le(arg1: Any, arg2: Any) -> bool:
    return lt(arg1, arg2) or eq(arg1, arg2)


def length(item: Any) -> int:
    if item is None:
        raise FunctionError("len of nil pointer")
    if isinstance(item, str):
        return len(item.encode("utf-8", "surrogateescape"))
    if isinstance(item, dict | list):
        return len(item)
    raise FunctionError(f"len of type {go_type(item)}")


def index(item: Any, *indexes: Any) -> Any:
    if item is None:
        raise FunctionError("index of untyped nil")
    for index in indexes:
        if isinstance(item, dict):
            if not isinstance(index, str):
                raise FunctionError(f"value has type {go_type(index)}; should be string")
            missing = "" if go_type(item) == "map[string]string" else None
            item = item.get(index, missing)
        elif isinstance(item, list):
            if isinstance(index, bool) or not isinstance(index, int):
                raise FunctionError(f"cannot index slice/array with type {go_type(index)}")
            if not 0 <= index < len(item):
                raise FunctionError(f"index out of range: {index}")
            item = item[index]
        else:
            raise FunctionError(f"can't index item of type {go_type(item)}")
    return item


def _eval_args(args: tuple[Any, ...]) -> str:
    """Go's `evalArgs`: one plain string as is, anything else through `fmt.Sprint`."""
    if len(args) == 1 and type(args[0]) is str:
        return args[0]
    return sprint(*args, deref=True)


def html(*args: Any) -> str:
    text = _eval_args(args)
    return (
        text.replace("&", "&amp;")
        .replace("'", "&#39;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("\x00", "\ufffd")
    )


def urlquery(*args: Any) -> str:
    return urllib.parse.quote_plus(_eval_args(args), safe="")
