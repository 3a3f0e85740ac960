"""Native histograms in query results, as Prometheus's JSON writes them.

A vector sample is `"histogram": [t, {"count": "..", "sum": "..", "buckets":
[[rule, "lower", "upper", "count"], ..]}]`; a matrix series carries
`"values"` for its float points and `"histograms"` for its histogram points.
Buckets are listed in value order (negative, zero, positive), empty ones
left out; `rule` is 0 for (lower, upper], 1 for [lower, upper), 3 for the
zero bucket [lower, upper]. Bounds come from `histmath.bucket_walk` for all
histograms at once; the text is then assembled per histogram (one object
each in the answer, as in Prometheus's own encoder).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from aggregator.api.promjson import format_values, json_seconds, label_members
from promql.eval.histmath import bucket_walk, rows_of
from promql.value import HistCells, Matrix, Vector
from remote_write.histograms import CUSTOM_BUCKETS_SCHEMA
from storage.labels import Labels

Members = Callable[[Sequence[Labels]], list[bytes]]


def has_histograms(value: object) -> bool:
    hist = getattr(value, "hist", None)
    return isinstance(hist, HistCells) and hist.any()


def _histogram_texts(cells: HistCells, refs: np.ndarray) -> list[bytes]:
    """The JSON object of each referenced histogram."""
    table = cells.table
    rows = np.asarray(refs, dtype=np.int64)
    w = bucket_walk(table, rows)
    owner = rows_of(w.offsets)
    keep = w.count != 0
    custom = (table.schema[rows] == CUSTOM_BUCKETS_SCHEMA)[owner]
    rule = np.where(w.zero, 3, np.where(~custom & (w.upper <= 0), 1, 0))
    lows = format_values(w.lower[keep])
    ups = format_values(w.upper[keep])
    cnts = format_values(w.count[keep])
    rules = rule[keep].tolist()
    own = owner[keep].tolist()
    counts = format_values(table.count[rows])
    sums = format_values(table.sum[rows])
    per: list[list[bytes]] = [[] for _ in range(len(rows))]
    for k, o in enumerate(own):
        per[o].append(b'[%d,"%s","%s","%s"]' % (rules[k], lows[k], ups[k], cnts[k]))
    out = []
    for i in range(len(rows)):
        body = b'{"count":"%s","sum":"%s"' % (counts[i], sums[i])
        if per[i]:
            body += b',"buckets":[' + b",".join(per[i]) + b"]"
        out.append(body + b"}")
    return out


def encode_vector(vector: Vector, members: Members = label_members) -> bytes:
    assert vector.hist is not None
    ref = vector.hist.ref
    ts = json_seconds(vector.timestamp_ms)
    hists = _histogram_texts(vector.hist, ref[ref >= 0])
    floats = format_values(vector.values)
    labels = members(vector.labels)
    items = []
    h = 0
    for i in range(len(vector.labels)):
        if ref[i] >= 0:
            items.append(b'{"metric":{%s},"histogram":[%s,%s]}' % (labels[i], ts, hists[h]))
            h += 1
        else:
            items.append(b'{"metric":{%s},"value":[%s,"%s"]}' % (labels[i], ts, floats[i]))
    return b'{"resultType":"vector","result":[' + b",".join(items) + b"]}"


def encode_matrix(matrix: Matrix, members: Members = label_members) -> bytes:
    assert matrix.hist is not None
    ref = matrix.hist.ref
    is_h = ref >= 0
    hists = _histogram_texts(matrix.hist, ref[is_h])
    hpos = np.cumsum(is_h) - 1
    floats = format_values(matrix.values)
    secs = [json_seconds(int(t)) for t in matrix.timestamps.tolist()]
    labels = members(matrix.labels)
    items = []
    off = matrix.offsets.tolist()
    for i in range(len(matrix.labels)):
        fl, hs = [], []
        for k in range(off[i], off[i + 1]):
            if is_h[k]:
                hs.append(b"[%s,%s]" % (secs[k], hists[hpos[k]]))
            else:
                fl.append(b'[%s,"%s"]' % (secs[k], floats[k]))
        if not fl and not hs:
            continue
        body = b'{"metric":{%s}' % labels[i]
        if fl:
            body += b',"values":[' + b",".join(fl) + b"]"
        if hs:
            body += b',"histograms":[' + b",".join(hs) + b"]"
        items.append(body + b"}")
    return b'{"resultType":"matrix","result":[' + b",".join(items) + b"]}"
