"""The on-disk queue of what waits to go upstream: one file per record, in sequence order.

Every record the agent sends (a remote-write body, a batch of alerts) is
written here first and removed only once the host acknowledged it, so a
link that is down, or an agent that restarts, loses nothing but what the
size bound drops. A record is a file `<sequence>.<kind>` (sequence zero
padded, so names sort in order), written to a temporary name, fsynced and
renamed: a crash leaves either the whole record or none. The next sequence
number is kept in `next_sequence` so numbers never repeat, even after the
queue drained and the agent restarted; the host uses them to ignore a
record it already has (a retry after a lost acknowledgement).

Past `max_bytes` the oldest records are dropped first (counted in
`dropped_records` / `dropped_bytes`): the newest data is what an operator
wants when a long outage ends.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path

KINDS = ("write", "alerts")


@dataclass(frozen=True, slots=True)
class Record:
    seq: int
    kind: str
    size: int
    path: Path


class DiskQueue:
    """A FIFO of records on disk; one producer and one consumer on the event loop."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        self.dir.mkdir(parents=True, exist_ok=True)
        self._records: deque[Record] = deque()
        self.bytes = 0
        self.dropped_records = 0
        self.dropped_bytes = 0
        self.enqueued_records = 0
        self._changed = asyncio.Event()
        for path in sorted(self.dir.iterdir()):
            seq, _, kind = path.name.partition(".")
            if kind in KINDS and seq.isdigit():
                size = path.stat().st_size
                self._records.append(Record(int(seq), kind, size, path))
                self.bytes += size
            elif path.name.endswith(".tmp"):
                path.unlink()
        stored = self._read_next()
        last = self._records[-1].seq + 1 if self._records else 1
        self.next_seq = max(stored, last)

    def _read_next(self) -> int:
        try:
            return int((self.dir / "next_sequence").read_text().strip() or 1)
        except (OSError, ValueError):
            return 1

    def __len__(self) -> int:
        return len(self._records)

    def put(self, kind: str, payload: bytes) -> Record:
        """Store a record durably; drops the oldest records past the size bound."""
        if kind not in KINDS:
            raise ValueError(f"unknown record kind {kind!r}")
        seq = self.next_seq
        self.next_seq += 1
        path = self.dir / f"{seq:016d}.{kind}"
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        counter = self.dir / "next_sequence.tmp"
        counter.write_text(str(self.next_seq))
        os.replace(counter, self.dir / "next_sequence")
        record = Record(seq, kind, len(payload), path)
        self._records.append(record)
        self.bytes += record.size
        self.enqueued_records += 1
        while self.bytes > self.max_bytes and len(self._records) > 1:
            old = self._records.popleft()
            self._remove(old)
            self.dropped_records += 1
            self.dropped_bytes += old.size
        self._changed.set()
        return record

    def peek(self) -> Record | None:
        return self._records[0] if self._records else None

    def read(self, record: Record) -> bytes:
        return record.path.read_bytes()

    def ack(self, record: Record) -> None:
        """The host has the record: remove it (if the size bound did not already)."""
        if self._records and self._records[0].seq == record.seq:
            self._records.popleft()
            self._remove(record)

    def _remove(self, record: Record) -> None:
        self.bytes -= record.size
        record.path.unlink(missing_ok=True)

    async def wait(self) -> None:
        """Until the queue holds a record."""
        while not self._records:
            self._changed.clear()
            await self._changed.wait()
