"""A runner for Prometheus's PromQL test scripts (the `.test` format, see FORMAT.md).

It reads a script into commands (`load`, `clear`, `eval` with its `expect`
lines and expected series), loads data into a real Queryable
(`storage.memory.MemoryStorage`, or any `Store`), runs each eval against our `Engine` the way
Prometheus's own runner (`promql/promqltest/test.go`) does, and returns one
`CaseResult` per eval: passed, failed (with the reason) or skipped (with the
reason). Native histograms (`{{...}}` points, `load_with_nhcb`) are loaded and
compared too (`tests.promql.histnotation`); only unimplemented experimental
functions are skipped.

Like Prometheus's runner, every instant eval is also run
- as a range query from `t-1m` to `t+1m` with a 1m step, checking the middle
  step gives the same answer (unless the query uses `start()`/`end()`/..., or
  the expected value is a string or a range vector), and
- with `@ t` added to every selector and subquery that has none, at the
  evaluation times `-10t, 0, t/5, t, 10t`, checking the result does not
  change (step invariance; skipped for time-dependent functions).
"""

from __future__ import annotations

import math
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import re2

from promql import ast
from promql.engine import Engine, Result
from promql.errors import QueryError
from promql.eval.builtins import SPECIAL
from promql.eval.functions.registry import FUNCTIONS
from promql.parser import parse_duration_ms, parse_expr
from promql.printer import format_expr
from promql.value import HistCells, Matrix, Scalar, String, Vector
from remote_write.histograms import HistogramBatch
from storage.interfaces import Queryable
from storage.labels import Labels
from storage.memory import MemoryStorage
from tests.promql.histnotation import TH, expand, nhcb, row_of, same, to_batch

STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
EPSILON = 1e-6
MIN_NORMAL = 2.2250738585072014e-308

# Functions whose result depends on the evaluation time even with constant
# arguments (Prometheus's AtModifierUnsafeFunctions).
AT_UNSAFE = frozenset(
    {
        "days_in_month",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "hour",
        "minute",
        "month",
        "year",
        "predict_linear",
        "time",
        "timestamp",
        # Query-context functions resolve to the query's own start/end/step.
        "start",
        "end",
        "range",
        "step",
    }
)

# Experimental functions we may not have yet: a case using one that is not
# implemented is skipped with that reason instead of failing.
EXPERIMENTAL_FUNCS = frozenset({"info", "histogram_quantiles"})

_EVAL_INSTANT = re.compile(
    r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$"
)
_EVAL_RANGE = re.compile(
    r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$"
)
_LOAD = re.compile(r"^load(?:_(with_nhcb))?\s+(.+?)$")
_EXPECT = re.compile(r"^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$")
_EXPECT_RANGE = re.compile(r"^expect range vector\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+)$")
_QUERY_CONTEXT_FUNCS = re.compile(r"(start|end|range|step)\(\)")


# --- series descriptions ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Point:
    """One position of a series description: a value, an omission or a histogram."""

    value: float = 0.0
    omitted: bool = False
    hist: TH | None = None

    @property
    def histogram(self) -> bool:
        return self.hist is not None


_LABEL_TOKEN = re.compile(
    r'\s*(?:(?P<q>"(?:[^"\\]|\\.)*")|(?P<id>[A-Za-z_:][A-Za-z0-9_:.]*)|(?P<p>[{}=,]))'
)


def _unquote(text: str) -> str:
    body = text[1:-1]
    return body.encode("latin-1", "backslashreplace").decode("unicode_escape")


