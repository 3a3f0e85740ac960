"""Reading WAL segments back: frames in order, and where (and why) reading stopped.

A crash mid-write leaves the last segment with a torn tail: a header or
payload cut short, a last frame whose bytes did not all reach the disk, or
zero-filled space after the last good frame. `scan_segment` reports such a
tail as `torn`, which replay may cut off. Any other bad frame (a CRC mismatch
with data after it) is corruption, and the caller must not guess.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from storage.wal.frame import HEADER, MAX_PAYLOAD, PAYLOAD_HEAD, FrameError, Record, decode_payload

SEGMENT_NAME = re.compile(r"^\d{8}$")


def segment_path(directory: Path, number: int) -> Path:
    return directory / f"{number:08d}"


def list_segments(directory: Path) -> list[int]:
    """Segment numbers present in `directory`, ascending (other files are ignored)."""
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if SEGMENT_NAME.match(p.name))


@dataclass(frozen=True, slots=True)
class ScanEnd:
    """Where reading a segment stopped: at `offset`, cleanly or because of `problem`."""

    offset: int
    size: int
    problem: str | None = None
    torn: bool = False
    """The problem is a torn tail (nothing valid follows), not corruption."""


def iter_frames(data: bytes | memoryview) -> Iterator[tuple[int, Record] | ScanEnd]:
    """Each good frame as (offset, record), then one ScanEnd."""
    view = memoryview(data)
    size = len(view)
    offset = 0
    while offset < size:
        problem, torn = _check_frame(view, offset, size)
        if problem is not None:
            yield ScanEnd(offset, size, problem, torn)
            return
        length, _ = HEADER.unpack_from(view, offset)
        start = offset + HEADER.size
        try:
            record = decode_payload(view[start : start + length])
        except FrameError as exc:
            yield ScanEnd(offset, size, str(exc), False)
            return
        yield offset, record
        offset = start + length
    yield ScanEnd(offset, size)


def _check_frame(view: memoryview, offset: int, size: int) -> tuple[str | None, bool]:
    """(problem, torn) for the frame at `offset`; problem None if it is good."""
    if size - offset < HEADER.size:
        return f"frame header cut short ({size - offset} of {HEADER.size} bytes)", True
    length, crc = HEADER.unpack_from(view, offset)
    if length < PAYLOAD_HEAD.size or length > MAX_PAYLOAD:
        if _all_zero(view, offset):
            return "zero-filled space after the last frame", True
        return f"implausible frame length {length}", False
    end = offset + HEADER.size + length
    if end > size:
        return f"frame of {length} bytes cut short at {size - offset - HEADER.size}", True
    if zlib.crc32(view[offset + HEADER.size : end]) != crc:
        if end == size or _all_zero(view, offset):
            return "checksum mismatch in the last frame", True
        return "checksum mismatch", False
    return None, False


def _all_zero(view: memoryview, offset: int) -> bool:
    return view[offset:].tobytes().count(0) == len(view) - offset


def read_segment(path: Path) -> tuple[list[tuple[int, Record]], ScanEnd]:
    """All good frames of a segment file, and where reading stopped."""
    data = path.read_bytes()
    records: list[tuple[int, Record]] = []
    for item in iter_frames(data):
        if isinstance(item, ScanEnd):
            return records, item
        records.append(item)
    raise AssertionError("iter_frames always ends with a ScanEnd")
