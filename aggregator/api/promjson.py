"""Query results as Prometheus's JSON, byte for byte, without per-sample Python bytecode.

Prometheus writes sample values as strings with Go's
`strconv.FormatFloat(v, 'f', -1, 64)` for 1e-6 <= |v| < 1e21 and the `'e'`
format outside that (`"1e+21"`, `"1e-07"`), `"NaN"`, `"+Inf"`, `"-Inf"`, and
`"-0"` for negative zero. Vector and matrix timestamps are seconds with the
milliseconds written as three digits when not zero (`1700000000.500`);
scalar and string results carry the timestamp as a plain JSON number
(`1700000000.5`).

How it stays fast (a 1k-series x 241-point matrix is ~6 MB of JSON, about
11 ms here): no Python object per sample. orjson formats all values of a
result in one call (shortest round-trip digits, like Go); numpy finds each
value's span in that text (trimming `.0` from integral values), and the rare
values whose text has an exponent or `null` are formatted again on their
own. The text before each value (`"],[<t>,"`) is one piece per distinct
timestamp, a series' opening one piece per series. One Arrow `take` over a
binary array of [pieces..., value spans...] then lays out the whole answer
in C (`_interleave`). Python loops touch series, never samples; label sets
are encoded in one orjson call too, or come from a `LabelsJSONCache`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from itertools import repeat

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute
from numpy.typing import NDArray

from promql.value import Matrix, Scalar, String, Value, Vector
from storage.labels import Labels

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_SEP = b"\x00"  # never in a formatted number: safe to split on

# orjson spells 1e-6 <= |v| < 1e-5 as "2.5e-6"; Go writes "0.0000025".
_E6 = re.compile(rb"(-?)(\d)(?:\.(\d+))?e-6(?=[,\]])")
# orjson writes one-digit negative exponents ("1e-7"); Go pads to two ("1e-07").
_E_PAD = re.compile(rb"e-(\d)(?=[,\]])")
# orjson spells 1e16 <= |v| < 1e21 with an exponent; Go writes all digits.
_E_BIG = re.compile(rb"(-?)(\d)(?:\.(\d+))?e\+(1[6-9]|20)(?=[,\]])")

_FRACTIONS = np.array([b',"'] + [b'.%03d,"' % i for i in range(1, 1000)], dtype=object)
"""Timestamp tails by millisecond: the fraction Prometheus writes, then `,"`."""
_SIGNS = np.array([b"[", b"[-"], dtype=object)
_COMMA, _DOT, _ZERO, _E, _N = b",.0en"  # byte values
_EMPTY_I64 = np.zeros(0, dtype=np.int64)

_GO_ESCAPES = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


def format_values(values: NDArray[np.float64], suffix: bytes = b"") -> list[bytes]:
    """Each value as Prometheus writes it (unquoted), followed by `suffix`."""
    n = len(values)
    if n == 0:
        return []
    raw = orjson.dumps(np.ascontiguousarray(values, dtype=np.float64), option=_NUMPY)
    # Integers: orjson writes "63.0", Go "63" (and "-0" for negative zero).
    raw = raw.replace(b".0,", b",").replace(b".0]", b"]")
    if b"e" in raw:
        raw = _E6.sub(rb"\g<1>0.00000\g<2>\g<3>", raw)
        raw = _E_PAD.sub(rb"e-0\g<1>", raw)
        if b"e+" in raw:
            raw = _E_BIG.sub(_expand_big, raw)
    infinite = None
    if b"null" in raw:  # orjson writes NaN and both infinities as null
        raw = raw.replace(b"null", b"NaN")
        infinite = np.isinf(values)
    items = raw[1:-1].replace(b",", suffix + _SEP).split(_SEP)
    items[-1] += suffix
    if infinite is not None and infinite.any():
        fixed = np.array(items, dtype=object)
        inf_at = np.flatnonzero(infinite)
        fixed[inf_at] = np.where(values[inf_at] > 0, b"+Inf" + suffix, b"-Inf" + suffix)
        items = fixed.tolist()
    return items


def format_value(value: float) -> bytes:
    """One value as Prometheus writes it (unquoted)."""
    return format_values(np.array([value], dtype=np.float64))[0]


def timestamp_items(
    timestamps_ms: NDArray[np.int64], grid: tuple[int, int] | None = None
) -> list[bytes]:
    """`[<seconds>,"` per timestamp, as Prometheus's `marshalTimestamp` writes them.

    `grid` = (start_ms, step_ms) says the timestamps are steps of a range
    query, so they are indexed arithmetically instead of sorted (checked;
    ignored if it does not hold).
    """
    if len(timestamps_ms) == 0:
        return []
    items, inverse = _timestamp_table(timestamps_ms, grid)
    result: list[bytes] = np.array(items, dtype=object)[inverse].tolist()
    return result


def _timestamp_table(
    timestamps_ms: NDArray[np.int64], grid: tuple[int, int] | None
) -> tuple[list[bytes], NDArray[np.int64]]:
    """Each distinct timestamp's `[<seconds>,"` item, and each timestamp's item index."""
    ts = np.asarray(timestamps_ms, dtype=np.int64)
    distinct = inverse = None
    if grid is not None and grid[1] > 0:
        start, step = grid
        k = (ts - start) // step
        if (k >= 0).all() and np.array_equal(start + k * step, ts):
            distinct = start + np.arange(int(k.max()) + 1, dtype=np.int64) * step
            inverse = k
    if distinct is None or inverse is None:
        distinct, inverse = np.unique(ts, return_inverse=True)
    negative = distinct < 0
    magnitude = np.abs(distinct)
    seconds = orjson.dumps(magnitude // 1000, option=_NUMPY)[1:-1].split(b",")
    formatted = (
        _SIGNS[negative.astype(np.intp)]
        + np.array(seconds, dtype=object)
        + _FRACTIONS[magnitude % 1000]
    )
    return formatted.tolist(), inverse.astype(np.int64, copy=False)


def go_json(data: object) -> bytes:
    """JSON as Go's encoding/json writes it: `<`, `>`, `&`, U+2028, U+2029 escaped.

    Those characters only ever occur inside JSON strings, so replacing them
    in the whole output is safe.
    """
    return go_escape(orjson.dumps(data))


def go_escape(encoded: bytes) -> bytes:
    """Apply Go's extra string escapes to already encoded JSON."""
    # Plain substring tests run at memchr speed; a regex would step through every byte.
    if not (b"<" in encoded or b">" in encoded or b"&" in encoded or b"\xe2\x80" in encoded):
        return encoded
    for char, escaped in _GO_ESCAPES:
        encoded = encoded.replace(char, escaped)
    return encoded


