"""The head's samples: an active buffer plus immutable sorted parts, by time partition.

Appends land in `ActiveBuffer`, three preallocated columns (series id,
timestamp, value) in arrival order. A full buffer is sealed: its rows are split
by time partition (`ts // partition_ms`) and each share becomes a `Part`,
sorted by (series id, timestamp). A part stores one int64 key per sample,
`series_id << 24 | (ts - partition_start)`, next to the float64 values, so
that finding a series' samples in a time range, or one exact sample, is a
plain `np.searchsorted` over the keys, vectorized over many series at once.

Within a partition, parts are kept in seal order and only adjacent ones are
merged, so for series written in time order (the normal case) the samples of a
series in an earlier part all precede those in a later one: a query can
concatenate per-part slices without sorting. A part that received
out-of-order samples carries `ooo=True`, telling readers to check and fix the
order. Whole partitions are dropped once retention passes their end, or, under
tiering, handed out (`take`) to be written as a block and released once the
block is safe in the object store; that is what bounds memory.

Each part remembers `seq_lo`, the oldest WAL record its rows came from, so
the WAL can be truncated exactly behind the oldest record the head still needs.

Rows are never modified in place: sealing and merging build new arrays, so a
reader holding older arrays keeps seeing consistent data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

KEY_SHIFT = 24
"""Bits for the timestamp within a partition (2**24 ms: 4.6 h, above the 2 h cap);
the 39 bits above hold series ids, more than the index's 32-bit postings can."""
REL_MASK = (1 << KEY_SHIFT) - 1
MAX_PARTITION_MS = REL_MASK
MERGE_FANOUT = 4
"""A run of this many adjacent parts of one size class is merged into one."""
MAX_MERGE_ROWS = 1 << 24
"""Runs bigger than this are left alone: a merge holds its input and output in memory."""
NO_SEQ = 1 << 62
"""`seq_lo` of an empty buffer: above any WAL sequence number."""


