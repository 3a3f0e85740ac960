"""Formatting and hashing exactly as Prometheus (Go) does it.

Error and annotation messages, `count_values` label values and `limit_ratio`'s
series selection must match Prometheus byte for byte, so the Go conventions
live here: `%g`, `strconv.FormatFloat(f, 'f', -1, 64)`, `labels.String()`,
`labels.Hash()` (xxhash64) and natural sort order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import numpy as np

from storage.labels import Labels


def go_quote(value: str) -> str:
    """Go `strconv.Quote`: escapes quotes, backslashes, control and invalid UTF-8 bytes.

    Invalid UTF-8 arrives as surrogate escapes (see `promql.tokens.unquote`)
    and prints as `\\xNN`, as Go prints the raw byte.
    """
    out = []
    for ch in value:
        cp = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif 0xDC80 <= cp <= 0xDCFF:
            out.append(f"\\x{cp - 0xDC00:02x}")
        elif cp < 0x20 or cp == 0x7F:
            out.append(f"\\x{cp:02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def labels_string(labels: Iterable[tuple[str, str]]) -> str:
    """Go `labels.Labels.String()`: `{__name__="x", a="b"}`."""
    return "{" + ", ".join(f"{n}={go_quote(v)}" for n, v in labels) + "}"


def format_g(value: float) -> str:
    """Go `fmt.Sprintf("%g", v)`: shortest digits, exponent form from 1e6 and below 1e-4."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    digits = repr(value)
    mant, _, exp_s = digits.partition("e")
    neg = mant.startswith("-")
    mant = mant.lstrip("-")
    intpart, _, frac = mant.partition(".")
    if frac == "0":
        frac = ""
    exp = int(exp_s) if exp_s else 0
    # Normalise to d.ddd x 10^e
    all_digits = (intpart + frac).lstrip("0")
    lead_zeros = len(intpart + frac) - len((intpart + frac).lstrip("0"))
    e10 = len(intpart) - 1 + exp - lead_zeros
    all_digits = all_digits.rstrip("0") or "0"
    if e10 < -4 or e10 >= 6:
        m = all_digits[0] + ("." + all_digits[1:] if len(all_digits) > 1 else "")
        sign = "-" if e10 < 0 else "+"
        return f"{'-' if neg else ''}{m}e{sign}{abs(e10):02d}"
    return ("-" if neg else "") + format_f(abs(value))


def format_f(value: float) -> str:
    """Go `strconv.FormatFloat(v, 'f', -1, 64)` (shortest round-trip, no exponent)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(np.format_float_positional(value, unique=True, trim="-"))


_NAT_CHUNK = re.compile(r"(\d+)")


def natural_key(value: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key for natural order: digit runs compare as numbers ("a2" < "a10")."""
    parts = []
    for k, chunk in enumerate(_NAT_CHUNK.split(value)):
        if not chunk:
            continue
        if k % 2:
            parts.append((0, int(chunk), chunk))
        else:
            parts.append((1, 0, chunk))
    return tuple(parts)


# --- xxhash64 ----------------------------------------------------------------

_P1 = 11400714785074694791
_P2 = 14029467366897019727
_P3 = 1609587929392839161
_P4 = 9650029242287828579
_P5 = 2870177450012600261
_M = (1 << 64) - 1


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M


def _round(acc: int, lane: int) -> int:
    acc = (acc + lane * _P2) & _M
    acc = _rotl(acc, 31)
    return (acc * _P1) & _M


def _merge(acc: int, val: int) -> int:
    acc ^= _round(0, val)
    return (acc * _P1 + _P4) & _M


def xxhash64(data: bytes, seed: int = 0) -> int:
    """XXH64 of `data` (pure Python; used per series, never per sample)."""
    n = len(data)
    i = 0
    if n >= 32:
        v1 = (seed + _P1 + _P2) & _M
        v2 = (seed + _P2) & _M
        v3 = seed & _M
        v4 = (seed - _P1) & _M
        while i + 32 <= n:
            v1 = _round(v1, int.from_bytes(data[i : i + 8], "little"))
            v2 = _round(v2, int.from_bytes(data[i + 8 : i + 16], "little"))
            v3 = _round(v3, int.from_bytes(data[i + 16 : i + 24], "little"))
            v4 = _round(v4, int.from_bytes(data[i + 24 : i + 32], "little"))
            i += 32
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M
        h = _merge(h, v1)
        h = _merge(h, v2)
        h = _merge(h, v3)
        h = _merge(h, v4)
    else:
        h = (seed + _P5) & _M
    h = (h + n) & _M
    while i + 8 <= n:
        k1 = _round(0, int.from_bytes(data[i : i + 8], "little"))
        h ^= k1
        h = (_rotl(h, 27) * _P1 + _P4) & _M
        i += 8
    if i + 4 <= n:
        h ^= (int.from_bytes(data[i : i + 4], "little") * _P1) & _M
        h = (_rotl(h, 23) * _P2 + _P3) & _M
        i += 4
    while i < n:
        h ^= (data[i] * _P5) & _M
        h = (_rotl(h, 11) * _P1) & _M
        i += 1
    h ^= h >> 33
    h = (h * _P2) & _M
    h ^= h >> 29
    h = (h * _P3) & _M
    h ^= h >> 32
    return h


def labels_hash(labels: Labels) -> int:
    """Prometheus `labels.Labels.Hash()`: xxhash64 over `name 0xff value 0xff ...`."""
    buf = bytearray()
    for n, v in labels:
        buf += n.encode()
        buf.append(0xFF)
        buf += v.encode()
        buf.append(0xFF)
    return xxhash64(bytes(buf))
