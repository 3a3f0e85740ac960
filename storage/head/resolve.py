"""Series of a batch -> series ids: find the known ones, check and create the new ones.

A series the writer sent before is found by its series key in the head's key
cache: one dict lookup, nothing decoded. The rest is done for all unknown
series of the batch at once, on numpy columns of label pair ids:

1. their labels as label keys (`remote_write.batch.label_columns`), each
   looked up in the index's pair table; only labels never seen are decoded,
   checked (`good_pairs`) and registered;
2. series whose labels are all valid, sorted by name and hold one metric
   name (what senders send) are canonical as sent: checked in numpy from
   the pairs' name ranks; the writer's `cluster` label replaces or joins
   theirs in numpy too. Any other series takes `check_series` (the precise
   rejection message) and a canonicalization of its own;
3. label sets are looked up in the index (a set may arrive under another
   key); new ones get ids in label order, up to the per-cluster limit.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np
from numpy.typing import NDArray

from remote_write.batch import LabelPairs, Rejection, WriteBatch, label_columns
from remote_write.validate import (
    canonical_ranks,
    check_series,
    good_pairs,
    per_series,
    render_pairs,
)
from storage.csr import insert_into_rows, replace_rows, take_rows
from storage.errors import SeriesLimitExceeded
from storage.head import messages
from storage.head.head import Head
from storage.index.pairs import PairTable
from storage.labels import CLUSTER_LABEL, METRIC_NAME, Labels, format_labels


@dataclass(slots=True)
class _Candidates:
    """Series to find or create: canonical labels (built from the index's shared
    pairs), their pair ids as rows, `cluster` values, and batch rows."""

    labels: list[Labels]
    clusters: list[str]
    rows: NDArray[np.int64]
    pids: NDArray[np.int64]
    offsets: NDArray[np.int64]

    def take(self, which: Sequence[int] | NDArray[np.int64]) -> _Candidates:
        idx = np.asarray(which, dtype=np.int64)
        chosen = idx.tolist()
        pids, offsets = take_rows(self.pids, self.offsets, idx)
        return _Candidates(
            list(map(self.labels.__getitem__, chosen)),
            list(map(self.clusters.__getitem__, chosen)),
            self.rows[idx],
            pids,
            offsets,
        )


def resolve_series(
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

    index = head.index
    index.sweep_pairs()  # before any lookup: ids looked up below must stay valid
    cand = _candidates(head, batch, rows, identity, rejected, samples_of)
    found: list[int | None] = [None] * len(cand.labels)
    # A series with a pair no live series holds (a new pod, say) is new for sure.
    maybe = np.flatnonzero(index.all_pairs_live(cand.pids, cand.offsets)).tolist()
    if maybe:
        for k, sid in zip(
            maybe, index.get_many(list(map(cand.labels.__getitem__, maybe))), strict=True
        ):
            found[k] = sid
        new_pos = [k for k, sid in enumerate(found) if sid is None]
    else:
        new_pos = list(range(len(found)))
    if len(new_pos) < len(found):
        old = np.fromiter((sid is not None for sid in found), dtype=bool, count=len(found))
        old_rows = cand.rows[old]
        old_sids = np.array([sid for sid in found if sid is not None], dtype=np.int64)
        sids[old_rows] = old_sids
        cache.update(zip(map(keys.__getitem__, old_rows.tolist()), old_sids.tolist(), strict=True))
    refused: list[tuple[int, Labels, str]] = []
    if new_pos:
        max_series = head.options.max_series_per_cluster if enforce_limits else 0
        fresh = cand if len(new_pos) == len(found) else cand.take(new_pos)
        refused = _create(head, fresh, max_series, sids, cache, keys)
    if refused:
        per_cluster: dict[str, int] = {}
        for _, _, cluster in refused:
            per_cluster[cluster] = per_cluster.get(cluster, 0) + 1
        max_series = head.options.max_series_per_cluster
        for i, labels, cluster in refused:
            text = format_labels(labels)
            rejected.append(
                SeriesLimitExceeded.rejection(
                    text,
                    messages.series_limit(text, cluster, max_series, per_cluster[cluster]),
                    samples_of(i),
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
) -> _Candidates:
    """The canonical labels of the batch's series `rows` as they are stored (cluster
    override applied); a series that fails validation is reported in `rejected`
    and left out. See the module docstring."""
    table = head.index.pairs
    limits = head.options.series_limits
    cols = label_columns(batch.series, rows.tolist())
    keys, offsets = cols.keys, cols.offsets
    n = len(rows)
    pids = table.lookup(keys)
    missing = np.flatnonzero(pids < 0)
    if len(missing):
        asked = list(map(keys.__getitem__, missing.tolist()))
        new_keys = list(dict.fromkeys(asked))
        names, values = cols.decode(new_keys)
        ok = good_pairs(names, values, limits)
        if ok.all():
            new_pids = table.register(new_keys, names, values)
            if len(new_keys) == len(asked):  # each new label once (unique values)
                pids[missing] = new_pids
            else:
                found = dict(zip(new_keys, new_pids.tolist(), strict=True))
                pids[missing] = np.fromiter(map(found.__getitem__, asked), np.int64, len(asked))
        elif ok.any():
            good = np.flatnonzero(ok).tolist()
            good_keys = list(map(new_keys.__getitem__, good))
            new_pids = table.register(
                good_keys,
                list(map(names.__getitem__, good)),
                list(map(values.__getitem__, good)),
            )
            found = dict(zip(good_keys, new_pids.tolist(), strict=True))
            pids[missing] = np.fromiter(
                map(found.get, asked, repeat(-1)), dtype=np.int64, count=len(asked)
            )
    ident = -1
    if identity:
        ident = int(table.ids_of([(CLUSTER_LABEL, identity)])[0])
    known = pids >= 0
    name_ids = table.name_ids(np.where(known, pids, 0))
    ranks = table.name_rank[name_ids] if len(table.name_rank) else name_ids
    fast = canonical_ranks(ranks, known & (name_ids == table.name_id(METRIC_NAME)), offsets, limits)
    if len(missing):
        fast &= per_series(~known, offsets) == 0
    is_cluster = known & (name_ids == table.name_id(CLUSTER_LABEL))
    has_cluster = per_series(is_cluster, offsets) > 0
    redo = ~fast
    if identity:
        # Names are sorted: the writer's pair takes the sent one's place, or goes
        # where its name sorts in.
        pids[is_cluster] = ident
        lacking = np.flatnonzero(fast & ~has_cluster)
        if len(lacking):
            cluster_rank = table.name_rank[table.name_id(CLUSTER_LABEL)]
            before = per_series(ranks < cluster_rank, offsets)
            pids, offsets = insert_into_rows(pids, offsets, lacking, before[lacking], ident)
        clusters = [identity] * n
    elif identity is not None:  # an empty identity: series are stored without `cluster`
        redo |= has_cluster
        clusters = [""] * n
    else:
        clusters = _cluster_values(table, pids, is_cluster, has_cluster, offsets)
    valid = np.ones(n, dtype=bool)
    redone: dict[int, NDArray[np.int64]] = {}
    for k in np.flatnonzero(redo).tolist():
        i = int(rows[k])
        if fast[k]:
            lbl = Labels.from_sorted(table.pairs(pids[offsets[k] : offsets[k + 1]].tolist()))
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
        redone[k] = table.ids_of(lbl)
        clusters[k] = lbl.get(CLUSTER_LABEL)
    if redone:
        pids, offsets = replace_rows(pids, offsets, redone)
    if not valid.all():  # rejected rows may hold unregistered labels (-1): leave them out
        keep = np.flatnonzero(valid)
        pids, offsets = take_rows(pids, offsets, keep)
        rows = rows[keep]
        clusters = list(map(clusters.__getitem__, keep.tolist()))
    flat = table.pairs(pids.tolist())
    edges = offsets.tolist()
    labels: list[Labels] = list(
        map(tuple.__new__, repeat(Labels), map(flat.__getitem__, map(slice, edges[:-1], edges[1:])))
    )
    return _Candidates(labels, clusters, rows, pids, offsets)


def _cluster_values(
    table: PairTable,
    pids: NDArray[np.int64],
    is_cluster: NDArray[np.bool_],
    has_cluster: NDArray[np.bool_],
    offsets: NDArray[np.int64],
) -> list[str]:
    """The `cluster` value of each series ("" for none), as sent."""
    at = np.flatnonzero(is_cluster)
    n = len(offsets) - 1
    if not len(at):
        return [""] * n
    sent = pids[at]
    if len(at) == n and has_cluster.all() and (sent == sent[0]).all():
        return [table.pair(int(sent[0]))[1]] * n  # one cluster label per series, all equal
    distinct, which = np.unique(pids[at], return_inverse=True)
    names = ["", *(pair[1] for pair in table.pairs(distinct.tolist()))]
    code = np.zeros(n, dtype=np.int64)
    code[np.searchsorted(offsets, at, side="right") - 1] = which + 1
    return list(map(names.__getitem__, code.tolist()))


def _create(
    head: Head,
    cand: _Candidates,
    max_series: int,
    sids: NDArray[np.int64],
    cache: dict[Hashable, int],
    keys: Sequence[Hashable],
) -> list[tuple[int, Labels, str]]:
    """Create the series `cand` (new to the index) up to the per-cluster limit;
    returns the refused ones as (batch row, labels, cluster).

    New series get ids in label order, so that a query's series (which come
    out in label order) sit mostly in ascending rows of each part. One label
    set sent under several keys gets one id.
    """
    labels = cand.labels
    order = sorted(range(len(labels)), key=labels.__getitem__)
    if order != list(range(len(labels))):
        cand = cand.take(order)
        labels = cand.labels
    same = np.zeros(len(labels), dtype=bool)
    if len(labels) > 1:
        same[1:] = np.fromiter(
            map(operator.eq, labels[:-1], labels[1:]), dtype=bool, count=len(labels) - 1
        )
    unique = cand.take(np.flatnonzero(~same)) if same.any() else cand
    owner = np.cumsum(~same) - 1  # entry -> its unique label set
    rows = cand.rows
    refused: list[tuple[int, Labels, str]] = []
    allowed = np.ones(len(unique.labels), dtype=bool)
    clusters = unique.clusters
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
        unique = unique.take(keep)
        renumber = np.full(len(allowed), -1, dtype=np.int64)
        renumber[keep] = np.arange(len(keep))
        owner = renumber[owner]
        rows = rows[entry_ok]
        owner = owner[entry_ok]
    created = head.create_many(unique.labels, unique.clusters, unique.pids, unique.offsets)
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
