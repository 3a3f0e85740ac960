"""Thanos's penalty dedup, one sample at a time: the reference for `storage.dedup`."""

from __future__ import annotations

import bisect

INITIAL_PENALTY = 5000
MIN = -(1 << 63)


def reference_penalty_merge(a: list[tuple[int, float]], b: list[tuple[int, float]]):
    ta = [t for t, _ in a]
    tb = [t for t, _ in b]
    ia = 0 if a else None
    ib = 0 if b else None
    last_t = MIN
    pen_a = pen_b = 0
    out = []

    def seek(ts, i, target):
        if i is None:
            return None
        j = max(i, bisect.bisect_left(ts, target))
        return j if j < len(ts) else None

    while True:
        ia = seek(ta, ia, last_t + 1 + pen_a)
        ib = seek(tb, ib, last_t + 1 + pen_b)
        if ia is None:
            if ib is None:
                return out
            last_t = tb[ib]
            pen_b = 0
            out.append(b[ib])
            continue
        if ib is None:
            last_t = ta[ia]
            pen_a = 0
            out.append(a[ia])
            continue
        if ta[ia] <= tb[ib]:
            pen_b = 2 * (ta[ia] - last_t) if last_t != MIN else INITIAL_PENALTY
            pen_a = 0
            last_t = ta[ia]
            out.append(a[ia])
        else:
            pen_a = 2 * (tb[ib] - last_t) if last_t != MIN else INITIAL_PENALTY
            pen_b = 0
            last_t = tb[ib]
            out.append(b[ib])
