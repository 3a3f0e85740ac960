"""Native histogram arithmetic over columns (Prometheus 3 semantics).

Every operation works on many histograms at once: rows of a
`HistogramBatch` in, rows out, with buckets as flat (row, index, count)
columns. Sums of histograms (aggregation, rate, binary `+`/`-`, scaling) are
one `combine`: each contributing row's buckets are mapped to the output row's
schema (the smallest among its inputs: `((i - 1) >> delta) + 1`), then equal
(output row, bucket index) pairs are summed with one sort and `np.add.reduceat`.
Quantiles and fractions walk each histogram's buckets in value order
(`bucket_walk`), again for all histograms together.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from remote_write.histograms import CUSTOM_BUCKETS_SCHEMA, HistogramBatch

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]


def rows_of(offsets: I64) -> I64:
    """Owner row of each flat element of a ragged column."""
    return np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))


def _offsets(counts: I64) -> I64:
    off = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=off[1:])
    return off


def _gather(offsets: I64, rows: I64) -> tuple[I64, I64]:
    """Flat element indices of `rows` of a ragged column, and each one's position in `rows`."""
    lo = offsets[rows]
    counts = offsets[rows + 1] - lo
    base = _offsets(counts)
    total = int(base[-1])
    owner = np.repeat(np.arange(len(rows), dtype=np.int64), counts)
    return np.repeat(lo - base[:-1], counts) + np.arange(total, dtype=np.int64), owner


def bound(idx: I64, schema: I64) -> F64:
    """Upper bound of positive exponential bucket `idx` at `schema` (vectorised)."""
    idx = np.asarray(idx, dtype=np.int64)
    schema = np.asarray(schema, dtype=np.int64)
    out = np.empty(np.broadcast(idx, schema).shape, dtype=np.float64)
    idx, schema = np.broadcast_arrays(idx, schema)
    neg = schema <= 0
    if neg.any():
        out[neg] = np.ldexp(1.0, (idx[neg] << -schema[neg]).astype(np.int64))
    pos = ~neg
    if pos.any():
        s = schema[pos]
        i = idx[pos]
        exp = i >> s
        frac = i & ((np.int64(1) << s) - 1)
        out[pos] = np.ldexp(np.exp2(frac / (np.int64(1) << s)), exp.astype(np.int64))
    return out


def reduce_index(idx: I64, delta: I64) -> I64:
    """Bucket index at a schema `delta` steps coarser (Prometheus's targetIdx)."""
    return ((idx - 1) >> delta) + 1


def is_custom(table: HistogramBatch, rows: I64) -> NDArray[np.bool_]:
    return table.schema[rows] == CUSTOM_BUCKETS_SCHEMA


def same_custom_values(table: HistogramBatch, a: I64, b: I64) -> NDArray[np.bool_]:
    """Whether rows a[k] and b[k] have identical custom bounds (vectorised)."""
    la = table.cv_offsets[a + 1] - table.cv_offsets[a]
    lb = table.cv_offsets[b + 1] - table.cv_offsets[b]
    ok = la == lb
    if not ok.any():
        return ok
    ia, owner = _gather(table.cv_offsets, a)
    ib, _ = _gather(table.cv_offsets, b)
    # Only compare where lengths agree (else the gathers misalign); fix per owner.
    if len(ia) == len(ib):
        diff = table.custom_values[ia] != table.custom_values[ib]
        bad = np.zeros(len(a), dtype=bool)
        bad[owner[diff]] = True
        return ok & ~bad
    out = ok.copy()
    for k in np.flatnonzero(ok).tolist():  # rare: mixed lengths, per pair
        x = table.custom_values[table.cv_offsets[a[k]] : table.cv_offsets[a[k] + 1]]
        y = table.custom_values[table.cv_offsets[b[k]] : table.cv_offsets[b[k] + 1]]
        out[k] = bool(np.array_equal(x, y))
    return out


class Combined:
    """Result of `combine`: the output rows, and which could not be computed."""

    __slots__ = ("custom_mismatch", "mixed_schemas", "table")

    def __init__(
        self, table: HistogramBatch, mixed: NDArray[np.bool_], mismatch: NDArray[np.bool_]
    ) -> None:
        self.table = table
        self.mixed_schemas = mixed
        """Output rows that mixed exponential and custom-bucket inputs (no result)."""
        self.custom_mismatch = mismatch
        """Output rows whose custom-bucket inputs had different bounds."""


