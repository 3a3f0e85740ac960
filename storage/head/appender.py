"""Ingest into the head: resolve series, check samples, apply what passes.

`apply_batch` is the one write path, for live requests and WAL replay alike.
Per series it costs one dict lookup by the batch's series key (C-level `map`);
series not seen before are checked and created in bulk (`storage.head.resolve`).
Per sample everything is numpy over the whole batch.

Checks, against the head's state before the batch (so the order of samples
inside one request does not matter):

- more than `max_future_ms` ahead of `now_ms`: `sample_too_far_in_future`;
- older than the retention boundary: `sample_too_old`;
- older than the series' newest sample by more than the out-of-order window:
  `out_of_order_sample` (with a late window, samples are late arrivals instead,
  accepted down to the too-old boundary, which then counts back the late window);
- at the timestamp of a stored sample (or an earlier one of the same batch):
  bit-identical value -> accepted, nothing stored (a sender's retry);
  a different value -> `duplicate_sample_for_timestamp`, the first one wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from remote_write.batch import Rejection, WriteBatch
from storage.errors import (
    DuplicateSample,
    OutOfOrderSample,
    SampleRejected,
    SampleTooFarInFuture,
    TooOldSample,
)
from storage.head import messages
from storage.head.head import NO_SAMPLE, Head
from storage.head.histograms import apply_histograms
from storage.head.resolve import resolve_series
from storage.interfaces import AppendResult
from storage.labels import format_labels

OK, INVALID, FUTURE, TOO_OLD, OUT_OF_ORDER, DUPLICATE, NOOP = range(7)
REASONS: dict[int, type[SampleRejected]] = {
    FUTURE: SampleTooFarInFuture,
    TOO_OLD: TooOldSample,
    OUT_OF_ORDER: OutOfOrderSample,
    DUPLICATE: DuplicateSample,
}
"""Sample status code -> the storage error class naming that refusal."""


@dataclass(frozen=True, slots=True)
class Applied:
    """What `apply_batch` did: the result for the sender, and what it stored."""

    result: AppendResult
    stored: int
    max_ts: int
    """Newest timestamp stored (NO_SAMPLE if none): the WAL tracks it per segment."""
    limited: tuple[int, ...] = ()
    """Indexes of the series refused for the series limit (the WAL record lists them)."""
    exemplars: int = 0
    """Exemplars stored."""


def apply_batch(
    head: Head,
    batch: WriteBatch,
    identity: str | None,
    *,
    now_ms: int,
    enforce_limits: bool = True,
    skip_series: Sequence[int] = (),
) -> Applied:
    """Check `batch` and store its good samples in `head`; see the module docstring.

    `identity` is the writer's cluster (its `cluster` label overrides the
    sent one) or None. `enforce_limits=False` (WAL replay) does not evaluate
    the series limit; `skip_series` then names the series the live append
    refused for it, which are left out silently.
    """
    result = AppendResult()
    sids, limited = resolve_series(
        head, batch, identity, enforce_limits, result.rejected, skip_series
    )
    for meta in batch.metadata:
        head.metadata[meta.metric_family_name] = meta
    if batch.exemplars is not None and len(batch.exemplars):
        result.exemplars, refused = head.exemplars.add(sids, batch.exemplars)
        for reason, count in refused.items():
            result.dropped[reason] = result.dropped.get(reason, 0) + count
    stored, max_ts = 0, NO_SAMPLE
    if len(batch.timestamps):
        checker = _SampleCheck(head, batch, sids, now_ms)
        stored, max_ts = checker.run()
        result.accepted = checker.accepted
        result.rejected.extend(checker.rejections())
    if batch.histograms is not None and len(batch.histograms):
        accepted, h_stored, h_max, rejected = apply_histograms(head, batch.histograms, sids, now_ms)
        result.accepted += accepted
        result.histograms_accepted = accepted
        result.rejected.extend(rejected)
        stored += h_stored
        max_ts = max(max_ts, h_max)
    return Applied(result, stored, max_ts, limited, result.exemplars)


class _SampleCheck:
    """The per-sample checks of one batch, vectorized; `run` applies what passes."""

    def __init__(self, head: Head, batch: WriteBatch, sids: NDArray[np.int64], now_ms: int) -> None:
        self.head = head
        self.now_ms = now_ms
        self.idx = np.asarray(batch.series_idx)
        self.ts = np.ascontiguousarray(batch.timestamps, dtype=np.int64)
        self.values = np.ascontiguousarray(batch.values, dtype=np.float64)
        self.sids = sids
        self.sid = sids[self.idx]
        n = len(self.ts)
        self.why = np.zeros(n, dtype=np.int8)
        self.other = np.zeros(n, dtype=np.int64)
        """Per rejected sample: the series' newest timestamp (out of order) or the
        stored value's bits (duplicate), for the message."""
        self.accepted = 0
        self.min_valid = NO_SAMPLE

    def run(self) -> tuple[int, int]:
        head, opts = self.head, self.head.options
        ts, why = self.ts, self.why
        why[self.sid < 0] = INVALID
        if int(ts.max()) > self.now_ms + opts.max_future_ms:
            why[(ts > self.now_ms + opts.max_future_ms) & (why == OK)] = FUTURE
        min_valid = self.min_valid = head.min_valid_time()
        if int(ts.min()) < min_valid:
            why[(ts < min_valid) & (why == OK)] = TOO_OLD
        rows = np.flatnonzero(why == OK)
        if not len(rows):
            return 0, NO_SAMPLE
        if self._simple():
            later = None
        else:
            rows, later = self._sort_rows(rows)
        s, t = self.sid[rows], ts[rows]
        b = self.values[rows].view(np.uint64)
        newest = head.max_ts[s]
        status = np.zeros(len(rows), dtype=np.int8)
        newer = t > newest
        ooo = False
        if not newer.all():
            ooo = self._check_old(rows, s, t, b, newest, newer, status)
        if later is not None:
            self._resolve_repeats(rows, later, status)
        why[rows] = status
        keep = status == OK
        self.accepted = int(keep.sum()) + int((status == NOOP).sum())
        if keep.all():
            s_k, t_k, v_k = s, t, self.values[rows]
        else:
            s_k, t_k, v_k = s[keep], t[keep], self.values[rows[keep]]
            newer &= keep
        if not len(t_k):
            return 0, NO_SAMPLE
        head.write(s_k, t_k, v_k, ooo=ooo)
        # Rows of a series are in time order: the last write per id is its newest.
        if newer.all():
            head.max_ts[s] = t
            head.max_bits[s] = b
        elif newer.any():
            head.max_ts[s[newer]] = t[newer]
            head.max_bits[s[newer]] = b[newer]
        return len(t_k), int(t_k.max())

    def _simple(self) -> bool:
        """Grouped by series, strictly increasing in time, no series twice: no sorting."""
        idx, ts = self.idx, self.ts
        if len(idx) > 1:
            step = np.diff(idx)
            if (step < 0).any():
                return False
            same = step == 0
            if same.any() and (np.diff(ts)[same] <= 0).any():
                return False
        resolved = self.sids[self.sids >= 0]
        if len(resolved) > 1:
            scratch = self.head.scratch  # no series twice: each id keeps its own position
            order = np.arange(len(resolved))
            scratch[resolved] = order
            if (scratch[resolved] != order).any():
                return False
        return True

    def _sort_rows(
        self, rows: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.int64] | None]:
        """Rows ordered by (series, time), stable; plus, for repeats of a (series,
        timestamp) pair, the position of the run's first row (else None)."""
        order = np.lexsort((self.ts[rows], self.sid[rows]))
        rows = rows[order]
        s, t = self.sid[rows], self.ts[rows]
        repeat_ = (s[1:] == s[:-1]) & (t[1:] == t[:-1])
        if not repeat_.any():
            return rows, None
        firsts = np.arange(len(rows))
        starts = np.concatenate(([True], ~repeat_))
        firsts = np.maximum.accumulate(np.where(starts, firsts, 0))
        return rows, firsts

    def _check_old(
        self,
        rows: NDArray[np.int64],
        s: NDArray[np.int64],
        t: NDArray[np.int64],
        b: NDArray[np.uint64],
        newest: NDArray[np.int64],
        newer: NDArray[np.bool_],
        status: NDArray[np.int8],
    ) -> bool:
        """Statuses of samples not newer than their series; True if any is stored."""
        head = self.head
        equal = t == newest
        if equal.any():
            stored_bits = head.max_bits[s]
            same = equal & (b == stored_bits)
            status[same] = NOOP
            differ = equal & ~same
            status[differ] = DUPLICATE
            self.other[rows[differ]] = stored_bits[differ].view(np.int64)
        older = ~newer & ~equal
        if not older.any():
            return False
        opts = head.options
        window = max(opts.out_of_order_window_ms, opts.late_window_ms)
        too_old = older & (t < newest - window)
        status[too_old] = OUT_OF_ORDER
        self.other[rows[too_old]] = newest[too_old]
        look = np.flatnonzero(older & ~too_old)
        if not len(look):
            return False
        found, bits = head.find(s[look], t[look])
        same = found & (bits == b[look])
        status[look[same]] = NOOP
        differ = found & ~same
        status[look[differ]] = DUPLICATE
        self.other[rows[look[differ]]] = bits[differ].view(np.int64)
        return bool((~found).any())

    def _resolve_repeats(
        self, rows: NDArray[np.int64], firsts: NDArray[np.int64], status: NDArray[np.int8]
    ) -> None:
        """Later samples at a (series, ts) already seen in this batch: the first one wins."""
        later = np.flatnonzero(firsts != np.arange(len(rows)))
        first = firsts[later]
        first_status = status[first]
        bits = self.values[rows].view(np.uint64)
        # What is stored at that timestamp once the first sample was handled.
        ref = np.where(
            first_status == DUPLICATE, self.other[rows[first]].view(np.uint64), bits[first]
        )
        same = bits[later] == ref
        result = np.where(same, NOOP, DUPLICATE).astype(np.int8)
        result[first_status == OUT_OF_ORDER] = OUT_OF_ORDER
        status[later] = result
        self.other[rows[later]] = np.where(
            first_status == OUT_OF_ORDER, self.other[rows[first]], ref.view(np.int64)
        )

    def rejections(self) -> list[Rejection]:
        """One Rejection per (series, reason), in series order within each reason."""
        out: list[Rejection] = []
        why = self.why
        present = np.bincount(why, minlength=NOOP + 1)
        opts = self.head.options
        labels_of = self.head.index.labels
        for code, refusal in REASONS.items():
            if not present[code]:
                continue
            rows = np.flatnonzero(why == code)
            series = self.idx[rows]
            uniq, first, counts = np.unique(series, return_index=True, return_counts=True)
            for i, f, c in zip(uniq.tolist(), first.tolist(), counts.tolist(), strict=True):
                row = int(rows[f])
                ts = int(self.ts[row])
                text = format_labels(labels_of(int(self.sids[i])) or ())
                if code == FUTURE:
                    msg = messages.too_far_in_future(text, ts, self.now_ms, opts.max_future_ms, c)
                elif code == TOO_OLD:
                    msg = messages.too_old(text, ts, self.min_valid, c, opts.late_window_ms)
                elif code == OUT_OF_ORDER:
                    msg = messages.out_of_order(
                        text, ts, int(self.other[row]), opts.out_of_order_window_ms, c
                    )
                else:
                    new_bits = int(self.values[row : row + 1].view(np.uint64)[0])
                    old_bits = int(self.other[row : row + 1].view(np.uint64)[0])
                    msg = messages.duplicate(text, ts, new_bits, old_bits, c)
                out.append(refusal.rejection(text, msg, c))
        return out
