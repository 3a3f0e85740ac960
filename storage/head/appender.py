"""Ingest into the head: resolve series, check samples, apply what passes.

`apply_batch` is the one write path, for live requests and WAL replay alike.
Per series it costs one dict lookup by the batch's series key (C-level `map`);
labels are decoded, validated and looked up in the index only for keys not
seen before. Per sample everything is numpy over the whole batch.

Checks, against the head's state before the batch (so the order of samples
inside one request does not matter):

- more than `max_future_ms` ahead of `now_ms`: `sample_too_far_in_future`;
- older than the retention boundary: `sample_too_old`;
- older than the series' newest sample by more than the out-of-order window:
  `out_of_order_sample`;
- at the timestamp of a stored sample (or an earlier one of the same batch):
  bit-identical value -> accepted, nothing stored (a sender's retry);
  a different value -> `duplicate_sample_for_timestamp`, the first one wins.
"""

from __future__ import annotations

import operator
import sys
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from itertools import compress, repeat

import numpy as np
from numpy.typing import NDArray

from remote_write.batch import LabelPairs, Rejection, WriteBatch, label_columns
from remote_write.validate import (
    canonical_sets,
    check_series,
    good_pairs,
    per_series,
    render_pairs,
)
from storage.head import messages
from storage.head.head import NO_SAMPLE, Head
from storage.interfaces import AppendResult
from storage.labels import CLUSTER_LABEL, Labels, format_labels

OK, INVALID, FUTURE, TOO_OLD, OUT_OF_ORDER, DUPLICATE, NOOP = range(7)
REASONS = {
    FUTURE: "sample_too_far_in_future",
    TOO_OLD: "sample_too_old",
    OUT_OF_ORDER: "out_of_order_sample",
    DUPLICATE: "duplicate_sample_for_timestamp",
}


@dataclass(frozen=True, slots=True)
class Applied:
    """What `apply_batch` did: the result for the sender, and what it stored."""

    result: AppendResult
    stored: int
    max_ts: int
    """Newest timestamp stored (NO_SAMPLE if none): the WAL tracks it per segment."""
    limited: tuple[int, ...] = ()
    """Indexes of the series refused for the series limit (the WAL record lists them)."""


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
    sids, limited = _resolve(head, batch, identity, enforce_limits, result.rejected, skip_series)
    for meta in batch.metadata:
        head.metadata[meta.metric_family_name] = meta
    n = len(batch.timestamps)
    if not n:
        return Applied(result, 0, NO_SAMPLE, limited)
    checker = _SampleCheck(head, batch, sids, now_ms)
    stored, max_ts = checker.run()
    result.accepted = checker.accepted
    result.rejected.extend(checker.rejections())
    return Applied(result, stored, max_ts, limited)


def _resolve(
    head: Head,
    batch: WriteBatch,
    identity: str | None,
    enforce_limits: bool,
    rejected: list[Rejection],
    skip_series: Sequence[int],
) -> tuple[NDArray[np.int64], tuple[int, ...]]:
    """Series id per series of the batch, -1 for refused ones (reported in `rejected`),
    and the indexes of the series refused for the series limit."""
    keys: Sequence[Hashable] = batch.series_keys if batch.series_keys is not None else batch.series
    cache = head.key_cache(identity)
    n = len(keys)
    sids = np.fromiter(map(cache.get, keys, repeat(-1)), dtype=np.int64, count=n)
    alive = head.index.alive
    if len(alive):
        known = (sids >= 0) & alive.take(sids, mode="wrap")
    else:
        known = np.zeros(n, dtype=bool)
    if skip_series:
        known[list(skip_series)] = True  # not looked up, not created
        sids[list(skip_series)] = -1
    if known.all():
        return sids, ()
    sids[~known] = -1
    rows = np.flatnonzero(~known)
    counts: list[NDArray[np.int64]] = []

    def samples_of(i: int) -> int:
        if not counts:
            counts.append(np.bincount(batch.series_idx, minlength=n))
        return int(counts[0][i])

    candidates, clusters, rows = _candidates(head, batch, rows, identity, rejected, samples_of)
    index = head.index
    found = index.get_many(candidates)
    new_pos = [k for k, sid in enumerate(found) if sid is None]
    if len(new_pos) < len(found):
        old = np.fromiter((sid is not None for sid in found), dtype=bool, count=len(found))
        old_rows = rows[old]
        old_sids = np.array([sid for sid in found if sid is not None], dtype=np.int64)
        sids[old_rows] = old_sids
        cache.update(zip(map(keys.__getitem__, old_rows.tolist()), old_sids.tolist(), strict=True))
    refused: list[tuple[int, Labels, str]] = []
    if new_pos:
        max_series = head.options.max_series_per_cluster if enforce_limits else 0
        refused = _create(
            head,
            [candidates[k] for k in new_pos],
            [clusters[k] for k in new_pos],
            rows[new_pos],
            max_series,
            sids,
            cache,
            keys,
        )
    if refused:
        per_cluster: dict[str, int] = {}
        for _, _, cluster in refused:
            per_cluster[cluster] = per_cluster.get(cluster, 0) + 1
        max_series = head.options.max_series_per_cluster
        for i, labels, cluster in refused:
            text = format_labels(labels)
            rejected.append(
                Rejection(
                    text,
                    "series_limit",
                    messages.series_limit(text, cluster, max_series, per_cluster[cluster]),
                    samples_of(i),
                    retryable=True,
                )
            )
    return sids, tuple(sorted(i for i, _, _ in refused))