def combine(
    table: HistogramBatch,
    rows: I64,
    out: I64,
    weight: F64,
    n_out: int,
    *,
    schema_cap: I64 | None = None,
) -> Combined:
    """Output row o = sum of weight[k] * table[rows[k]] over k with out[k] == o.

    Schemas: the output takes the smallest contributing schema; zero
    threshold the largest. Rows mixing exponential with custom buckets, or
    custom buckets with different bounds, are flagged (their value is
    meaningless). Output rows without contributions are empty histograms.
    """
    rows = np.asarray(rows, dtype=np.int64)
    out = np.asarray(out, dtype=np.int64)
    weight = np.asarray(weight, dtype=np.float64)
    schema_in = table.schema[rows].astype(np.int64)
    custom_in = schema_in == CUSTOM_BUCKETS_SCHEMA
    big = np.int64(1 << 30)
    target = np.full(n_out, big, dtype=np.int64)
    np.minimum.at(target, out, np.where(custom_in, big, schema_in))
    n_custom = np.bincount(out, weights=custom_in, minlength=n_out)
    n_all = np.bincount(out, minlength=n_out)
    mixed = (n_custom > 0) & (n_custom < n_all)
    all_custom = (n_custom > 0) & (n_custom == n_all)
    if schema_cap is not None:
        cap = np.asarray(schema_cap, dtype=np.int64)
        target = np.where(cap == CUSTOM_BUCKETS_SCHEMA, target, np.minimum(target, cap))
    target = np.where(all_custom, CUSTOM_BUCKETS_SCHEMA, np.where(target == big, 0, target))
    # Custom bounds: the first contributor's; flag outputs whose inputs differ.
    first = np.full(n_out, -1, dtype=np.int64)
    order = np.arange(len(rows))[::-1]
    first[out[order]] = rows[order]
    mismatch = np.zeros(n_out, dtype=bool)
    if all_custom.any():
        sel = np.flatnonzero(all_custom[out])
        same_cv = same_custom_values(table, rows[sel], first[out[sel]])
        mismatch[out[sel[~same_cv]]] = True
    zt = np.zeros(n_out)
    np.maximum.at(zt, out, table.zero_threshold[rows])
    count = np.bincount(out, weights=weight * table.count[rows], minlength=n_out).astype(np.float64)
    total = np.bincount(out, weights=weight * table.sum[rows], minlength=n_out).astype(np.float64)
    zero = np.bincount(out, weights=weight * table.zero_count[rows], minlength=n_out).astype(
        np.float64
    )
    sides = []
    for offsets, index, counts in (
        (table.pos_offsets, table.pos_index, table.pos_counts),
        (table.neg_offsets, table.neg_index, table.neg_counts),
    ):
        el, owner = _gather(offsets, rows)
        o = out[owner]
        delta = np.maximum(schema_in[owner] - target[o], 0)
        delta[custom_in[owner]] = 0
        idx = reduce_index(index[el].astype(np.int64), delta)
        c = counts[el] * weight[owner]
        # Buckets inside a larger zero bucket join it.
        exp_rows = target[o] != CUSTOM_BUCKETS_SCHEMA
        inside = exp_rows & (bound(idx, np.where(exp_rows, target[o], 0)) <= zt[o])
        if inside.any():
            zero += np.bincount(o[inside], weights=c[inside], minlength=n_out)
            o, idx, c = o[~inside], idx[~inside], c[~inside]
        sides.append(_sum_pairs(o, idx, c, n_out))
    (pos_off, pos_idx, pos_cnt), (neg_off, neg_idx, neg_cnt) = sides
    cv_rows = np.where(all_custom, first, -1)
    has_cv = cv_rows >= 0
    cv_len = np.zeros(n_out, dtype=np.int64)
    cv_len[has_cv] = table.cv_offsets[cv_rows[has_cv] + 1] - table.cv_offsets[cv_rows[has_cv]]
    cv_el, _ = _gather(table.cv_offsets, cv_rows[has_cv])
    result = HistogramBatch(
        series_idx=np.zeros(n_out, dtype=np.int32),
        timestamps=np.zeros(n_out, dtype=np.int64),
        schema=target.astype(np.int32),
        count=count,
        sum=total,
        zero_threshold=zt,
        zero_count=zero,
        reset_hint=np.zeros(n_out, dtype=np.uint8),
        float_counts=np.ones(n_out, dtype=np.bool_),
        pos_offsets=pos_off,
        pos_index=pos_idx,
        pos_counts=pos_cnt,
        neg_offsets=neg_off,
        neg_index=neg_idx,
        neg_counts=neg_cnt,
        cv_offsets=_offsets(cv_len),
        custom_values=table.custom_values[cv_el],
    )
    return Combined(result, mixed, mismatch)


def _sum_pairs(o: I64, idx: I64, c: F64, n_out: int) -> tuple[I64, NDArray[np.int32], F64]:
    """Sum counts of equal (row, index) pairs; CSR sorted by (row, index)."""
    if not len(o):
        return np.zeros(n_out + 1, dtype=np.int64), np.zeros(0, np.int32), np.zeros(0)
    order = np.lexsort((idx, o))
    o, idx, c = o[order], idx[order], c[order]
    start = np.ones(len(o), dtype=bool)
    start[1:] = (o[1:] != o[:-1]) | (idx[1:] != idx[:-1])
    first = np.flatnonzero(start)
    sums = np.add.reduceat(c, first)
    ro, ri = o[first], idx[first]
    return _offsets(np.bincount(ro, minlength=n_out)), ri.astype(np.int32), sums