def parse_labels(text: str) -> tuple[Labels, str]:
    """Parse `name{a="b", "c.d"="e"}` at the start of `text`; return labels and the rest."""
    pos = 0
    pairs: list[tuple[str, str]] = []
    m = re.match(r"\s*([A-Za-z_:][A-Za-z0-9_:]*)", text)
    if m and not text.lstrip().startswith("{"):
        pairs.append(("__name__", m.group(1)))
        pos = m.end()
    rest = text[pos:]
    if pos == 0:
        rest = rest.lstrip()
        pos = len(text) - len(rest)
    if rest.startswith("{") and not rest.startswith("{{"):
        pos += 1
        pending: list[str] = []
        while True:
            t = _LABEL_TOKEN.match(text, pos)
            if t is None:
                raise ValueError(f"bad series description: {text!r}")
            pos = t.end()
            if t.group("p") == "}":
                if len(pending) == 1:
                    pairs.append(("__name__", pending[0]))
                break
            if t.group("p") == ",":
                if len(pending) == 1:
                    pairs.append(("__name__", pending[0]))
                pending = []
                continue
            if t.group("p") == "=":
                continue
            tok = _unquote(t.group("q")) if t.group("q") else t.group("id")
            pending.append(tok)
            if len(pending) == 2:
                pairs.append((pending[0], pending[1]))
                pending = []
    return Labels.from_pairs(pairs), text[pos:]


def _number(text: str) -> float:
    low = text.lower()
    if low in ("inf", "+inf"):
        return math.inf
    if low == "-inf":
        return -math.inf
    if low in ("nan", "+nan", "-nan"):
        return math.nan
    if low == "stale":
        return STALE_NAN
    try:
        return float(int(text, 0))
    except ValueError:
        return float(text)


_ITEM = re.compile(
    r"^(?P<base>[+-]?(?:[0-9.]+(?:[eE][+-]?[0-9]+)?|0x[0-9a-fA-F]+|Inf|inf|NaN|nan|stale))"
    r"(?:(?P<inc>[+-](?:[0-9.]+(?:[eE][+-]?[0-9]+)?|Inf|inf))?x(?P<times>[0-9]+))?$"
)


def parse_points(text: str) -> list[Point]:
    """Expand a value sequence: `1 2+3x4 _ _x2 stale Inf {{...}}x3`."""
    out: list[Point] = []
    text = text.strip()
    # Native histograms: each {{...}} (with an optional +{{...}}xN) is one item.
    hist = re.compile(r"\{\{.*?\}\}(?:[+-]\{\{.*?\}\})?(?:x(\d+))?")
    pos = 0
    items: list[str] = []
    while pos < len(text):
        if text.startswith("{{", pos):
            m = hist.match(text, pos)
            if m is None:
                raise ValueError(f"bad histogram in {text!r}")
            items.append(m.group())
            pos = m.end()
            continue
        m2 = re.compile(r"\S+").match(text, pos)
        if m2 is None:
            pos += 1
            continue
        items.append(m2.group())
        pos = m2.end()
    for item in items:
        if item.startswith("{{"):
            hs = expand(item)
            if hs is None:
                raise ValueError(f"bad histogram {item!r} in {text!r}")
            out.extend(Point(hist=h) for h in hs)
            continue
        if item == "_":
            out.append(Point(omitted=True))
            continue
        if item.startswith("_x"):
            out.extend([Point(omitted=True)] * int(item[2:]))
            continue
        m = _ITEM.match(item)
        if m is None:
            raise ValueError(f"bad value {item!r} in {text!r}")
        base = _number(m.group("base"))
        times = m.group("times")
        if times is None:
            out.append(Point(base))
            continue
        inc = _number(m.group("inc")) if m.group("inc") else 0.0
        value = base
        out.append(Point(value))
        for _ in range(int(times)):
            value += inc
            out.append(Point(value))
    return out


def split_series_line(line: str) -> tuple[Labels, list[Point]]:
    labels, rest = parse_labels(line)
    return labels, parse_points(rest)


# --- commands -----------------------------------------------------------------


@dataclass(slots=True)
class Load:
    line: int
    interval_ms: int
    series: list[tuple[Labels, list[Point]]]
    with_nhcb: bool = False


@dataclass(slots=True)
class Clear:
    line: int


