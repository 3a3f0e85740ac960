"""Block identity and `meta.json`: what a block holds, written next to its Parquet files.

A block lives under `blocks/<id>/` in the object store: `samples.parquet`,
`series.parquet` and `meta.json`. `meta.json` is uploaded last and deleted
first, so a block without it is an unfinished upload or deletion, never read.

Ids are ULIDs (26 characters of Crockford base32: 48 bits of creation time
in ms, 80 random bits), so they sort by creation time.

Compaction and downsampling name the blocks they were made from in
`sources`: a block listed as a source of another live block is superseded
and ignored, so a crash between uploading a compacted block and deleting its
sources never shows the same samples twice.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from storage.errors import StorageError

SCHEMA_VERSION = 1
BLOCKS_PREFIX = "blocks/"
META_FILE = "meta.json"
SERIES_FILE = "series.parquet"
SAMPLES_FILE = "samples.parquet"

RAW = 0
"""Resolution of a block holding the samples as written."""

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class BlockFormatError(StorageError):
    """A block whose `meta.json` or Parquet files cannot be understood."""


def new_block_id(now_ms: int | None = None) -> str:
    """A fresh ULID: sortable by creation time, unique without coordination."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    out = []
    for _ in range(26):
        out.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def block_time_ms(block_id: str) -> int:
    """The creation time encoded in a ULID."""
    value = 0
    for ch in block_id[:10]:
        value = value * 32 + _CROCKFORD.index(ch)
    return value


def is_block_id(text: str) -> bool:
    return len(text) == 26 and all(c in _CROCKFORD for c in text)


@dataclass(frozen=True, slots=True)
class BlockFile:
    """One file of a block: its name, size and SHA-256 (checked after upload)."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class BlockMeta:
    """What `meta.json` says about a block (times are inclusive ms of actual samples)."""

    id: str
    min_time: int
    max_time: int
    series: int
    samples: int
    clusters: tuple[str, ...] = ()
    resolution_ms: int = RAW
    kind: str = "cut"
    """How it was made: cut (from the head), late (late samples for an older range),
    flush (an admin flush), compacted, downsampled."""
    range_start: int = 0
    range_end: int = 0
    """The [start, end) time range the block was made for (samples lie inside)."""
    sources: tuple[str, ...] = ()
    """Blocks this one replaces (compacted) or was computed from (downsampled)."""
    origin: str = ""
    """Id of the oldest block its samples come from: of two blocks holding the same
    sample timestamp, the one with the older origin was written first and wins."""
    files: tuple[BlockFile, ...] = ()
    schema_version: int = SCHEMA_VERSION
    created_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    @property
    def prefix(self) -> str:
        return f"{BLOCKS_PREFIX}{self.id}/"

    def key(self, name: str) -> str:
        """Object key of one of this block's files."""
        return f"{BLOCKS_PREFIX}{self.id}/{name}"

    def file(self, name: str) -> BlockFile:
        for f in self.files:
            if f.name == name:
                return f
        raise BlockFormatError(f"block {self.id} has no file {name!r} in its meta.json")

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def overlaps(self, start_ms: int, end_ms: int) -> bool:
        return self.max_time >= start_ms and self.min_time <= end_ms

    def with_files(self, files: tuple[BlockFile, ...]) -> BlockMeta:
        return replace(self, files=files)

    def to_json(self) -> bytes:
        data = asdict(self)
        data["files"] = [asdict(f) for f in self.files]
        return json.dumps(data, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes, *, where: str = "") -> BlockMeta:
        """Parse `meta.json`; BlockFormatError naming `where` if it is not one we can read."""
        try:
            data: dict[str, Any] = json.loads(raw)
            version = int(data.get("schema_version", -1))
            if version != SCHEMA_VERSION:
                raise BlockFormatError(
                    f"{where}: schema version {version} is not supported (want {SCHEMA_VERSION})"
                )
            files = tuple(BlockFile(**f) for f in data.pop("files", ()))
            data["clusters"] = tuple(data.get("clusters", ()))
            data["sources"] = tuple(data.get("sources", ()))
            return cls(**data, files=files)
        except BlockFormatError:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            raise BlockFormatError(f"{where}: not a valid meta.json ({exc})") from None
