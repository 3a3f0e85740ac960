"""Replay: rebuild the head from the WAL on start.

Every record is decoded and applied through the same `apply_batch` as a live
request, under its writer identity and with the wall clock it was appended
at, so the head ends up as it was: same accepted samples, same rejections.
Only the series limit is not evaluated again: the series the live append
refused for it are listed in the record and skipped, so replay restores
exactly what was acknowledged (evaluating the limit again could refuse more,
because series that retention removed meanwhile are all still there).

A torn tail of the last segment (a crash mid-write) is cut off with a
warning; any other damage raises `WALCorrupted` naming segment and offset,
because silently skipping acknowledged data would be worse than stopping.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from remote_write.codec import decode_write_request
from remote_write.codec_v2 import decode_write_request_v2
from remote_write.errors import RemoteWriteError
from remote_write.symbols import SymbolIds
from storage.errors import WALCorrupted
from storage.head.appender import apply_batch
from storage.head.head import Head
from storage.wal.reader import list_segments, read_segment, segment_path
from storage.wal.writer import NO_SAMPLES

log = logging.getLogger(__name__)

YIELD_EVERY = 64
"""Records between yields to the event loop, so health checks answer while replaying."""


@dataclass(slots=True)
class ReplayResult:
    """What replay found: per-segment newest timestamps and the next segment number."""

    segment_max_ts: dict[int, int] = field(default_factory=dict)
    segment_last_seq: dict[int, int] = field(default_factory=dict)
    """Sequence number of each segment's last record; records are numbered from 1 in
    replay order, and the head keeps these numbers with the rows they added."""
    next_segment: int = 0
    records: int = 0
    samples: int = 0
    seconds: float = 0.0
    truncated: str | None = None


async def replay(directory: Path, head: Head, symbol_ids: SymbolIds | None = None) -> ReplayResult:
    """Apply every record of the WAL in `directory` to `head`, in order."""
    started = time.perf_counter()
    result = ReplayResult()
    numbers = list_segments(directory)
    if symbol_ids is None:  # 2.0 records' series keys (live ingest's ids, when given)
        symbol_ids = SymbolIds()
    for pos, number in enumerate(numbers):
        path = segment_path(directory, number)
        records, end = await asyncio.to_thread(read_segment, path)
        max_ts = NO_SAMPLES
        for i, (offset, record) in enumerate(records):
            head.seq = result.records + 1
            try:
                if record.body_format == 2:
                    batch = decode_write_request_v2(record.body, symbol_ids=symbol_ids).batch
                else:
                    batch = decode_write_request(record.body).batch
            except RemoteWriteError as exc:
                raise WALCorrupted(
                    f"WAL segment {path} at offset {offset}: record does not decode ({exc})"
                ) from None
            applied = apply_batch(
                head,
                batch,
                record.cluster,
                now_ms=record.now_ms,
                enforce_limits=False,
                skip_series=record.skip,
            )
            max_ts = max(max_ts, applied.max_ts)
            result.samples += applied.stored
            result.records += 1
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
        result.segment_max_ts[number] = max_ts
        result.segment_last_seq[number] = result.records
        if end.problem is None:
            continue
        if pos == len(numbers) - 1 and end.torn:
            log.warning(
                "wal torn tail truncated",
                extra={"segment": str(path), "offset": end.offset, "reason": end.problem},
            )
            result.truncated = f"{path} at offset {end.offset}: {end.problem}"
            await asyncio.to_thread(_truncate, path, end.offset)
            continue
        raise WALCorrupted(f"WAL segment {path} is corrupt at offset {end.offset}: {end.problem}")
    result.next_segment = numbers[-1] + 1 if numbers else 0
    result.seconds = time.perf_counter() - started
    return result


def _truncate(path: Path, offset: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, offset)
        os.fsync(fd)
    finally:
        os.close(fd)
