"""Run a parsed template over Go-like values (Go 1.19 `text/template/exec.go`).

The rules that shape the output: an action prints its value with `fmt.Sprint`
(nil as `<no value>`); a missing map key reads as the element type's zero
value (Prometheus sets `missingkey=zero`); a function argument is converted
to the parameter's type, numeric literals by their spelling (`1` is an int,
`1.0` a float64), and a value of another type is an error; errors stop the
expansion with Go's message, `template: NAME:LINE:COL: executing "NAME" at
<NODE>: REASON`, which Prometheus shows in place of the text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from alerting.template import nodes as n
from alerting.template.values import (
    STRUCT_FIELDS,
    LabelMap,
    Sample,
    go_type,
    is_true,
    print_template_value,
)

ANY = "any"
"""A parameter of type `interface{}` (or `reflect.Value`): any value is accepted as is."""

NILABLE = {"*template.sample", "template.queryResult", "map[string]string"}


class TemplateRuntimeError(Exception):
    """An execution error, with Go's full message."""


class FunctionError(Exception):
    """Raised by a template function: becomes `error calling NAME: <message>`."""


@dataclass(frozen=True, slots=True)
class Function:
    """A template function with its Go signature (parameter types name Go types)."""

    params: tuple[str, ...]
    impl: Callable[..., Any]
    variadic: str | None = None
    lazy: bool = False  # and/or: arguments evaluated one by one, stopping early


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


_MISSING: Any = object()


