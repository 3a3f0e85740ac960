"""WAL record framing: what one logged remote-write request looks like on disk.

    frame   = length:u32le  crc:u32le  payload            (crc = CRC-32 of payload)
    payload = version:u8  flags:u8  cluster_len:u16le  now_ms:i64le  n_skip:u32le
              cluster  skip:u32le[n_skip]  body

`body` is the snappy-compressed WriteRequest exactly as received. `cluster` is
the writer identity the request was appended under (flag bit 0 set; absent for
a writer that keeps the sent labels). `now_ms` is the wall clock at append
time, so that replay judges "too far in the future" as the live append did.
`skip` lists the series (by index in the request) that the live append
refused for the series limit: a 429 told the sender they were not written, so
replay must not write them either (replay does not apply the limit itself,
because series that retention removed meanwhile are still counted then).

`version` 2 has the same layout and one more flag: bit 1 (`FLAG_RW2`) says
`body` is a remote-write 2.0 `io.prometheus.write.v2.Request` (snappy, as
received). Frames without that flag are still written as version 1, byte for
byte as before, so a segment without 2.0 records reads in an older binary.
Any change to this layout is a new version: the writer writes it, and replay
keeps decoding the older ones, which `tests/storage/wal/data/v<N>/` pins with
a segment of each.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

HEADER = struct.Struct("<II")
PAYLOAD_HEAD = struct.Struct("<BBHqI")
VERSION = 2
VERSIONS = (1, 2)
FLAG_CLUSTER = 1
FLAG_RW2 = 2
MAX_PAYLOAD = 1 << 30
"""Larger lengths are not something this writer produces: the frame is garbage."""


@dataclass(frozen=True, slots=True)
class Record:
    """One logged append: the writer identity, its wall clock, and the request body."""

    cluster: str | None
    now_ms: int
    body: bytes
    skip: tuple[int, ...] = ()
    """Series indexes refused by the live append for the series limit."""
    body_format: int = 1
    """Remote-write major version of `body`: 1 or 2."""


class FrameError(ValueError):
    """A frame that does not decode; the message says what is wrong with it."""


def encode_frame(
    cluster: str | None,
    now_ms: int,
    body: bytes,
    skip: Sequence[int] = (),
    body_format: int = 1,
) -> bytes:
    """The bytes of one frame (header + payload); version 1 unless the body is 2.0."""
    name = b"" if cluster is None else cluster.encode("utf-8", "surrogateescape")
    if len(name) > 0xFFFF:
        raise ValueError("cluster name longer than 65535 bytes")
    flags = FLAG_CLUSTER if cluster is not None else 0
    if body_format == 2:
        flags |= FLAG_RW2
    version = VERSION if flags & FLAG_RW2 else 1
    head = PAYLOAD_HEAD.pack(version, flags, len(name), now_ms, len(skip))
    skipped = struct.pack(f"<{len(skip)}I", *skip) if skip else b""
    crc = zlib.crc32(body, zlib.crc32(skipped, zlib.crc32(name, zlib.crc32(head))))
    length = len(head) + len(name) + len(skipped) + len(body)
    return b"".join((HEADER.pack(length, crc), head, name, skipped, body))


def decode_payload(payload: memoryview) -> Record:
    """The record in a payload whose CRC already checked out."""
    if len(payload) < PAYLOAD_HEAD.size:
        raise FrameError(f"payload of {len(payload)} bytes is shorter than its header")
    version, flags, name_len, now_ms, n_skip = PAYLOAD_HEAD.unpack_from(payload)
    if version not in VERSIONS:
        raise FrameError(f"unknown record version {version}")
    start = PAYLOAD_HEAD.size
    body_at = start + name_len + 4 * n_skip
    if body_at > len(payload):
        raise FrameError(
            f"cluster name of {name_len} bytes and {n_skip} skipped series run past the payload"
        )
    cluster = (
        bytes(payload[start : start + name_len]).decode("utf-8", "surrogateescape")
        if flags & FLAG_CLUSTER
        else None
    )
    skip = struct.unpack_from(f"<{n_skip}I", payload, start + name_len) if n_skip else ()
    body_format = 2 if version >= 2 and flags & FLAG_RW2 else 1
    return Record(cluster, now_ms, bytes(payload[body_at:]), skip, body_format)