def labels_json(labels: Labels) -> bytes:
    """A label set as a JSON object, escaped like Go's encoding/json (`<` -> `\\u003c`)."""
    return go_escape(orjson.dumps(dict(labels)))


def label_members(labels: Sequence[Labels]) -> list[bytes]:
    """Each label set as the members of a JSON object, without its braces: `"a":"1","b":"2"`.

    All sets go through orjson and Go's escapes in one call and are split at
    the object boundaries; should a label value itself hold the boundary text
    `},{`, every set is encoded on its own instead.
    """
    if not labels:
        return []
    encoded = go_escape(orjson.dumps(list(map(dict, labels))))
    members = encoded[2:-2].split(b"},{")
    if len(members) != len(labels):
        members = [labels_json(lbl)[1:-1] for lbl in labels]
    return members


class LabelsJSONCache:
    """Label sets' JSON members (see `label_members`), remembered across queries.

    Dashboards ask for the same series again and again; a lookup (one hash
    of the label set) costs a third of encoding it. Holds at most
    `max_entries` sets and starts over when full. Not thread-safe: use it
    from the event loop.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._store: dict[Labels, bytes] = {}

    def __len__(self) -> int:
        return len(self._store)

    def members(self, labels: Sequence[Labels]) -> list[bytes]:
        store = self._store
        found: list[bytes | None] = list(map(store.get, labels))
        if None not in found:
            return found  # type: ignore[return-value]
        missing = [i for i, m in enumerate(found) if m is None]
        fresh = label_members([labels[i] for i in missing])
        if len(store) + len(fresh) > self.max_entries:
            store.clear()
        for i, m in zip(missing, fresh, strict=True):
            found[i] = store[labels[i]] = m
        return found  # type: ignore[return-value]


Members = Callable[[Sequence[Labels]], list[bytes]]
"""Label sets -> their JSON members: `label_members` or a cache's `members`."""