@dataclass(slots=True)
class Expect:
    kind: str
    message: str | None = None
    regex: str | None = None

    def matches(self, text: str) -> bool:
        if self.message is not None:
            return self.message == text
        if self.regex is not None:
            return re2.search(self.regex, text) is not None
        return True


@dataclass(slots=True)
class Eval:
    file: str
    line: int
    expr: str
    instant: bool
    start_ms: int
    end_ms: int = 0
    step_ms: int = 0
    expects: list[Expect] = field(default_factory=list)
    expected: list[tuple[Labels, list[Point]]] | None = None
    scalar: float | None = None
    string: str | None = None
    range_vector: tuple[int, int, int] | None = None
    has_series: bool = False

    @property
    def case_id(self) -> str:
        return f"{self.file}:{self.line}"

    def of(self, kind: str) -> list[Expect]:
        return [e for e in self.expects if e.kind == kind]

    @property
    def ordered(self) -> bool:
        return bool(self.of("ordered"))

    @property
    def fail(self) -> bool:
        return bool(self.of("fail"))


Command = Load | Clear | Eval


def parse_script(text: str, file: str) -> list[Command]:
    """The commands of one `.test` script."""
    lines = []
    for raw in text.split("\n"):
        s = raw.strip()
        lines.append("" if s.startswith("#") else s)
    cmds: list[Command] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1
            continue
        word = re.split(r"[\t ]+", line, maxsplit=1)[0].lower()
        if word == "clear":
            cmds.append(Clear(i + 1))
            i += 1
        elif word.startswith("load"):
            m = _LOAD.match(line)
            if m is None:
                raise ValueError(f"{file}:{i + 1}: bad load command")
            load = Load(i + 1, parse_duration_ms(m.group(2)), [], m.group(1) == "with_nhcb")
            i += 1
            while i < len(lines) and lines[i]:
                load.series.append(split_series_line(lines[i]))
                i += 1
            cmds.append(load)
        elif word.startswith("eval"):
            ev, i = _parse_eval(lines, i, file)
            cmds.append(ev)
        else:
            raise ValueError(f"{file}:{i + 1}: invalid command {line!r}")
    return cmds


def _parse_eval(lines: list[str], i: int, file: str) -> tuple[Eval, int]:
    line = lines[i]
    mi = _EVAL_INSTANT.match(line)
    mr = _EVAL_RANGE.match(line)
    if mi is not None:
        mod = mi.group(1)
        ev = Eval(file, i + 1, mi.group(3), True, parse_duration_ms(mi.group(2) or "0s"))
    elif mr is not None:
        mod = mr.group(1)
        ev = Eval(
            file,
            i + 1,
            mr.group(5),
            False,
            parse_duration_ms(mr.group(2)),
            parse_duration_ms(mr.group(3)),
            parse_duration_ms(mr.group(4)),
        )
    else:
        raise ValueError(f"{file}:{i + 1}: bad eval command")
    if mod:
        ev.expects.append(Expect(mod))
    i += 1
    while i < len(lines) and lines[i]:
        d = lines[i]
        i += 1
        if mod == "fail" and d.startswith("expected_fail_message"):
            ev.expects = [Expect("fail", message=d[len("expected_fail_message") :].strip())]
            break
        if mod == "fail" and d.startswith("expected_fail_regexp"):
            ev.expects = [Expect("fail", regex=d[len("expected_fail_regexp") :].strip())]
            break
        if d.startswith("expect range vector"):
            m = _EXPECT_RANGE.match(d)
            if m is None:
                raise ValueError(f"{file}:{i}: bad range vector expectation")
            ev.range_vector = tuple(parse_duration_ms(m.group(k)) for k in (1, 2, 3))  # type: ignore[assignment]
            continue
        if d.startswith("expect string"):
            s = d[len("expect string") :].strip()
            ev.string = _unquote(s) if s[:1] in "\"'" else s[1:-1]
            continue
        if d.split(" ")[0] == "expect":
            m = _EXPECT.match(d)
            if m is None:
                raise ValueError(f"{file}:{i}: bad expect line {d!r}")
            kind, how, text = m.group(1), m.group(2), m.group(3)
            if how == "msg":
                ev.expects.append(Expect(kind, message=text.strip()))
            elif how == "regex":
                ev.expects.append(Expect(kind, regex=text.strip()))
            else:
                ev.expects.append(Expect(kind))
            continue
        try:
            ev.scalar = _parse_go_number(d)
            break
        except ValueError:
            pass
        if ev.expected is None:
            ev.expected = []
        ev.expected.append(split_series_line(d))
    return ev, i


