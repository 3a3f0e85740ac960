"""The Go values a Prometheus alert template sees, and how Go's `fmt` prints them.

Python types stand for the Go types: `str` (string), `float` (float64),
`int` (int), `bool`, `None` (a nil interface), and the classes below for the
named types Prometheus's template package defines. `go_type` gives the Go
type name, because Go's messages quote it (`%!d(float64=1.5)`,
`wrong type for value; expected string; got float64`).

`sprint`, `sprintln` and `sprintf` follow Go 1.19's `fmt`: `%v` of a float is
the shortest `%g` with exponents from 1e+06 and below 1e-04, maps print
`map[k:v ...]` sorted by key, a verb that does not suit its argument prints
`%!verb(type=value)`, and missing or extra arguments are marked the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from promql.eval.gofmt import format_g, go_quote


class LabelMap(dict[str, str]):
    """Go `map[string]string` (`$labels`, `$externalLabels`, a sample's labels)."""


class ArgsMap(dict[str, Any]):
    """Go `map[string]interface {}` (what `args` returns)."""


class HTML(str):
    """Go `html/template.HTML` (what `safeHtml` returns): a string kind of its own type."""


@dataclass(slots=True)
class Sample:
    """Prometheus's `*template.sample`: one element of a `query` result."""

    Labels: LabelMap
    Value: float


class QueryResult(list[Sample]):
    """Prometheus's `template.queryResult` (`[]*sample`), what `query` returns."""


@dataclass(slots=True)
class AlertData:
    """The data an alert template runs on (Prometheus's `AlertTemplateData`)."""

    Labels: LabelMap
    ExternalLabels: LabelMap
    ExternalURL: str
    Value: float


ALERT_DATA_TYPE = (
    "struct { Labels map[string]string; ExternalLabels map[string]string; "
    "ExternalURL string; Value float64 }"
)

STRUCT_FIELDS: dict[type, tuple[str, ...]] = {
    Sample: ("Labels", "Value"),
    AlertData: ("Labels", "ExternalLabels", "ExternalURL", "Value"),
}


class Unsupported(Exception):
    """Go would print this, but not in a way worth reproducing (memory addresses, hex
    floats); the expansion fails with this message instead of printing something else."""


def go_type(value: Any) -> str:
    """The Go type name of a value, as `reflect.Type.String()` prints it."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, HTML):
        return "template.HTML"
    if isinstance(value, str):
        return "string"
    if isinstance(value, LabelMap):
        return "map[string]string"
    if isinstance(value, ArgsMap):
        return "map[string]interface {}"
    if isinstance(value, QueryResult):
        return "template.queryResult"
    if isinstance(value, Sample):
        return "*template.sample"
    if isinstance(value, AlertData):
        return ALERT_DATA_TYPE
    return type(value).__name__


def kind(value: Any) -> str:
    """Go's reflect kind, coarsely: bool, int, float, string, map, slice, ptr, struct, nil."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "slice"
    if isinstance(value, Sample):
        return "ptr"
    return "struct"


def is_true(value: Any) -> bool:
    """Go template truth: false, 0, nil and empty strings, maps and slices are false."""
    if value is None:
        return False
    if isinstance(value, bool | int | float | str | dict | list):
        return bool(value)
    return True


# -- fmt ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Flags:
    plus: bool = False
    minus: bool = False
    sharp: bool = False
    space: bool = False
    zero: bool = False
    width: int | None = None
    prec: int | None = None


_PLAIN = _Flags()


def sprint(*args: Any, deref: bool = False) -> str:
    """Go `fmt.Sprint`: a space between operands when neither is a string.

    `deref`: print a sample as the struct it points to, as text/template does
    for its own printing (`printableValue`).
    """
    out = []
    depth = 1 if deref else 0
    prev_string = False
    for i, arg in enumerate(args):
        is_string = isinstance(arg, str)
        if i > 0 and not is_string and not prev_string:
            out.append(" ")
        out.append(_format(arg, "v", _PLAIN, depth if isinstance(arg, Sample) else 0))
        prev_string = is_string
    return "".join(out)


def sprintln(*args: Any) -> str:
    """Go `fmt.Sprintln`: operands separated by spaces, then a newline."""
    return " ".join(_format(a, "v", _PLAIN, 0) for a in args) + "\n"


def print_template_value(value: Any) -> str:
    """How an action prints its value: pointers are followed, nil is `<no value>`."""
    if value is None:
        return "<no value>"
    if isinstance(value, Sample):
        return _format(value, "v", _PLAIN, 1)
    return _format(value, "v", _PLAIN, 0)


def sprintf(fmt: str, *args: Any) -> str:
    """Go `fmt.Sprintf` for the verbs `v s q d f F e E g G x X o O b c t T %`."""
    out: list[str] = []
    argi = 0
    i = 0
    n = len(fmt)
    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        i = j + 1
        flags = _Flags()
        while i < n and fmt[i] in "+-# 0":
            c = fmt[i]
            if c == "+":
                flags.plus = True
            elif c == "-":
                flags.minus = True
                flags.zero = False
            elif c == "#":
                flags.sharp = True
            elif c == " ":
                flags.space = True
            elif not flags.minus:
                flags.zero = True
            i += 1
        if i < n and fmt[i] == "*":
            i += 1
            if (
                argi < len(args)
                and isinstance(args[argi], int)
                and not isinstance(args[argi], bool)
            ):
                flags.width = args[argi]
                if flags.width < 0:
                    flags.minus, flags.zero, flags.width = True, False, -flags.width
            else:
                out.append("%!(BADWIDTH)")
            argi += 1
        else:
            start = i
            while i < n and fmt[i].isdigit():
                i += 1
            if i > start:
                flags.width = int(fmt[start:i])
        if i < n and fmt[i] == ".":
            i += 1
            if i < n and fmt[i] == "*":
                i += 1
                if argi < len(args) and isinstance(args[argi], int):
                    flags.prec = max(args[argi], 0) if args[argi] >= 0 else None
                else:
                    out.append("%!(BADPREC)")
                argi += 1
            else:
                start = i
                while i < n and fmt[i].isdigit():
                    i += 1
                flags.prec = int(fmt[start:i]) if i > start else 0
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[argi]
        argi += 1
        if verb == "T":
            out.append(_pad(go_type(arg), flags))
            continue
        out.append(_format(arg, verb, flags, 0))
    if argi < len(args):
        extra = ", ".join(
            f"{go_type(a)}={_format(a, 'v', _PLAIN, 0)}" if a is not None else "<nil>"
            for a in args[argi:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _bad_verb(arg: Any, verb: str) -> str:
    if arg is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({go_type(arg)}={_format(arg, 'v', _PLAIN, 0)})"


def _format(arg: Any, verb: str, f: _Flags, depth: int) -> str:
    if arg is None:
        return _pad("<nil>", f) if verb == "v" else _bad_verb(arg, verb)
    if isinstance(arg, bool):
        if verb in "tv":
            return _pad("true" if arg else "false", f)
        return _bad_verb(arg, verb)
    if isinstance(arg, int):
        return _format_int(arg, verb, f)
    if isinstance(arg, float):
        return _format_float(arg, verb, f)
    if isinstance(arg, str):
        return _format_string(arg, verb, f)
    if isinstance(arg, dict):
        parts = [
            f"{_format(k, verb, f, depth + 1)}:{_format(arg[k], verb, f, depth + 1)}"
            for k in sorted(arg)
        ]
        return "map[" + " ".join(parts) + "]"
    if isinstance(arg, list):
        raise Unsupported(
            "printing a query result as a whole is not supported "
            "(Prometheus prints memory addresses); use range, first or sortByLabel"
        )
    if isinstance(arg, Sample | AlertData):
        names = STRUCT_FIELDS[type(arg)]
        body = " ".join(
            (f"{name}:" if f.plus else "") + _format(getattr(arg, name), verb, f, depth + 1)
            for name in names
        )
        prefix = "&" if isinstance(arg, Sample) and depth == 0 else ""
        return prefix + "{" + body + "}"
    return _bad_verb(arg, verb)


def _pad(text: str, f: _Flags, *, zero_ok: bool = True) -> str:
    width = f.width
    if width is None or len(text) >= width:
        return text
    fill = width - len(text)
    if f.minus:
        return text + " " * fill
    if f.zero and zero_ok:
        return "0" * fill + text
    return " " * fill + text


def _sign_pad(sign: str, digits: str, f: _Flags) -> str:
    """Pad a number: zeros go between the sign and the digits."""
    if f.zero and not f.minus and f.width is not None and f.width > len(sign) + len(digits):
        return sign + "0" * (f.width - len(sign) - len(digits)) + digits
    return _pad(sign + digits, _Flags(minus=f.minus, width=f.width))


def _format_int(value: int, verb: str, f: _Flags) -> str:
    if verb == "c":
        return _pad(chr(value) if 0 <= value <= 0x10FFFF else "\ufffd", f)
    if verb in "dv":
        digits = str(abs(value))
    elif verb in "xX":
        digits = format(abs(value), verb)
    elif verb in "oO":
        digits = format(abs(value), "o")
    elif verb == "b":
        digits = format(abs(value), "b")
    elif verb == "U":
        text = f"U+{value:04X}" if value >= 0 else f"U+-{-value:04X}"
        if f.sharp and 0 <= value <= 0x10FFFF and chr(value).isprintable():
            text += f" '{chr(value)}'"
        return _pad(text, _Flags(minus=f.minus, width=f.width))
    elif verb == "q":
        raise Unsupported("the printf verb %q on an integer is not supported")
    else:
        return _bad_verb(value, verb)
    if f.prec is not None:
        digits = digits.rjust(f.prec, "0") if f.prec else ("" if value == 0 else digits)
    if verb == "O" or (f.sharp and verb in "xXob"):
        prefix = {"x": "0x", "X": "0X", "o": "0", "O": "0o", "b": "0b"}[verb]
        if not (verb == "o" and digits.startswith("0")):
            digits = prefix + digits
    sign = "-" if value < 0 else ("+" if f.plus else (" " if f.space else ""))
    if f.prec is not None:
        return _pad(sign + digits, _Flags(minus=f.minus, width=f.width))
    return _sign_pad(sign, digits, f)


def _format_float(value: float, verb: str, f: _Flags) -> str:
    if verb == "v":
        verb, prec = "g", f.prec
    elif verb in "gG":
        prec = f.prec
    elif verb in "eEfF":
        prec = 6 if f.prec is None else f.prec
    elif verb in "bxX":
        return _format_float_binary(value, verb, f)
    else:
        return _bad_verb(value, verb)
    if math.isnan(value) or math.isinf(value):
        # Go prints +Inf with its sign, and NaN without one unless asked for.
        if math.isnan(value):
            text = "+NaN" if f.plus else (" NaN" if f.space else "NaN")
        elif value < 0:
            text = "-Inf"
        else:
            text = " Inf" if f.space and not f.plus else "+Inf"
        return _pad(text, _Flags(minus=f.minus, width=f.width))
    negative = math.copysign(1.0, value) < 0
    magnitude = abs(value)
    if verb in "gG":
        if prec is None:
            digits = format_g(magnitude)
        else:
            digits = f"{magnitude:.{max(prec, 1)}g}"
        if verb == "G":
            digits = digits.upper()
    elif verb in "eE":
        digits = f"{magnitude:.{prec}e}"
        if verb == "E":
            digits = digits.upper()
    else:
        digits = f"{magnitude:.{prec}f}"
    if f.sharp and "." not in digits and "e" not in digits.lower():
        digits += "."
    sign = "-" if negative else ("+" if f.plus else (" " if f.space else ""))
    return _sign_pad(sign, digits, f)


def _format_float_binary(value: float, verb: str, f: _Flags) -> str:
    """Go's `%b` (`4503599627370496p-52`) and `%x` (`0x1.8p+00`) of a float."""
    if math.isnan(value) or math.isinf(value) or (verb != "b" and f.prec is not None):
        if math.isnan(value) or math.isinf(value):
            return _format_float(value, "g", f)
        raise Unsupported(f"the printf verb %{verb} with a precision is not supported")
    negative = math.copysign(1.0, value) < 0
    magnitude = abs(value)
    mant, exp = math.frexp(magnitude)  # magnitude = mant * 2**exp, mant in [0.5, 1)
    if verb == "b":
        if magnitude == 0:
            digits = "0p-1074"
        elif exp - 53 < -1074:
            digits = f"{int(magnitude * 2.0**1074)}p-1074"
        else:
            digits = f"{int(mant * 2.0**53)}p{exp - 53:+d}"
    else:
        if magnitude == 0:
            frac, exp2 = "", 0
            lead = "0"
        else:
            bits = int((mant * 2 - 1) * 2.0**52)
            frac = f"{bits:013x}".rstrip("0")
            exp2 = exp - 1
            lead = "1"
        digits = f"0x{lead}{'.' + frac if frac else ''}p{'+' if exp2 >= 0 else '-'}{abs(exp2):02d}"
        if verb == "X":
            digits = digits.upper()
    sign = "-" if negative else ("+" if f.plus else (" " if f.space else ""))
    return _sign_pad(sign, digits, f)


def _format_string(value: str, verb: str, f: _Flags) -> str:
    if f.prec is not None and verb in "svq":
        value = value[: f.prec]
    if verb in "sv":
        return _pad(value, f)
    if verb == "q":
        if f.sharp and "`" not in value:
            return _pad("`" + value + "`", f)
        return _pad(go_quote(value), f)
    if verb in "xX":
        data = value.encode("utf-8", "surrogateescape")
        sep = " " if f.space else ""
        hexed = sep.join(
            ("0x" if f.sharp else "") + format(b, "02x" if verb == "x" else "02X") for b in data
        )
        return _pad(hexed, f)
    return _bad_verb(value, verb)
