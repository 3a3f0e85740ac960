"""Cutting the head's closed time ranges into blocks.

`take_ranges` (on the event loop) seals the active buffer and hands out the
parts of every partition that ends at or before the boundary, grouped by
block range; the parts stay in the head, readable, until the block holding
them is safe in the object store. `build_block` merges a range's parts into
one sorted run per series (first written wins a repeated timestamp, as on
ingest), names the series (the index is read on the event loop), and writes
the block's files in a worker thread.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from storage.blocks.meta import BlockMeta, new_block_id
from storage.blocks.schema import ROW_GROUP_ROWS
from storage.blocks.writer import BlockWriter, SeriesBatch, series_sort_key
from storage.csr import ranges
from storage.head.head import Head
from storage.head.parts import KEY_SHIFT, REL_MASK, Part
from storage.labels import Labels

_REL_BITS = 32


@dataclass(slots=True)
class CutJob:
    """One block range's parts, handed out by the head."""

    range_start: int
    range_end: int
    taken: dict[int, list[Part]]
    kind: str
    samples: int = field(init=False)

    def __post_init__(self) -> None:
        self.samples = sum(len(p) for parts in self.taken.values() for p in parts)


def take_ranges(head: Head, boundary_ms: int, block_ms: int, kind_of: KindOf) -> list[CutJob]:
    """Hand out every partition ending at or before `boundary_ms`, grouped by block range."""
    head.seal()
    p = head.partitions.partition_ms
    keys = [k for k in head.partitions.keys() if (k + 1) * p <= boundary_ms]
    taken = head.partitions.take(keys)
    jobs: dict[int, dict[int, list[Part]]] = {}
    for key, parts in taken.items():
        start = (key * p) // block_ms * block_ms
        jobs.setdefault(start, {})[key] = parts
    return [
        CutJob(start, start + block_ms, parts, kind_of(start, start + block_ms))
        for start, parts in sorted(jobs.items())
    ]


class KindOf:
    """Names a cut: `late` for a range cut before, `flush` for an open one, else `cut`."""

    def __init__(self, already_cut: set[int], flush_from: int | None = None) -> None:
        self.already_cut = already_cut
        self.flush_from = flush_from

    def __call__(self, start: int, end: int) -> str:
        if start in self.already_cut:
            return "late"
        if self.flush_from is not None and end > self.flush_from:
            return "flush"
        return "cut"


def distinct_series(jobs: list[CutJob]) -> int:
    """How many different series the jobs' parts hold."""
    keys = [p.keys >> KEY_SHIFT for job in jobs for parts in job.taken.values() for p in parts]
    return len(np.unique(np.concatenate(keys))) if keys else 0


async def build_block(head: Head, job: CutJob, directory: Path) -> BlockMeta | None:
    """Write the job's samples as a block under `directory/<id>`; None if there are none."""
    sids, offsets, ts, values = await asyncio.to_thread(_merge_parts, job)
    if not len(sids):
        return None
    labels = head.index.labels_of(sids.tolist())
    block_id = new_block_id()
    return await asyncio.to_thread(
        _write, directory / block_id, block_id, job, labels, offsets, ts, values
    )


def _merge_parts(
    job: CutJob,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """All samples of the job, sorted by (series id, time), one per timestamp: CSR by series."""
    parts = [p for key in sorted(job.taken) for p in job.taken[key]]
    sids = np.concatenate([p.keys >> KEY_SHIFT for p in parts])
    ts = np.concatenate([(p.keys & REL_MASK) + p.base for p in parts])
    values = np.concatenate([p.values for p in parts])
    # One int64 per sample, (series, time relative to the range), sorted stably: the
    # parts are sorted runs, so this is mostly merging; earlier parts win ties.
    key = (sids << _REL_BITS) | (ts - job.range_start)
    order = np.argsort(key, kind="stable")
    key, ts, values = key[order], ts[order], values[order]
    first = np.concatenate(([True], key[1:] != key[:-1]))
    if not first.all():
        key, ts, values = key[first], ts[first], values[first]
    series = key >> _REL_BITS
    starts = np.flatnonzero(np.concatenate(([True], series[1:] != series[:-1])))
    offsets = np.append(starts, len(series)).astype(np.int64)
    return series[starts], offsets, ts, values


def _write(
    directory: Path,
    block_id: str,
    job: CutJob,
    labels: list[Labels],
    offsets: NDArray[np.int64],
    ts: NDArray[np.int64],
    values: NDArray[np.float64],
) -> BlockMeta | None:
    """Series into block order, written in batches of about a row group."""
    order = sorted(range(len(labels)), key=lambda i: series_sort_key(labels[i]))
    perm = np.asarray(order, dtype=np.int64)
    counts = np.diff(offsets)[perm]
    rows = ranges(offsets[:-1][perm], counts)
    ts, values = ts[rows], values[rows]
    new_offsets = np.zeros(len(perm) + 1, dtype=np.int64)
    np.cumsum(counts, out=new_offsets[1:])
    ordered = [labels[i] for i in order]
    writer = BlockWriter(directory)
    try:
        for a, b in _batches(new_offsets, ROW_GROUP_ROWS):
            lo, hi = int(new_offsets[a]), int(new_offsets[b])
            writer.add(
                SeriesBatch(
                    ordered[a:b],
                    new_offsets[a : b + 1] - lo,
                    ts[lo:hi],
                    {"value": values[lo:hi]},
                )
            )
        return writer.finish(
            block_id=block_id,
            kind=job.kind,
            range_start=job.range_start,
            range_end=job.range_end,
        )
    except BaseException:
        writer.abort()
        raise


def _batches(offsets: NDArray[np.int64], rows: int) -> list[tuple[int, int]]:
    """Series index ranges [a, b) of about `rows` samples each (whole series)."""
    n = len(offsets) - 1
    cuts = np.searchsorted(offsets, np.arange(rows, int(offsets[-1]), rows), side="left")
    bounds = sorted({0, n, *cuts.tolist()})
    return [(a, b) for a, b in itertools.pairwise(bounds) if a < b]