class Executor:
    """One expansion of one template: `run(root, data)` returns the text."""

    def __init__(self, name: str, text: str, functions: Mapping[str, Function]) -> None:
        self.name = name
        self.text_bytes = text.encode("utf-8", "surrogatepass")
        self.functions = functions
        self.vars: list[tuple[str, Any]] = []
        self.node: n.Node | None = None
        self.out: list[str] = []

    def run(self, root: n.ListNode, data: Any) -> str:
        self.vars = [("$", data)]
        self.walk(data, root)
        return "".join(self.out)

    # -- errors ------------------------------------------------------------------

    def error(self, message: str) -> TemplateRuntimeError:
        node = self.node
        if node is None:
            return TemplateRuntimeError(f"template: {self.name}: {message}")
        before = self.text_bytes[: node.pos]
        line = before.count(b"\n") + 1
        newline = before.rfind(b"\n")
        col = node.pos if newline < 0 else node.pos - newline - 1
        return TemplateRuntimeError(
            f'template: {self.name}:{line}:{col}: executing "{self.name}" at <{node}>: {message}'
        )

    # -- statements --------------------------------------------------------------

    def walk(self, dot: Any, node: n.Node) -> None:
        self.node = node
        if isinstance(node, n.ListNode):
            for item in node.nodes:
                self.walk(dot, item)
        elif isinstance(node, n.TextNode):
            self.out.append(node.text)
        elif isinstance(node, n.ActionNode):
            value = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.node = node
                self.print_value(value)
        elif isinstance(node, n.BranchNode):
            if node.kind == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_or_with(dot, node)
        elif isinstance(node, n.BreakNode):
            raise _Break
        elif isinstance(node, n.ContinueNode):
            raise _Continue
        else:  # pragma: no cover - the parser builds no other nodes
            raise self.error(f"unknown node: {node}")

    def print_value(self, value: Any) -> None:
        self.out.append(print_template_value(value))

    def walk_if_or_with(self, dot: Any, node: n.BranchNode) -> None:
        mark = len(self.vars)
        try:
            value = self.eval_pipeline(dot, node.pipe)
            if is_true(value):
                self.walk(value if node.kind == "with" else dot, node.body)
            elif node.else_body is not None:
                self.walk(dot, node.else_body)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot: Any, node: n.BranchNode) -> None:
        self.node = node
        mark = len(self.vars)
        try:
            value = self.eval_pipeline(dot, node.pipe)
            if isinstance(value, Sample):
                raise self.error(f"range can't iterate over {print_template_value(value)}")
            if isinstance(value, dict):
                items = [(k, value[k]) for k in sorted(value)]
            elif isinstance(value, list):
                items = list(enumerate(value))
            elif value is None:
                items = []
            else:
                raise self.error(f"range can't iterate over {print_template_value(value)}")
            body_mark = len(self.vars)
            for index, elem in items:
                self._set_range_vars(node.pipe, index, elem)
                try:
                    self.walk(elem, node.body)
                except _Continue:
                    pass
                except _Break:
                    break
                finally:
                    del self.vars[body_mark:]
            if not items and node.else_body is not None:
                self.walk(dot, node.else_body)
        finally:
            del self.vars[mark:]

    def _set_range_vars(self, pipe: n.PipeNode, index: Any, elem: Any) -> None:
        decl = pipe.decl
        if not decl:
            return
        if pipe.is_assign:
            if len(decl) > 1:
                self.set_var(decl[0].idents[0], index)
                self.set_var(decl[1].idents[0], elem)
            else:
                self.set_var(decl[0].idents[0], elem)
            return
        # Declared by the pipeline: the last declared gets the element.
        top = len(self.vars) - 1
        self.vars[top] = (self.vars[top][0], elem)
        if len(decl) > 1:
            self.vars[top - 1] = (self.vars[top - 1][0], index)

    # -- variables ---------------------------------------------------------------

    def var_value(self, name: str) -> Any:
        for var, value in reversed(self.vars):
            if var == name:
                return value
        raise self.error(f"undefined variable: {name}")

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        raise self.error(f"undefined variable: {name}")

    # -- pipelines -----------------------------------------------------------------

    def eval_pipeline(self, dot: Any, pipe: n.PipeNode) -> Any:
        self.node = pipe
        value: Any = _MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        for var in pipe.decl:
            name = var.idents[0]
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.vars.append((name, value))
        return value

    def not_a_function(self, args: list[n.Node], final: Any) -> None:
        if len(args) > 1 or final is not _MISSING:
            raise self.error(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot: Any, cmd: n.CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, n.FieldNode):
            self.node = first
            return self.eval_field_chain(dot, dot, first, first.idents, cmd.args, final)
        if isinstance(first, n.ChainNode):
            return self.eval_chain(dot, first, cmd.args, final)
        if isinstance(first, n.IdentifierNode):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, n.PipeNode):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, n.VariableNode):
            return self.eval_variable(dot, first, cmd.args, final)
        self.node = first
        self.not_a_function(cmd.args, final)
        if isinstance(first, n.BoolNode):
            return first.value
        if isinstance(first, n.DotNode):
            return dot
        if isinstance(first, n.NilNode):
            raise self.error("nil is not a command")
        if isinstance(first, n.NumberNode):
            return self.ideal_constant(first)
        if isinstance(first, n.StringNode):
            return first.text
        raise self.error(f"can't evaluate command {first}")

    def ideal_constant(self, node: n.NumberNode) -> Any:
        self.node = node
        text = node.text
        is_hex = text.lstrip("+-")[:2].lower() == "0x"
        if (
            node.float_value is not None
            and not is_hex
            and not text.startswith("'")
            and any(c in text for c in ".eEpP")
        ):
            return node.float_value
        if node.int_value is not None:
            if not -(1 << 63) <= node.int_value < (1 << 63):
                raise self.error(f"{text} overflows int")
            return node.int_value
        return None

    def eval_variable(self, dot: Any, var: n.VariableNode, args: list[n.Node], final: Any) -> Any:
        self.node = var
        value = self.var_value(var.idents[0])
        if len(var.idents) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, var, var.idents[1:], args, final)

    def eval_chain(self, dot: Any, chain: n.ChainNode, args: list[n.Node], final: Any) -> Any:
        self.node = chain
        if not chain.fields:
            raise self.error("internal error: no fields in evalChainNode")
        if isinstance(chain.node, n.NilNode):
            raise self.error(f"indirection through explicit nil in {chain}")
        pipe = self.eval_arg(dot, ANY, chain.node)
        return self.eval_field_chain(dot, pipe, chain, chain.fields, args, final)

    def eval_field_chain(
        self,
        dot: Any,
        receiver: Any,
        node: n.Node,
        idents: list[str],
        args: list[n.Node],
        final: Any,
    ) -> Any:
        for name in idents[:-1]:
            receiver = self.eval_field(name, node, [], _MISSING, receiver)
        return self.eval_field(idents[-1], node, args, final, receiver)

    def eval_field(
        self, name: str, node: n.Node, args: list[n.Node], final: Any, receiver: Any
    ) -> Any:
        if receiver is None:
            return None
        has_args = len(args) > 1 or final is not _MISSING
        if isinstance(receiver, dict):
            if has_args:
                raise self.error(f"{name} is not a method but has arguments")
            if name in receiver:
                return receiver[name]
            return "" if isinstance(receiver, LabelMap) else None  # missingkey=zero
        fields = STRUCT_FIELDS.get(type(receiver))
        if fields is not None and name in fields:
            if has_args:
                raise self.error(f"{name} has arguments but cannot be invoked as function")
            return getattr(receiver, name)
        raise self.error(f"can't evaluate field {name} in type {go_type(receiver)}")

    # -- calls -------------------------------------------------------------------

    def eval_function(
        self, dot: Any, ident: n.IdentifierNode, cmd: n.Node, args: list[n.Node], final: Any
    ) -> Any:
        self.node = ident
        fn = self.functions.get(ident.name)
        if fn is None:
            raise self.error(f'"{ident.name}" is not a defined function')
        return self.eval_call(dot, fn, cmd, ident.name, args, final)

    def eval_call(
        self, dot: Any, fn: Function, cmd: n.Node, name: str, args: list[n.Node], final: Any
    ) -> Any:
        call_args = args[1:]
        num_in = len(call_args) + (0 if final is _MISSING else 1)
        fixed = fn.params
        if fn.variadic is not None:
            if num_in < len(fixed):
                raise self.error(
                    f"wrong number of args for {name}: want at least {len(fixed)} "
                    f"got {len(call_args)}"
                )
        elif num_in != len(fixed):
            raise self.error(f"wrong number of args for {name}: want {len(fixed)} got {num_in}")
        if fn.lazy:  # and / or
            want_true = name == "or"
            value: Any = None
            for arg in call_args:
                value = self.eval_arg(dot, ANY, arg)
                if is_true(value) == want_true:
                    return value
            if final is not _MISSING:
                value = final
            return value
        values = []
        for i, arg in enumerate(call_args):
            typ = fixed[i] if i < len(fixed) else fn.variadic
            assert typ is not None
            values.append(self.eval_arg(dot, typ, arg))
        if final is not _MISSING:
            i = len(call_args)
            typ = fixed[i] if i < len(fixed) else fn.variadic
            assert typ is not None
            values.append(self.validate_type(final, typ))
        try:
            return fn.impl(*values)
        except FunctionError as exc:
            self.node = cmd
            raise self.error(f"error calling {name}: {exc}") from None

    def eval_arg(self, dot: Any, typ: str, node: n.Node) -> Any:
        self.node = node
        if isinstance(node, n.DotNode):
            return self.validate_type(dot, typ)
        if isinstance(node, n.NilNode):
            if typ == ANY or typ in NILABLE:
                return None
            raise self.error(f"cannot assign nil to {typ}")
        if isinstance(node, n.FieldNode):
            value = self.eval_field_chain(dot, dot, node, node.idents, [node], _MISSING)
            return self.validate_type(value, typ)
        if isinstance(node, n.VariableNode):
            return self.validate_type(self.eval_variable(dot, node, [], _MISSING), typ)
        if isinstance(node, n.PipeNode):
            return self.validate_type(self.eval_pipeline(dot, node), typ)
        if isinstance(node, n.IdentifierNode):
            return self.validate_type(self.eval_function(dot, node, node, [node], _MISSING), typ)
        if isinstance(node, n.ChainNode):
            return self.validate_type(self.eval_chain(dot, node, [], _MISSING), typ)
        self.node = node
        if typ == ANY:
            if isinstance(node, n.BoolNode):
                return node.value
            if isinstance(node, n.NumberNode):
                return self.ideal_constant(node)
            if isinstance(node, n.StringNode):
                return node.text
        elif typ == "bool":
            if isinstance(node, n.BoolNode):
                return node.value
            raise self.error(f"expected bool; found {node}")
        elif typ == "float64":
            if isinstance(node, n.NumberNode) and node.float_value is not None:
                return node.float_value
            raise self.error(f"expected float; found {node}")
        elif typ == "int":
            if isinstance(node, n.NumberNode) and node.int_value is not None:
                return node.int_value
            raise self.error(f"expected integer; found {node}")
        elif typ == "string":
            if isinstance(node, n.StringNode):
                return node.text
            raise self.error(f"expected string; found {node}")
        raise self.error(f"can't handle {node} for arg of type {typ}")

    def validate_type(self, value: Any, typ: str) -> Any:
        if typ == ANY:
            return value
        if value is None:
            if typ in NILABLE:
                return None
            raise self.error(f"invalid value; expected {typ}")
        actual = go_type(value)
        if actual != typ:
            raise self.error(f"wrong type for value; expected {typ}; got {actual}")
        return value