def _candidates(
    head: Head,
    batch: WriteBatch,
    rows: NDArray[np.int64],
    identity: str | None,
    rejected: list[Rejection],
    samples_of: Callable[[int], int],
) -> tuple[list[Labels], list[str], NDArray[np.int64]]:
    """The canonical labels of the batch's series `rows` as they are stored (cluster
    override applied), their `cluster` values, and their rows; a series that fails
    validation is reported in `rejected` and left out.

    Labels are recognized by their keys in the head's label cache (valid
    labels seen before), so only labels new to it are decoded and checked, in
    bulk. Series whose labels are all valid and sent canonically (names
    sorted, no empty value) are built with C-level loops; any other one goes
    through `check_series` and a full canonicalization on its own.
    """
    index = head.index
    limits = head.options.series_limits
    cols = label_columns(batch.series, rows.tolist())
    keys, offsets = cols.keys, cols.offsets
    cache = head.label_cache()
    pairs = list(map(cache.get, keys, repeat(_BAD)))
    missing = np.flatnonzero(np.fromiter(map(operator.is_, pairs, repeat(_BAD)), bool, len(keys)))
    bad = np.zeros(len(keys), dtype=bool)
    if len(missing):
        where = missing.tolist()
        new_keys = list(dict.fromkeys(map(keys.__getitem__, where)))
        names, values = cols.decode(new_keys)
        good = good_pairs(names, values, limits).tolist()
        decoded = index.shared_pairs(list(zip(map(sys.intern, names), values, strict=True)))
        cache.update(compress(zip(new_keys, decoded, strict=True), good))
        found = dict(
            zip(
                new_keys,
                [p if g else _BAD for p, g in zip(decoded, good, strict=True)],
                strict=True,
            )
        )
        for i, pair in zip(
            where, map(found.__getitem__, map(keys.__getitem__, where)), strict=True
        ):
            pairs[i] = pair
        bad[missing] = np.fromiter(
            map(operator.is_, map(pairs.__getitem__, where), repeat(_BAD)), bool, len(where)
        )
    names = list(map(_name, pairs))
    fast = canonical_sets(names, offsets, limits)
    if len(missing):
        fast &= per_series(bad, offsets) == 0
    is_cluster = np.fromiter(
        map(operator.eq, names, repeat(CLUSTER_LABEL)), dtype=bool, count=len(names)
    )
    has_cluster = per_series(is_cluster, offsets) > 0
    at = np.flatnonzero(is_cluster)
    if identity:
        # Names are sorted: replacing the sent cluster pair keeps a fast series sorted.
        ident_pair = index.shared_pairs([(CLUSTER_LABEL, identity)])[0]
        for k in at.tolist():
            pairs[k] = ident_pair
        clusters = [identity] * len(rows)
    else:
        clusters = [""] * len(rows)
        owners = np.searchsorted(offsets, at, side="right") - 1
        for k, value in zip(
            owners.tolist(), map(_value, map(pairs.__getitem__, at.tolist())), strict=True
        ):
            clusters[k] = value
    edges = offsets.tolist()
    labels: list[Labels] = list(
        map(
            tuple.__new__,
            repeat(Labels),
            map(pairs.__getitem__, map(slice, edges[:-1], edges[1:])),
        )
    )
    redo = ~fast
    if identity is not None:
        redo |= ~has_cluster if identity else has_cluster  # insert or remove it: `with_`
    valid = np.ones(len(rows), dtype=bool)
    for k in np.flatnonzero(redo).tolist():
        i = int(rows[k])
        if fast[k]:
            lbl = labels[k]
        else:
            sent = batch.series[i]
            problem = check_series(sent, limits)
            if problem is not None:
                rejected.append(
                    Rejection(render_pairs(sent), problem.reason, problem.message, samples_of(i))
                )
                valid[k] = False
                continue
            lbl = _canonical(sent)
        if identity is not None:
            lbl = lbl.with_(CLUSTER_LABEL, identity)
        labels[k] = lbl
        clusters[k] = lbl.get(CLUSTER_LABEL)
    if not valid.all():
        keep = valid.tolist()
        labels = list(compress(labels, keep))
        clusters = list(compress(clusters, keep))
        rows = rows[valid]
    return labels, clusters, rows