@dataclass(frozen=True, slots=True, eq=False)
class Part:
    """Immutable samples of one time partition, sorted by (series id, timestamp)."""

    keys: NDArray[np.int64]
    """`series_id << KEY_SHIFT | (ts - base)`, sorted and unique."""
    values: NDArray[np.float64]
    base: int
    """The partition's first millisecond; every timestamp is in [base, base + 2**24)."""
    min_t: int
    max_t: int
    ooo: bool
    """May hold samples older than samples of the same series in earlier parts."""
    seq_lo: int = 0
    """Sequence number of the oldest WAL record with a row in this part."""

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + self.values.nbytes)

    def ranges(
        self, sids: NDArray[np.int64], start_ms: int, end_ms: int
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Row ranges [lo, hi) of each series' samples with start_ms <= ts <= end_ms."""
        high = sids << KEY_SHIFT
        rel_lo = max(start_ms - self.base, 0)
        rel_hi = min(end_ms - self.base, REL_MASK - 1) + 1
        if rel_lo >= rel_hi:
            zeros = np.zeros(len(sids), dtype=np.int64)
            return zeros, zeros
        lo = np.searchsorted(self.keys, high + rel_lo)
        hi = np.searchsorted(self.keys, high + rel_hi)
        return lo.astype(np.int64, copy=False), hi.astype(np.int64, copy=False)

    def find(
        self, sids: NDArray[np.int64], ts: NDArray[np.int64]
    ) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
        """For samples (sid, ts) in this partition: whether each is stored, and its row."""
        keys = (sids << KEY_SHIFT) | (ts - self.base)
        pos = np.searchsorted(self.keys, keys)
        inside = pos < len(self.keys)
        pos[~inside] = 0
        found = inside & (self.keys[pos] == keys) if len(self.keys) else inside
        return found, pos

    def timestamps(self, rows: NDArray[np.int64] | slice) -> NDArray[np.int64]:
        """Absolute timestamps of the given rows."""
        out = self.keys[rows] & REL_MASK
        out += self.base
        return out


def build_part(
    sids: NDArray[np.int64],
    ts: NDArray[np.int64],
    values: NDArray[np.float64],
    base: int,
    *,
    ooo: bool,
    seq_lo: int = 0,
) -> Part:
    """A part from unsorted rows of one partition; of equal (sid, ts) the first row wins."""
    keys = (sids.astype(np.int64, copy=False) << KEY_SHIFT) | (ts - base)
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    vals = values[order]
    keys, vals = _drop_repeats(keys, vals)
    return Part(keys, vals, base, int(ts.min()), int(ts.max()), ooo, seq_lo)


def merge_parts(parts: list[Part], *, ooo: bool) -> Part:
    """One part holding every sample of `parts` (same partition); earlier parts win ties.

    Inputs are sorted runs, so the stable sort (timsort) does about one merge
    pass per input instead of a full sort. Runs in a worker thread: numpy
    releases the GIL while sorting and copying.
    """
    keys = np.concatenate([p.keys for p in parts])
    vals = np.concatenate([p.values for p in parts])
    order = np.argsort(keys, kind="stable")
    keys, vals = _drop_repeats(keys[order], vals[order])
    return Part(
        keys,
        vals,
        parts[0].base,
        min(p.min_t for p in parts),
        max(p.max_t for p in parts),
        ooo,
        min(p.seq_lo for p in parts),
    )


def _drop_repeats(
    keys: NDArray[np.int64], vals: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    if len(keys) > 1:
        repeat = keys[1:] == keys[:-1]
        if repeat.any():
            keep = np.concatenate(([True], ~repeat))
            return keys[keep], vals[keep]
    return keys, vals


def size_class(rows: int, base_rows: int) -> int:
    """Merge level of a part: 0 up to `base_rows` rows, +1 per MERGE_FANOUT times more."""
    level = 0
    limit = base_rows
    while rows > limit:
        level += 1
        limit *= MERGE_FANOUT
    return level


class ActiveBuffer:
    """Unsorted rows in arrival order, appended in bulk; sealed into parts when full.

    Arrays are replaced, never shrunk or rewritten, so a reader that took
    `view()` keeps a consistent picture while appends continue.
    """

    __slots__ = (
        "_seq_rows",
        "_seqs",
        "_sid",
        "_ts",
        "_values",
        "capacity",
        "max_t",
        "min_t",
        "n",
        "ooo",
        "seq_lo",
    )

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._sid = np.empty(capacity, dtype=np.int64)
        self._ts = np.empty(capacity, dtype=np.int64)
        self._values = np.empty(capacity, dtype=np.float64)
        self.n = 0
        self.ooo = False
        self.min_t = np.iinfo(np.int64).max
        self.max_t = np.iinfo(np.int64).min
        self.seq_lo = NO_SEQ
        self._seq_rows: list[int] = []
        """First row of each append, and (`_seqs`) the WAL record it came from."""
        self._seqs: list[int] = []

    def seq_of_rows(self, rows: NDArray[np.int64] | slice) -> int:
        """The oldest WAL record among buffer rows `rows` (rows are in arrival order)."""
        if isinstance(rows, slice):
            first = rows.start or 0
        elif len(rows):
            first = int(rows.min())
        else:
            return NO_SEQ
        i = np.searchsorted(self._seq_rows, first, side="right") - 1
        return self._seqs[max(int(i), 0)] if self._seqs else NO_SEQ

    def append(
        self,
        sids: NDArray[np.int64],
        ts: NDArray[np.int64],
        values: NDArray[np.float64],
        *,
        ooo: bool,
        seq: int = 0,
    ) -> None:
        k = len(ts)
        if not k:
            return
        self.seq_lo = min(self.seq_lo, seq)
        self._seq_rows.append(self.n)
        self._seqs.append(seq)
        end = self.n + k
        if end > len(self._ts):
            size = max(2 * len(self._ts), end)
            for name in ("_sid", "_ts", "_values"):
                old = getattr(self, name)
                new = np.empty(size, dtype=old.dtype)
                new[: self.n] = old[: self.n]
                setattr(self, name, new)
        self._sid[self.n : end] = sids
        self._ts[self.n : end] = ts
        self._values[self.n : end] = values
        self.n = end
        self.ooo |= ooo
        self.min_t = min(self.min_t, int(ts.min()))
        self.max_t = max(self.max_t, int(ts.max()))

    @property
    def full(self) -> bool:
        return self.n >= self.capacity

    def view(self) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
        """The rows held now (views; later appends do not change them)."""
        n = self.n
        return self._sid[:n], self._ts[:n], self._values[:n]


def split_by_partition(
    ts: NDArray[np.int64], partition_ms: int
) -> Iterator[tuple[int, NDArray[np.int64] | slice]]:
    """(partition key, rows) groups of `ts`; one slice when all rows share a partition."""
    if not len(ts):
        return
    keys = ts // partition_ms
    first = int(keys[0])
    if int(keys.min()) == int(keys.max()):
        yield first, slice(None)
        return
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    bounds = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
    starts = [0, *bounds.tolist()]
    ends = [*bounds.tolist(), len(order)]
    for s, e in zip(starts, ends, strict=True):
        yield int(sorted_keys[s]), order[s:e]


class Partitions:
    """Sealed parts by time partition, each list in seal order."""

    def __init__(self, partition_ms: int, merge_base_rows: int) -> None:
        if not 0 < partition_ms <= MAX_PARTITION_MS:
            raise ValueError(f"partition of {partition_ms} ms out of range")
        self.partition_ms = partition_ms
        self.merge_base_rows = merge_base_rows
        self._parts: dict[int, list[Part]] = {}
        self._taken: set[int] = set()
        """Partitions handed out by `take` and not yet released: not merged meanwhile,
        so that `release` finds exactly the parts it handed out."""

    def add_rows(
        self,
        sids: NDArray[np.int64],
        ts: NDArray[np.int64],
        values: NDArray[np.float64],
        *,
        ooo: bool,
        seq_of: Callable[[NDArray[np.int64] | slice], int] | None = None,
    ) -> None:
        """Seal rows (any order, any partitions) into new parts; `seq_of(rows)` names
        the oldest WAL record among rows (see `ActiveBuffer.seq_of_rows`)."""
        for key, rows in split_by_partition(ts, self.partition_ms):
            seq_lo = seq_of(rows) if seq_of is not None else 0
            part = build_part(
                sids[rows], ts[rows], values[rows], key * self.partition_ms, ooo=ooo, seq_lo=seq_lo
            )
            self._parts.setdefault(key, []).append(part)

    def keys(self) -> list[int]:
        """Partitions holding parts, ascending."""
        return sorted(k for k, parts in self._parts.items() if parts)

    def take(self, keys: list[int]) -> dict[int, list[Part]]:
        """The parts of these partitions, which stay readable until `release`d.

        Parts added to the partitions later (late samples) are not part of the
        hand-out and stay when it is released.
        """
        out = {}
        for key in keys:
            parts = self._parts.get(key)
            if parts and key not in self._taken:
                out[key] = list(parts)
                self._taken.add(key)
        return out

    def release(self, taken: dict[int, list[Part]]) -> int:
        """Drop the parts `take` handed out (now safe elsewhere); returns samples dropped."""
        dropped = 0
        for key, parts in taken.items():
            self._taken.discard(key)
            gone = {id(p) for p in parts}
            kept = [p for p in self._parts.get(key, ()) if id(p) not in gone]
            dropped += sum(len(p) for p in parts)
            if kept:
                self._parts[key] = kept
            else:
                self._parts.pop(key, None)
        return dropped

    def give_back(self, taken: dict[int, list[Part]]) -> None:
        """Undo a `take` whose block could not be made: the parts stay in the head."""
        for key in taken:
            self._taken.discard(key)

    def oldest_seq(self) -> int:
        """The smallest `seq_lo` of any part (NO_SEQ if none)."""
        return min((p.seq_lo for parts in self._parts.values() for p in parts), default=NO_SEQ)

    def temporary_parts(
        self,
        sids: NDArray[np.int64],
        ts: NDArray[np.int64],
        values: NDArray[np.float64],
        *,
        ooo: bool,
    ) -> list[Part]:
        """Parts built from rows for one read (the buffer's share of a query), not kept."""
        return [
            build_part(sids[rows], ts[rows], values[rows], key * self.partition_ms, ooo=ooo)
            for key, rows in sorted(split_by_partition(ts, self.partition_ms), key=lambda kv: kv[0])
        ]

    def overlapping(self, start_ms: int, end_ms: int) -> list[Part]:
        """Parts that may hold samples in [start_ms, end_ms], by partition then seal order."""
        p = self.partition_ms
        lo, hi = start_ms // p, end_ms // p
        out: list[Part] = []
        for key in sorted(k for k in self._parts if lo <= k <= hi):
            out.extend(
                part for part in self._parts[key] if part.max_t >= start_ms and part.min_t <= end_ms
            )
        return out

    def find(
        self, sids: NDArray[np.int64], ts: NDArray[np.int64]
    ) -> tuple[NDArray[np.bool_], NDArray[np.uint64]]:
        """Whether each sample (sid, ts) is stored in some part, and its value bits."""
        found = np.zeros(len(ts), dtype=bool)
        bits = np.zeros(len(ts), dtype=np.uint64)
        for key, rows in split_by_partition(ts, self.partition_ms):
            idx = np.arange(len(ts))[rows]
            for part in self._parts.get(key, ()):
                hit, pos = part.find(sids[idx], ts[idx])
                if hit.any():
                    found[idx[hit]] = True
                    bits[idx[hit]] = part.values[pos[hit]].view(np.uint64)
        return found, bits

    def drop_before(self, horizon_ms: int) -> int:
        """Drop partitions ending at or before `horizon_ms`; returns samples dropped."""
        p = self.partition_ms
        dropped = 0
        for key in [k for k in self._parts if (k + 1) * p <= horizon_ms]:
            dropped += sum(len(part) for part in self._parts.pop(key))
        return dropped

    def merge_candidates(self) -> list[tuple[int, list[Part], bool]]:
        """Runs of adjacent parts worth merging: (partition, parts, result ooo flag)."""
        plans = []
        for key, parts in self._parts.items():
            if key in self._taken:
                continue
            levels = [size_class(len(part), self.merge_base_rows) for part in parts]
            i = 0
            while i < len(parts):
                j = i
                while j < len(parts) and levels[j] == levels[i]:
                    j += 1
                run = parts[i:j]
                if len(run) >= MERGE_FANOUT and sum(map(len, run)) <= MAX_MERGE_ROWS:
                    plans.append((key, run, i > 0 and any(part.ooo for part in run)))
                    break
                i = j
        return plans

    def replace(self, key: int, old: list[Part], new: Part) -> bool:
        """Swap a merged run for its result, if the run is still there unchanged."""
        parts = self._parts.get(key)
        if not parts or key in self._taken:
            return False
        for i in range(len(parts) - len(old) + 1):
            if parts[i] is old[0]:
                if all(a is b for a, b in zip(parts[i : i + len(old)], old, strict=True)):
                    parts[i : i + len(old)] = [new]
                    return True
                return False
        return False

    def min_time(self) -> int | None:
        times = [part.min_t for parts in self._parts.values() for part in parts]
        return min(times) if times else None

    @property
    def num_parts(self) -> int:
        return sum(len(parts) for parts in self._parts.values())

    @property
    def num_samples(self) -> int:
        return sum(len(part) for parts in self._parts.values() for part in parts)

    @property
    def nbytes(self) -> int:
        return sum(part.nbytes for parts in self._parts.values() for part in parts)