def _parse_go_number(text: str) -> float:
    if not re.fullmatch(r"[+-]?(0x[0-9a-fA-F]+|[0-9.]+([eE][+-]?[0-9]+)?|Inf|inf|NaN|nan)", text):
        raise ValueError(text)
    return _number(text)


# --- results ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseResult:
    case_id: str
    expr: str
    outcome: str  # passed, failed, skipped
    reason: str = ""


class CaseFailure(Exception):
    """The eval's result or annotations differ from the expectation."""


class CaseSkip(Exception):
    """The eval needs something this engine does not do (e.g. native histograms)."""


def almost_equal(a: float, b: float) -> bool:
    """Prometheus `almost.Equal` with the runner's relative epsilon of 1e-6."""
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    abs_sum = abs(a) + abs(b)
    diff = abs(a - b)
    if a == 0 or b == 0 or abs_sum < MIN_NORMAL:
        return diff < EPSILON * MIN_NORMAL
    return diff / min(abs_sum, 1.7976931348623157e308) < EPSILON


class Store(Protocol):
    """Where a script's `load`s go and its evals read from."""

    @property
    def queryable(self) -> Queryable: ...

    async def add(self, series: list[tuple[Labels, np.ndarray, np.ndarray]]) -> None:
        """Store one `load` block's float samples."""

    async def add_histograms(self, series: list[tuple[Labels, HistogramBatch]]) -> None:
        """Store one `load` block's native histogram samples."""

    async def clear(self) -> None:
        """Forget everything (the `clear` command)."""


class MemoryStore:
    """The reference store: `storage.memory.MemoryStorage`, series held whole."""

    def __init__(self) -> None:
        self._storage = MemoryStorage()

    @property
    def queryable(self) -> Queryable:
        return self._storage

    async def add(self, series: list[tuple[Labels, np.ndarray, np.ndarray]]) -> None:
        for labels, ts, vals in series:
            self._storage.add(labels, ts, vals)

    async def add_histograms(self, series: list[tuple[Labels, HistogramBatch]]) -> None:
        for labels, batch in series:
            self._storage.add_histograms(labels, batch)

    async def clear(self) -> None:
        self._storage = MemoryStorage()


def _nhcb_series(cmd: Load) -> dict[Labels, tuple[Labels, HistogramBatch]]:
    """The custom-bucket histograms `load_with_nhcb` adds beside the classic series."""
    width = max((len(pts) for _, pts in cmd.series), default=0)

    def values(points: list[Point]) -> list[float | None]:
        out: list[float | None] = [None] * width
        for k, p in enumerate(points):
            if not p.omitted and p.hist is None:
                out[k] = p.value
        return out

    groups: dict[Labels, dict[str, object]] = {}
    for labels, points in cmd.series:
        name = labels.metric_name
        for suffix in ("_bucket", "_count", "_sum"):
            if not name.endswith(suffix):
                continue
            base = labels.without("le").with_("__name__", name[: -len(suffix)])
            g = groups.setdefault(base, {"buckets": {}})
            if suffix == "_bucket":
                le = labels.get("le")
                if le is None:
                    continue
                g["buckets"][_number(le)] = values(points)  # type: ignore[index]
            else:
                g[suffix] = values(points)
            break
    out = {}
    for base, g in groups.items():
        buckets = g["buckets"]
        if not buckets:
            continue
        hs = nhcb(buckets, g.get("_count"), g.get("_sum"))  # type: ignore[arg-type]
        ts = [k * cmd.interval_ms for k, h in enumerate(hs) if h is not None]
        kept = [h for h in hs if h is not None]
        if kept:
            out[base] = (base, to_batch(kept, ts))
    return out


