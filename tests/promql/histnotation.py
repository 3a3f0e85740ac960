"""Native histograms in the test scripts' notation: `{{schema:1 sum:3 count:22 buckets:[5 10 7]}}`.

Parsing, the `{{a}}+{{b}}xN` expansion, conversion to the columnar
`HistogramBatch` the engine stores, classic-to-custom-bucket conversion
(`load_with_nhcb`) and the comparison of a result's histogram with an
expected one (buckets with zero count do not matter, the reset hint only
when the expectation states it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from remote_write.histograms import HistogramBatch

HINTS = {"unknown": 0, "reset": 1, "not_reset": 2, "gauge": 3}
HINT_NAMES = {v: k for k, v in HINTS.items()}


@dataclass(frozen=True)
class TH:
    """A histogram as a test writes it; buckets by absolute index."""

    schema: int = 0
    count: float = 0.0
    sum: float = 0.0
    zero_threshold: float = 0.0
    zero_count: float = 0.0
    positive: dict[int, float] = field(default_factory=dict)
    negative: dict[int, float] = field(default_factory=dict)
    custom_values: tuple[float, ...] = ()
    hint: str | None = None

    def plus(self, other: TH, k: float = 1.0) -> TH:
        def add(a: dict[int, float], b: dict[int, float]) -> dict[int, float]:
            out = dict(a)
            for i, v in b.items():
                out[i] = out.get(i, 0.0) + k * v
            return out

        return replace(
            self,
            count=self.count + k * other.count,
            sum=self.sum + k * other.sum,
            zero_count=self.zero_count + k * other.zero_count,
            positive=add(self.positive, other.positive),
            negative=add(self.negative, other.negative),
        )


def _num(text: str) -> float:
    low = text.lower()
    if low in ("inf", "+inf"):
        return math.inf
    if low == "-inf":
        return -math.inf
    if low.endswith("nan"):
        return math.nan
    return float(text)


_FIELD = re.compile(r"(\w+):(\[[^\]]*\]|\S+)")


def parse_hist(body: str) -> TH:
    """The inside of `{{...}}`."""
    vals: dict[str, str] = {m.group(1): m.group(2) for m in _FIELD.finditer(body)}

    def lst(name: str) -> list[float]:
        raw = vals.get(name)
        return [_num(x) for x in raw.strip("[]").split()] if raw else []

    offset = int(vals.get("offset", 0))
    n_offset = int(vals.get("n_offset", 0))
    return TH(
        schema=int(vals.get("schema", 0)),
        count=_num(vals.get("count", "0")),
        sum=_num(vals.get("sum", "0")),
        zero_threshold=_num(vals.get("z_bucket_w", "0")),
        zero_count=_num(vals.get("z_bucket", "0")),
        positive={offset + i: v for i, v in enumerate(lst("buckets"))},
        negative={n_offset + i: v for i, v in enumerate(lst("n_buckets"))},
        custom_values=tuple(lst("custom_values")),
        hint=vals.get("counter_reset_hint"),
    )


_ITEM = re.compile(r"\{\{(.*?)\}\}(?:([+-])\{\{(.*?)\}\})?(?:x(\d+))?")


def expand(text: str) -> list[TH] | None:
    """`{{a}}`, `{{a}}xN`, `{{a}}+{{b}}xN` as histograms; None if not one."""
    m = _ITEM.fullmatch(text)
    if m is None:
        return None
    first = parse_hist(m.group(1))
    times = int(m.group(4)) if m.group(4) else 0
    if m.group(2) is None:
        return [first] * (times + 1)
    inc = parse_hist(m.group(3))
    k = 1.0 if m.group(2) == "+" else -1.0
    out = [first]
    cur = first
    for _ in range(times):
        cur = cur.plus(inc, k)
        out.append(cur)
    return out


def to_batch(hists: Sequence[TH], ts: Sequence[int]) -> HistogramBatch:
    """Histograms of one series as columns (float counts, buckets in index order)."""
    n = len(hists)

    def ragged(parts: list[list[float]], dtype: type) -> tuple[np.ndarray, np.ndarray]:
        off = np.zeros(n + 1, dtype=np.int64)
        np.cumsum([len(p) for p in parts], out=off[1:])
        flat = [x for p in parts for x in p]
        return off, np.array(flat, dtype=dtype)

    pos = [sorted(h.positive.items()) for h in hists]
    neg = [sorted(h.negative.items()) for h in hists]
    pos_off, pos_idx = ragged([[i for i, _ in p] for p in pos], np.int32)
    _, pos_cnt = ragged([[c for _, c in p] for p in pos], np.float64)
    neg_off, neg_idx = ragged([[i for i, _ in p] for p in neg], np.int32)
    _, neg_cnt = ragged([[c for _, c in p] for p in neg], np.float64)
    cv_off, cv = ragged([list(h.custom_values) for h in hists], np.float64)
    return HistogramBatch(
        series_idx=np.zeros(n, dtype=np.int32),
        timestamps=np.asarray(ts, dtype=np.int64),
        schema=np.array([h.schema for h in hists], dtype=np.int32),
        count=np.array([h.count for h in hists], dtype=np.float64),
        sum=np.array([h.sum for h in hists], dtype=np.float64),
        zero_threshold=np.array([h.zero_threshold for h in hists], dtype=np.float64),
        zero_count=np.array([h.zero_count for h in hists], dtype=np.float64),
        reset_hint=np.array([HINTS.get(h.hint or "unknown", 0) for h in hists], dtype=np.uint8),
        float_counts=np.ones(n, dtype=np.bool_),
        pos_offsets=pos_off,
        pos_index=pos_idx,
        pos_counts=pos_cnt,
        neg_offsets=neg_off,
        neg_index=neg_idx,
        neg_counts=neg_cnt,
        cv_offsets=cv_off,
        custom_values=cv,
    )


def row_of(table: HistogramBatch, k: int) -> TH:
    """Row `k` of a batch as a TH (for comparisons and messages)."""
    p = slice(int(table.pos_offsets[k]), int(table.pos_offsets[k + 1]))
    q = slice(int(table.neg_offsets[k]), int(table.neg_offsets[k + 1]))
    c = slice(int(table.cv_offsets[k]), int(table.cv_offsets[k + 1]))
    return TH(
        schema=int(table.schema[k]),
        count=float(table.count[k]),
        sum=float(table.sum[k]),
        zero_threshold=float(table.zero_threshold[k]),
        zero_count=float(table.zero_count[k]),
        positive=dict(zip(table.pos_index[p].tolist(), table.pos_counts[p].tolist(), strict=True)),
        negative=dict(zip(table.neg_index[q].tolist(), table.neg_counts[q].tolist(), strict=True)),
        custom_values=tuple(table.custom_values[c].tolist()),
        hint=HINT_NAMES.get(int(table.reset_hint[k]), "unknown"),
    )


def same(expected: TH, got: TH, close) -> str | None:
    """None when `got` matches `expected`, else what differs."""
    if expected.schema != got.schema:
        return f"schema {got.schema} != {expected.schema}"
    for name in ("count", "sum", "zero_count", "zero_threshold"):
        if not close(getattr(expected, name), getattr(got, name)):
            return f"{name} {getattr(got, name)} != {getattr(expected, name)}"
    for name in ("positive", "negative"):
        a = {i: v for i, v in getattr(expected, name).items() if v != 0}
        b = {i: v for i, v in getattr(got, name).items() if v != 0}
        if set(a) != set(b) or not all(close(a[i], b[i]) for i in a):
            return f"{name} buckets {b} != {a}"
    if tuple(expected.custom_values) != tuple(got.custom_values):
        return f"custom_values {got.custom_values} != {expected.custom_values}"
    if expected.hint is not None and expected.hint != got.hint:
        return f"counter_reset_hint {got.hint} != {expected.hint}"
    return None


def nhcb(
    buckets: dict[float, list[float | None]],
    count: list[float | None] | None,
    total_sum: list[float | None] | None,
) -> list[TH | None]:
    """Custom-bucket histograms from one classic histogram's cumulative bucket
    series (by upper bound, one value or None per point)."""
    bounds = sorted(buckets)
    finite = [b for b in bounds if not math.isinf(b)]
    points = len(next(iter(buckets.values())))
    out: list[TH | None] = []
    for k in range(points):
        cum = [buckets[b][k] for b in bounds]
        if any(c is None for c in cum) or not bounds:
            out.append(None)
            continue
        vals = [float(c) for c in cum]  # type: ignore[arg-type]
        per = [vals[0]] + [vals[i] - vals[i - 1] for i in range(1, len(vals))]
        c = vals[-1] if count is None or count[k] is None else float(count[k])  # type: ignore[arg-type]
        s = 0.0 if total_sum is None or total_sum[k] is None else float(total_sum[k])  # type: ignore[arg-type]
        out.append(
            TH(
                schema=-53,
                count=c,
                sum=s,
                positive={i: v for i, v in enumerate(per) if v != 0},
                custom_values=tuple(finite),
            )
        )
    return out