def scale(table: HistogramBatch, rows: I64, factor: F64) -> HistogramBatch:
    """factor[k] * table[rows[k]], schema kept (one output row per input)."""
    rows = np.asarray(rows, dtype=np.int64)
    t = table.take(rows)
    f = np.asarray(factor, dtype=np.float64)
    pos_f = f[rows_of(t.pos_offsets)]
    neg_f = f[rows_of(t.neg_offsets)]
    return HistogramBatch(
        series_idx=t.series_idx,
        timestamps=t.timestamps,
        schema=t.schema,
        count=t.count * f,
        sum=t.sum * f,
        zero_threshold=t.zero_threshold,
        zero_count=t.zero_count * f,
        reset_hint=t.reset_hint,
        float_counts=np.ones(len(t), dtype=np.bool_),
        pos_offsets=t.pos_offsets,
        pos_index=t.pos_index,
        pos_counts=t.pos_counts * pos_f,
        neg_offsets=t.neg_offsets,
        neg_index=t.neg_index,
        neg_counts=t.neg_counts * neg_f,
        cv_offsets=t.cv_offsets,
        custom_values=t.custom_values,
    )


class Walk:
    """Every bucket of some histograms in value order (negative buckets from the
    lowest value up, the zero bucket, positive buckets): row k owns elements
    `offsets[k]:offsets[k+1]`."""

    __slots__ = ("count", "lower", "offsets", "upper", "zero")

    def __init__(self, offsets: I64, lower: F64, upper: F64, count: F64, zero: NDArray[np.bool_]):
        self.offsets = offsets
        self.lower = lower
        self.upper = upper
        self.count = count
        self.zero = zero


def bucket_walk(table: HistogramBatch, rows: I64) -> Walk:
    """The buckets of `table[rows]` in value order (see `Walk`)."""
    rows = np.asarray(rows, dtype=np.int64)
    n = len(rows)
    schema = table.schema[rows].astype(np.int64)
    custom = schema == CUSTOM_BUCKETS_SCHEMA
    pieces_owner, pieces_section, pieces_key = [], [], []
    lowers, uppers, counts, zeros = [], [], [], []
    # Negative buckets: value order is descending index.
    el, owner = _gather(table.neg_offsets, rows)
    idx = table.neg_index[el].astype(np.int64)
    s = np.where(custom[owner], 0, schema[owner])
    pieces_owner.append(owner)
    pieces_section.append(np.zeros(len(el), dtype=np.int64))
    pieces_key.append(-idx)
    lowers.append(-bound(idx, s))
    uppers.append(-bound(idx - 1, s))
    counts.append(table.neg_counts[el])
    zeros.append(np.zeros(len(el), dtype=bool))
    # Zero bucket (exponential schemas only).
    zr = np.flatnonzero(~custom)
    zt = table.zero_threshold[rows[zr]]
    pieces_owner.append(zr)
    pieces_section.append(np.ones(len(zr), dtype=np.int64))
    pieces_key.append(np.zeros(len(zr), dtype=np.int64))
    lowers.append(-zt)
    uppers.append(zt)
    counts.append(table.zero_count[rows[zr]])
    zeros.append(np.ones(len(zr), dtype=bool))
    # Positive buckets.
    el, owner = _gather(table.pos_offsets, rows)
    idx = table.pos_index[el].astype(np.int64)
    cust = custom[owner]
    lo = np.empty(len(el))
    up = np.empty(len(el))
    ex = ~cust
    s = schema[owner][ex]
    lo[ex] = bound(idx[ex] - 1, s)
    up[ex] = bound(idx[ex], s)
    if cust.any():
        co = owner[cust]
        ci = idx[cust]
        base = table.cv_offsets[rows[co]]
        ncv = table.cv_offsets[rows[co] + 1] - base
        cv = np.concatenate((table.custom_values, [np.nan]))  # never empty for the gathers
        last = len(cv) - 1
        lo[cust] = np.where(ci > 0, cv[np.clip(base + ci - 1, 0, last)], -np.inf)
        up[cust] = np.where(ci < ncv, cv[np.clip(base + ci, 0, last)], np.inf)
    pieces_owner.append(owner)
    pieces_section.append(np.full(len(el), 2, dtype=np.int64))
    pieces_key.append(idx)
    lowers.append(lo)
    uppers.append(up)
    counts.append(table.pos_counts[el])
    zeros.append(np.zeros(len(el), dtype=bool))
    owner = np.concatenate(pieces_owner)
    order = np.lexsort((np.concatenate(pieces_key), np.concatenate(pieces_section), owner))
    return Walk(
        _offsets(np.bincount(owner, minlength=n)),
        np.concatenate(lowers)[order],
        np.concatenate(uppers)[order],
        np.concatenate(counts)[order],
        np.concatenate(zeros)[order],
    )


def segment_cumsum(values: F64, offsets: I64) -> F64:
    total = np.cumsum(values)
    before = np.concatenate(([0.0], total))[offsets[:-1]]
    return total - np.repeat(before, np.diff(offsets))