class Runner:
    """Runs the commands of one script in order against one engine and store."""

    def __init__(self, engine: Engine | None = None, store: Store | None = None) -> None:
        self.engine = engine or Engine(max_samples=50_000_000)
        self.store: Store = store or MemoryStore()

    @property
    def storage(self) -> Queryable:
        return self.store.queryable

    async def load(self, cmd: Load) -> None:
        # A series defined twice in one block: the later line replaces the earlier
        # (Prometheus's loader keeps one definition per series).
        floats: dict[Labels, tuple[Labels, np.ndarray, np.ndarray]] = {}
        hists: dict[Labels, tuple[Labels, HistogramBatch]] = {}
        for labels, points in cmd.series:
            ts = []
            vals = []
            h_ts = []
            h_vals: list[TH] = []
            for k, p in enumerate(points):
                if p.omitted:
                    continue
                if p.hist is not None:
                    h_ts.append(k * cmd.interval_ms)
                    h_vals.append(p.hist)
                    continue
                ts.append(k * cmd.interval_ms)
                vals.append(p.value)
            floats.pop(labels, None)
            hists.pop(labels, None)
            if ts:
                floats[labels] = (labels, np.array(ts, dtype=np.int64), np.array(vals))
            if h_ts:
                hists[labels] = (labels, to_batch(h_vals, h_ts))
        await self.store.add(list(floats.values()))
        if cmd.with_nhcb:
            hists.update(_nhcb_series(cmd))
        if hists:
            await self.store.add_histograms(list(hists.values()))

    async def clear(self) -> None:
        await self.store.clear()

    async def run(self, cmds: list[Command]) -> Iterator[CaseResult]:
        results: list[CaseResult] = []
        for cmd in cmds:
            if isinstance(cmd, Load):
                await self.load(cmd)
            elif isinstance(cmd, Clear):
                await self.clear()
            else:
                results.append(await self.run_eval(cmd))
        return iter(results)

    async def run_eval(self, ev: Eval) -> CaseResult:
        try:
            self._check_supported(ev)
            if ev.instant:
                await self._instant(ev)
            else:
                await self._range(ev)
        except CaseSkip as exc:
            return CaseResult(ev.case_id, ev.expr, "skipped", str(exc))
        except CaseFailure as exc:
            return CaseResult(ev.case_id, ev.expr, "failed", str(exc))
        except Exception as exc:  # an engine crash is a failed case, not a runner crash
            return CaseResult(ev.case_id, ev.expr, "failed", f"{type(exc).__name__}: {exc}")
        return CaseResult(ev.case_id, ev.expr, "passed")

    # --- support checks -------------------------------------------------------

    def _check_supported(self, ev: Eval) -> None:
        expr = parse_expr(ev.expr)
        for node in ast.walk(expr):
            if isinstance(node, ast.Call):
                known = node.func in FUNCTIONS or node.func in SPECIAL
                if not known and node.func in EXPERIMENTAL_FUNCS:
                    raise CaseSkip(f"experimental function {node.func}() not implemented")

    # --- instant --------------------------------------------------------------

    async def _instant(self, ev: Eval) -> None:
        queries = [(ev.expr, ev.start_ms)]
        queries += at_modifier_cases(ev.expr, ev.start_ms)
        for text, t in queries:
            try:
                res = await self.engine.instant_query(self.storage, text, t)
            except QueryError as exc:
                if ev.fail:
                    self._check_error(ev, exc)
                    return
                raise CaseFailure(f"error evaluating {text!r} at {t}: {exc}") from exc
            if ev.fail:
                raise CaseFailure(f"expected an error evaluating {text!r} but got none")
            self._check_annotations(ev, res)
            self._compare(ev, res.value, text)
            if ev.range_vector is not None or ev.string is not None:
                continue
            if _QUERY_CONTEXT_FUNCS.search(text):
                continue
            try:
                rres = await self.engine.range_query(
                    self.storage, text, t - 60_000, t + 60_000, 60_000
                )
            except QueryError as exc:
                raise CaseFailure(f"error evaluating {text!r} in range mode: {exc}") from exc
            if ev.ordered:
                continue
            mat = rres.value
            if not isinstance(mat, Matrix):
                raise CaseFailure(f"range mode of {text!r} returned {type(mat).__name__}")
            _assert_sorted(mat)
            labels: list[Labels] = []
            values: list[float] = []
            refs: list[int] = []
            for i, lbl in enumerate(mat.labels):
                lo, hi = int(mat.offsets[i]), int(mat.offsets[i + 1])
                hit = np.nonzero(mat.timestamps[lo:hi] == t)[0]
                if len(hit):
                    labels.append(lbl)
                    values.append(float(mat.values[lo + hit[0]]))
                    refs.append(int(mat.hist.ref[lo + hit[0]]) if mat.hist is not None else -1)
            value: Vector | Scalar
            if isinstance(res.value, Scalar):
                if not values:
                    raise CaseFailure(f"range mode of {text!r} has no point at {t}")
                value = Scalar(values[0], t)
            else:
                hist = None
                if mat.hist is not None:
                    hist = HistCells(np.array(refs, dtype=np.int64), mat.hist.table)
                value = Vector(labels, np.array(values), t, hist)
            try:
                self._compare(ev, value, text)
            except CaseFailure as exc:
                raise CaseFailure(f"range mode: {exc}") from exc

    async def _range(self, ev: Eval) -> None:
        try:
            res = await self.engine.range_query(
                self.storage, ev.expr, ev.start_ms, ev.end_ms, ev.step_ms
            )
        except QueryError as exc:
            if ev.fail:
                self._check_error(ev, exc)
                return
            raise CaseFailure(f"error evaluating range query: {exc}") from exc
        if ev.fail:
            raise CaseFailure("expected an error but got none")
        self._check_annotations(ev, res)
        self._compare(ev, res.value, ev.expr)

    # --- checks ---------------------------------------------------------------

    @staticmethod
    def _check_error(ev: Eval, exc: Exception) -> None:
        for exp in ev.of("fail"):
            if (exp.message is not None or exp.regex is not None) and not exp.matches(str(exc)):
                raise CaseFailure(
                    f"expected error matching {exp.message or exp.regex!r}, got {exc}"
                )

    @staticmethod
    def _check_annotations(ev: Eval, res: Result) -> None:
        warnings = res.warnings.warning_list()
        infos = res.warnings.info_list()
        for kind, actual in (("warn", warnings), ("info", infos)):
            expected = ev.of(kind)
            if not expected:
                continue
            if not actual:
                raise CaseFailure(f"expected {kind} annotations but none were found")
            for exp in expected:
                if not any(exp.matches(a) for a in actual):
                    raise CaseFailure(
                        f"expected {kind} matching {exp.message or exp.regex!r}, found {actual}"
                    )
            for a in actual:
                if not any(exp.matches(a) for exp in expected):
                    raise CaseFailure(f"unexpected {kind} annotation {a!r}")
        if ev.of("no_warn") and warnings:
            raise CaseFailure(f"unexpected warnings: {warnings}")
        if ev.of("no_info") and infos:
            raise CaseFailure(f"unexpected infos: {infos}")

    def _compare(self, ev: Eval, value: object, text: str) -> None:
        if ev.string is not None:
            if not isinstance(value, String) or value.value != ev.string:
                raise CaseFailure(f"expected string {ev.string!r}, got {value!r}")
            return
        if isinstance(value, Scalar):
            if ev.scalar is None:
                raise CaseFailure(f"expected a vector or matrix, got scalar {value.value}")
            if not almost_equal(ev.scalar, value.value):
                raise CaseFailure(f"expected scalar {ev.scalar}, got {value.value}")
            return
        if ev.scalar is not None:
            raise CaseFailure(f"expected scalar {ev.scalar}, got {type(value).__name__}")
        expected = {lbl: pts for lbl, pts in (ev.expected or [])}
        positions = {lbl: k for k, (lbl, _) in enumerate(ev.expected or [])}
        if isinstance(value, Vector):
            seen = set()
            for k, lbl in enumerate(value.labels):
                if lbl not in expected:
                    raise CaseFailure(f"unexpected metric {lbl} in result, value {value.values[k]}")
                if ev.ordered and positions[lbl] != k:
                    raise CaseFailure(
                        f"expected {lbl} at position {positions[lbl] + 1}, got {k + 1}"
                    )
                ref = int(value.hist.ref[k]) if value.hist is not None else -1
                got_h = (
                    row_of(value.hist.table, ref) if value.hist is not None and ref >= 0 else None
                )
                _check_point(lbl, expected[lbl][0], float(value.values[k]), got_h)
                seen.add(lbl)
            missing = [lbl for lbl in expected if lbl not in seen]
            if missing:
                raise CaseFailure(f"expected metric {missing[0]} not found")
            return
        if isinstance(value, Matrix):
            if ev.ordered:
                raise CaseFailure("expected ordered result, but query returned a matrix")
            _assert_sorted(value)
            if ev.range_vector is not None:
                start, end, step = ev.range_vector
            else:
                start, end, step = ev.start_ms, ev.end_ms, ev.step_ms
            seen = set()
            for i, lbl in enumerate(value.labels):
                if lbl not in expected:
                    raise CaseFailure(f"unexpected metric {lbl} in result")
                lo, hi = int(value.offsets[i]), int(value.offsets[i + 1])
                exp_pts = []
                for k, p in enumerate(expected[lbl]):
                    t = start + k * step
                    if t > end:
                        raise CaseFailure(
                            f"expected {len(expected[lbl])} points for {lbl}, range too short"
                        )
                    if not p.omitted:
                        exp_pts.append((t, p))
                got = list(
                    zip(value.timestamps[lo:hi].tolist(), value.values[lo:hi].tolist(), strict=True)
                )
                if len(got) != len(exp_pts):
                    raise CaseFailure(f"expected {len(exp_pts)} points for {lbl}, got {got}")
                for j, ((et, ep), (gt, gv)) in enumerate(zip(exp_pts, got, strict=True)):
                    ref = int(value.hist.ref[lo + j]) if value.hist is not None else -1
                    got_h = (
                        row_of(value.hist.table, ref)
                        if value.hist is not None and ref >= 0
                        else None
                    )
                    if et != gt:
                        raise CaseFailure(f"expected {exp_pts} for {lbl}, got {got}")
                    try:
                        _check_point(lbl, ep, gv, got_h)
                    except CaseFailure as exc:
                        raise CaseFailure(f"at {gt}: {exc}") from None
                seen.add(lbl)
            missing = [lbl for lbl in expected if lbl not in seen]
            if missing:
                raise CaseFailure(f"expected metric {missing[0]} not found")
            return
        raise CaseFailure(f"unexpected result type {type(value).__name__}")


