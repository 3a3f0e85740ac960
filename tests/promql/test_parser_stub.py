"""`typings/promql_parser/__init__.pyi` says what the installed package does.

mypy trusts the stub, so a newer `promql-parser` that renames, adds or retypes
something must fail here rather than at run time: the stub and the module name
the same things, and every attribute of every node of parsed queries has the
type the stub declares for it.
"""

from __future__ import annotations

import ast
import datetime
import types
from pathlib import Path
from typing import Any, ClassVar, Union, get_args, get_origin

import promql_parser
import pytest

STUB = Path(__file__).resolve().parents[2] / "typings" / "promql_parser" / "__init__.pyi"

QUERIES = [
    'sum by (job) (rate(http_requests_total{code=~"5..", job!="x"}[5m] offset 1m @ 100))',
    'topk(3, x) + on (a) group_left (b) y{z!~"q"}',
    'count_values without () ("v", x)',
    "-(1 + 2) * x > bool on () group_right y unless z",
    "max_over_time(rate(x[1m])[10m:30s] @ start())",
    "avg_over_time(x[5m:] offset -2m)",
    'label_join(x, "d", "-", "a", "b") and ignoring (c) w',
    'x{a="b" or c="d"} @ end()',
    '{__name__="m"}',
    "quantile(0.5, x) / scalar(y)",
    "time()",
]


def _stub() -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Annotated attributes per stub class (evaluated to types) and the stub's functions."""
    tree = ast.parse(STUB.read_text())
    namespace: dict[str, Any] = {
        **vars(promql_parser),
        "datetime": datetime.datetime,
        "timedelta": datetime.timedelta,
        "ClassVar": ClassVar,
    }
    classes: dict[str, dict[str, Any]] = {}
    functions: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            functions.add(node.name)
        elif isinstance(node, ast.ClassDef):
            attrs = {}
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    attrs[item.target.id] = eval(ast.unparse(item.annotation), namespace)
            classes[node.name] = attrs
    return classes, functions


CLASSES, FUNCTIONS = _stub()


def _conforms(value: object, tp: Any) -> bool:
    origin = get_origin(tp)
    if origin is ClassVar:
        return _conforms(value, get_args(tp)[0])
    if origin in (Union, types.UnionType):
        return any(_conforms(value, arg) for arg in get_args(tp))
    if origin is list:
        (item,) = get_args(tp)
        return isinstance(value, list) and all(_conforms(v, item) for v in value)
    if tp is None or tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, float)
    return isinstance(value, tp)


def test_stub_and_module_name_the_same_things() -> None:
    public = {n for n in dir(promql_parser) if not n.startswith("_") and n != "promql_parser"}
    assert public == set(CLASSES) | FUNCTIONS
    for name in FUNCTIONS:
        assert callable(getattr(promql_parser, name))
    for name in CLASSES:
        assert isinstance(getattr(promql_parser, name), type)


def test_enum_like_members_have_their_class_type() -> None:
    for name, attrs in CLASSES.items():
        cls = getattr(promql_parser, name)
        for attr, tp in attrs.items():
            if get_origin(tp) is ClassVar:
                assert _conforms(getattr(cls, attr), tp), f"{name}.{attr}"


def _walk(obj: object, seen: set[str]) -> None:
    """Check every attribute the stub declares for `obj`, then the objects they hold."""
    name = type(obj).__name__
    assert name in CLASSES, f"{name} is not in the stub"
    seen.add(name)
    for attr, tp in CLASSES[name].items():
        if get_origin(tp) is ClassVar:
            continue
        value = getattr(obj, attr)
        assert _conforms(value, tp), f"{name}.{attr} = {value!r}, the stub says {tp}"
        for item in value if isinstance(value, list) else [value]:
            for child in item if isinstance(item, list) else [item]:
                if type(child).__name__ in CLASSES:
                    _walk(child, seen)


def test_parsed_trees_have_the_stub_s_types() -> None:
    seen: set[str] = set()
    for query in QUERIES:
        _walk(promql_parser.parse(query), seen)
    with_attributes = {
        name
        for name, attrs in CLASSES.items()
        if any(get_origin(tp) is not ClassVar for tp in attrs.values())
    }
    assert with_attributes - seen == set(), "the queries reach every node kind"


def test_parse_errors_are_value_errors_without_position() -> None:
    with pytest.raises(ValueError, match=r"^unclosed left parenthesis$"):
        promql_parser.parse("sum(")