_BAD = ("", "")
"""Stands for a label not in the label cache (new, or invalid)."""


def _create(
    head: Head,
    labels: list[Labels],
    clusters: list[str],
    rows: NDArray[np.int64],
    max_series: int,
    sids: NDArray[np.int64],
    cache: dict[Hashable, int],
    keys: Sequence[Hashable],
) -> list[tuple[int, Labels, str]]:
    """Create the series `labels` (new to the index) of batch rows `rows`, up to the
    per-cluster limit; returns the refused ones as (row, labels, cluster).

    New series get ids in label order, so that a query's series (which come
    out in label order) sit mostly in ascending rows of each part. One label
    set sent under several keys gets one id.
    """
    order = sorted(range(len(labels)), key=labels.__getitem__)
    labels = list(map(labels.__getitem__, order))
    clusters = list(map(clusters.__getitem__, order))
    rows = rows[order]
    same = np.zeros(len(labels), dtype=bool)
    if len(labels) > 1:
        same[1:] = np.fromiter(
            map(operator.eq, labels[:-1], labels[1:]), dtype=bool, count=len(labels) - 1
        )
    first = np.flatnonzero(~same)
    if same.any():
        unique = list(map(labels.__getitem__, first.tolist()))
        clusters = list(map(clusters.__getitem__, first.tolist()))
    else:
        unique = labels
    owner = np.cumsum(~same) - 1  # entry -> its unique label set
    refused: list[tuple[int, Labels, str]] = []
    allowed = np.ones(len(unique), dtype=bool)
    if max_series:
        for cluster, count in Counter(clusters).items():
            room = max_series - head.cluster_series(cluster)
            if count > room:
                mine = np.flatnonzero(
                    np.fromiter(map(operator.eq, clusters, repeat(cluster)), bool, len(clusters))
                )
                allowed[mine[max(room, 0) :]] = False
    if not allowed.all():
        entry_ok = allowed[owner]
        refused = [
            (int(rows[k]), labels[k], clusters[owner[k]])
            for k in np.flatnonzero(~entry_ok).tolist()
        ]
        keep = np.flatnonzero(allowed)
        unique = list(map(unique.__getitem__, keep.tolist()))
        clusters = list(map(clusters.__getitem__, keep.tolist()))
        renumber = np.full(len(allowed), -1, dtype=np.int64)
        renumber[keep] = np.arange(len(keep))
        owner = renumber[owner]
        rows = rows[entry_ok]
        owner = owner[entry_ok]
    created = head.create_many(unique, clusters)
    new_sids = np.arange(created.start, created.stop, dtype=np.int64)[owner]
    sids[rows] = new_sids
    cache.update(zip(map(keys.__getitem__, rows.tolist()), new_sids.tolist(), strict=True))
    return refused


def _canonical(pairs: LabelPairs) -> Labels:
    """Labels of a checked series; senders sort their labels, so skip sorting when so."""
    names = list(map(_name, pairs))
    if all(map(operator.lt, names, names[1:])) and all(map(_value, pairs)):
        return Labels.from_sorted(pairs)
    return Labels.from_pairs(pairs)


_name = operator.itemgetter(0)
_value = operator.itemgetter(1)


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
        window = head.options.out_of_order_window_ms
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
        for code, reason in REASONS.items():
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
                    msg = messages.too_old(text, ts, self.min_valid, c)
                elif code == OUT_OF_ORDER:
                    msg = messages.out_of_order(
                        text, ts, int(self.other[row]), opts.out_of_order_window_ms, c
                    )
                else:
                    new_bits = int(self.values[row : row + 1].view(np.uint64)[0])
                    old_bits = int(self.other[row : row + 1].view(np.uint64)[0])
                    msg = messages.duplicate(text, ts, new_bits, old_bits, c)
                out.append(Rejection(text, reason, msg, c))
        return out