def _check_point(lbl: Labels, exp: Point, got_value: float, got_h: TH | None) -> None:
    """One expected point against a result's float or histogram."""
    if exp.hist is not None:
        if got_h is None:
            raise CaseFailure(f"expected a histogram for {lbl}, got float {got_value}")
        diff = same(exp.hist, got_h, almost_equal)
        if diff is not None:
            raise CaseFailure(f"histogram for {lbl}: {diff}")
        return
    if got_h is not None:
        raise CaseFailure(f"expected float {exp.value} for {lbl}, got a histogram {got_h}")
    if not almost_equal(exp.value, got_value):
        raise CaseFailure(f"expected {exp.value} for {lbl}, got {got_value}")


def _assert_sorted(mat: Matrix) -> None:
    for a, b in zip(mat.labels, mat.labels[1:], strict=False):
        if b < a:
            raise CaseFailure(f"matrix not sorted by labels: {b} after {a}")


def at_modifier_cases(text: str, ts: int) -> list[tuple[str, int]]:
    """The step-invariance variants of an instant query (Prometheus's runner)."""
    expr = parse_expr(text)
    if any(isinstance(n, ast.Call) and n.func in AT_UNSAFE for n in ast.walk(expr)):
        return []
    at = ast.At("ts", ts)

    def add_at(node: ast.Expr) -> ast.Expr:
        if isinstance(node, ast.SubqueryExpr):
            # Selectors inside a subquery keep their own times.
            return node if node.at is not None else replace(node, at=at)
        if isinstance(node, ast.VectorSelector):
            return node if node.at is not None else replace(node, at=at)
        if isinstance(node, ast.MatrixSelector):
            return replace(node, selector=add_at(node.selector))  # type: ignore[arg-type]
        kids = node.children()
        if not kids:
            return node
        return ast._with_children(node, tuple(add_at(k) for k in kids))

    new_text = format_expr(add_at(expr))
    fifth = ts // 5 if ts >= 0 else -(-ts // 5)  # Go's truncating division
    times = [-1000, 0, 1000] if ts == 0 else [-10 * ts, 0, fifth, ts, 10 * ts]
    return [(new_text, t) for t in times]