def encode_matrix(
    matrix: Matrix, grid: tuple[int, int] | None = None, members: Members = label_members
) -> bytes | memoryview:
    """`{"resultType":"matrix","result":[{"metric":{..},"values":[[t,"v"],..]},..]}`.

    `grid` = (start_ms, step_ms) of a range query speeds up the timestamps.
    Each sample is two pieces of the answer: the text before its value (`"],[t,"`,
    one piece per distinct timestamp; the series' opening for a first sample)
    and the value's text inside the orjson output (see `_ValueText`).
    """
    counts = np.diff(matrix.offsets)
    kept = np.flatnonzero(counts > 0)
    if not len(kept):
        return b'{"resultType":"matrix","result":[]}'
    ts_items, step_of = _timestamp_table(matrix.timestamps, grid)
    text = _ValueText(matrix.values)
    firsts = matrix.offsets[kept]
    pieces = [b'"],' + item for item in ts_items]
    label_text = members([matrix.labels[i] for i in kept.tolist()])
    opening = [b'"]]},{"metric":{'] * len(label_text)
    opening[0] = b'{"resultType":"matrix","result":[{"metric":{'
    middle = b'},"values":['
    pieces += map(
        b"".join,
        zip(
            opening, label_text, repeat(middle), map(ts_items.__getitem__, step_of[firsts].tolist())
        ),
    )
    prefix = step_of.copy()
    prefix[firsts] = len(ts_items) + np.arange(len(kept))
    pieces.append(b'"]]}]}')
    return _interleave(pieces, prefix, text)


def encode_vector(vector: Vector, members: Members = label_members) -> bytes | memoryview:
    """`{"resultType":"vector","result":[{"metric":{..},"value":[t,"v"]},..]}`."""
    n = len(vector)
    if n == 0:
        return b'{"resultType":"vector","result":[]}'
    ts = timestamp_items(np.array([vector.timestamp_ms], dtype=np.int64))[0]
    label_text = members(vector.labels)
    opening = [b'"]},{"metric":{'] * n
    opening[0] = b'{"resultType":"vector","result":[{"metric":{'
    pieces = list(map(b"".join, zip(opening, label_text, repeat(b'},"value":' + ts))))
    pieces.append(b'"]}]}')
    return _interleave(pieces, np.arange(n, dtype=np.int64), _ValueText(vector.values))


class _ValueText:
    """Every value's text as Prometheus writes it, as spans of one orjson output.

    orjson formats all values in one call with the shortest round-trip
    digits, as Go does. Most values then only need their span trimmed: `63.0`
    is written `63` (and `-0.0` `-0`). The few whose text holds an exponent or
    `null` (|v| < 1e-5, |v| >= 1e16, NaN, infinities) are formatted again on
    their own by `format_values`, which rewrites them into Go's spelling.
    """

    __slots__ = ("ends", "odd", "odd_items", "raw", "trim")

    def __init__(self, values: NDArray[np.float64]) -> None:
        raw = orjson.dumps(np.ascontiguousarray(values, dtype=np.float64), option=_NUMPY)
        buf = np.frombuffer(raw, dtype=np.uint8)
        ends = np.empty(len(values), dtype=np.int64)
        ends[:-1] = np.flatnonzero(buf == _COMMA)
        ends[-1] = len(raw) - 1
        self.raw = raw
        self.ends = ends
        """Where each value's orjson text ends: at its comma, or at the closing bracket."""
        # Every orjson float has at least three characters ("0.0", "1e7", "null").
        integral = (buf[ends - 1] == _ZERO) & (buf[ends - 2] == _DOT)
        self.trim = integral.view(np.int8) * np.int8(2)
        """Characters to drop from each value's end (the `.0` of integral values)."""
        self.odd = _EMPTY_I64
        self.odd_items: list[bytes] = []
        if b"e" in raw or b"n" in raw:  # memchr speed; rare
            odd_bytes = np.flatnonzero((buf == _E) | (buf == _N))
            self.odd = np.unique(np.searchsorted(ends, odd_bytes))
            self.odd_items = format_values(values[self.odd])

    def bounds(self, out: NDArray[np.int64], shift: int) -> None:
        """Fill `out` (2n + 1 entries) with `shift` + [start_0, stop_0, start_1, ..., len(raw)].

        Value i's text is `raw[start_i:stop_i]`; the bytes from a stop to the
        next start (`.0,` or `,`) are skipped.
        """
        n = len(self.ends)
        stops = out[1 : 2 * n : 2]
        np.add(self.ends, shift, out=stops)
        stops -= self.trim
        np.add(self.ends[:-1], shift + 1, out=out[2 : 2 * n : 2])
        out[0] = shift + 1  # after "["
        out[2 * n] = shift + len(self.raw)