def find_testdata() -> Path:
    """`../shared/promql-testdata` seen from the project root (or any ancestor of it).

    `PROMQL_TESTDATA` overrides. The project root may be a git worktree nested
    deeper than the main checkout, so every ancestor's `shared/` is tried.
    """
    env = os.environ.get("PROMQL_TESTDATA")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[2]
    for parent in root.parents:
        candidate = parent / "shared" / "promql-testdata"
        if candidate.is_dir():
            return candidate
    return root.parent / "shared" / "promql-testdata"


def load_file(path: Path) -> list[Command]:
    return parse_script(path.read_text(), path.name)


def main(argv: list[str] | None = None) -> int:
    """Run every script, print passed/failed/skipped per file; optionally rewrite the xfail list.

    `python -m tests.promql.promqltest [--update-known-failures] [DIR]`
    """
    import argparse
    import asyncio
    from collections import Counter

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("dir", nargs="?", default=None)
    ap.add_argument("--update-known-failures", action="store_true")
    args = ap.parse_args(argv)
    here = Path(__file__).resolve().parent
    root = Path(args.dir) if args.dir else find_testdata()
    total: Counter[str] = Counter()
    failed: list[CaseResult] = []
    for path in sorted(root.glob("*.test")):
        results = list(asyncio.run(Runner().run(load_file(path))))
        c = Counter(r.outcome for r in results)
        total.update(c)
        failed += [r for r in results if r.outcome == "failed"]
        print(
            f"{path.name:28s} passed {c['passed']:4d} failed {c['failed']:4d} "
            f"skipped {c['skipped']:4d}"
        )
    print(
        f"{'total':28s} passed {total['passed']:4d} failed {total['failed']:4d} "
        f"skipped {total['skipped']:4d}"
    )
    for r in failed:
        print(f"FAIL {r.case_id} {r.expr}\n     {r.reason[:300]}")
    if args.update_known_failures:
        lines = [
            "# file:line reason"
            "  (generated by: python -m tests.promql.promqltest --update-known-failures)"
        ]
        for r in failed:
            reason = " ".join(r.reason.split())[:160]
            lines.append(f"{r.case_id} {reason}")
        (here / "conformance_known_failures.txt").write_text("\n".join(lines) + "\n")
        (here / "conformance_floor.txt").write_text(f"{total['passed']}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