def _interleave(pieces: list[bytes], prefix: NDArray[np.int64], text: _ValueText) -> memoryview:
    """`pieces[prefix[0]] value_0 pieces[prefix[1]] value_1 ... pieces[-1]` in one buffer.

    All pieces and the value text go into one Arrow binary array (the value
    text without a copy of each value: its elements are the alternating kept
    and skipped spans of the orjson output), and one `take` lays the answer
    out in C: no Python object per sample, no index per byte.
    """
    n = len(prefix)
    odd_at = len(pieces)
    pieces += text.odd_items
    table = len(pieces)
    offsets = np.empty(table + 2 * n + 2, dtype=np.int64)
    offsets[0] = 0
    lens = np.fromiter(map(len, pieces), dtype=np.int64, count=table)
    np.cumsum(lens, out=offsets[1 : table + 1])
    text.bounds(offsets[table + 1 :], int(offsets[table]))
    index = np.empty(2 * n + 1, dtype=np.int64)
    index[0:-1:2] = prefix
    values = index[1::2]
    values[:] = np.arange(table + 1, table + 1 + 2 * n, 2, dtype=np.int64)
    if len(text.odd):
        values[text.odd] = np.arange(odd_at, odd_at + len(text.odd), dtype=np.int64)
    index[-1] = odd_at - 1
    pieces.append(text.raw)
    data = pa.py_buffer(b"".join(pieces))
    array = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), table + 2 * n + 1, [None, pa.py_buffer(offsets), data]
    )
    # pa.array() would import pandas on first use (half a second); from_buffers does not.
    out = array.take(pa.Array.from_buffers(pa.int64(), len(index), [None, pa.py_buffer(index)]))
    return memoryview(out.buffers()[2])


def encode_scalar(scalar: Scalar) -> bytes:
    """`{"resultType":"scalar","result":[t,"v"]}` (t as a JSON number of seconds)."""
    return (
        b'{"resultType":"scalar","result":['
        + json_seconds(scalar.timestamp_ms)
        + b',"'
        + format_value(scalar.value)
        + b'"]}'
    )


def encode_string(string: String) -> bytes:
    """`{"resultType":"string","result":[t,"text"]}`."""
    return (
        b'{"resultType":"string","result":['
        + json_seconds(string.timestamp_ms)
        + b","
        + go_json(string.value)
        + b"]}"
    )


def encode_value(
    value: Value, grid: tuple[int, int] | None = None, members: Members = label_members
) -> bytes | memoryview:
    """The `data` object of a query response for any result value.

    `members` encodes label sets (e.g. a `LabelsJSONCache`'s `members`).
    """
    if isinstance(value, Matrix | Vector) and value.hist is not None and value.hist.any():
        from aggregator.api import histjson  # native histograms: their own encoder

        if isinstance(value, Matrix):
            return histjson.encode_matrix(value, members)
        return histjson.encode_vector(value, members)
    if isinstance(value, Matrix):
        return encode_matrix(value, grid, members)
    if isinstance(value, Vector):
        return encode_vector(value, members)
    if isinstance(value, Scalar):
        return encode_scalar(value)
    return encode_string(value)


def json_seconds(ms: int) -> bytes:
    """ms / 1000 as Go's encoding/json writes a float64 (`1.5`, `100`, `1e+21`)."""
    return format_value(ms / 1000)


def go_format_float(value: float) -> str:
    """Reference implementation of Prometheus's value format, one value at a time.

    For tests and tools; the API uses the vectorized `format_values`.
    """
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    if 1e-6 <= abs(value) < 1e21:
        text = format(Decimal(repr(value)).normalize(), "f")
        return text
    return repr(value)  # Python's shortest 'e' form matches Go's ("1e-07", "1.5e+300")


def _expand_big(match: re.Match[bytes]) -> bytes:
    """`1.2345e+17` -> `123450000000000000` (only values >= 1e16, which are rare)."""
    sign, lead, frac, exp = match.group(1), match.group(2), match.group(3) or b"", match.group(4)
    digits = lead + frac
    return sign + digits.ljust(int(exp) + 1, b"0")


def encode_series_list(labels: Sequence[Labels]) -> bytes:
    """A JSON list of label objects (the `/api/v1/series` data)."""
    return b"[" + b",".join(map(labels_json, labels)) + b"]"
