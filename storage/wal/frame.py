"""WAL record framing: what one logged remote-write request looks like on disk.

    frame   = length:u32le  crc:u32le  payload            (crc = CRC-32 of payload)
    payload = version:u8  flags:u8  cluster_len:u16le  now_ms:i64le  cluster  body

`body` is the snappy-compressed WriteRequest exactly as received. `cluster` is
the writer identity the request was appended under (flag bit 0 set; absent for
a writer that keeps the sent labels). `now_ms` is the wall clock at append
time, so that replay judges "too far in the future" as the live append did.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

HEADER = struct.Struct("<II")
PAYLOAD_HEAD = struct.Struct("<BBHq")
VERSION = 1
FLAG_CLUSTER = 1
MAX_PAYLOAD = 1 << 30
"""Larger lengths are not something this writer produces: the frame is garbage."""


@dataclass(frozen=True, slots=True)
class Record:
    """One logged append: the writer identity, its wall clock, and the request body."""

    cluster: str | None
    now_ms: int
    body: bytes


class FrameError(ValueError):
    """A frame that does not decode; the message says what is wrong with it."""


def encode_frame(cluster: str | None, now_ms: int, body: bytes) -> bytes:
    """The bytes of one frame (header + payload)."""
    name = b"" if cluster is None else cluster.encode("utf-8", "surrogateescape")
    if len(name) > 0xFFFF:
        raise ValueError("cluster name longer than 65535 bytes")
    head = PAYLOAD_HEAD.pack(VERSION, FLAG_CLUSTER if cluster is not None else 0, len(name), now_ms)
    crc = zlib.crc32(body, zlib.crc32(name, zlib.crc32(head)))
    length = len(head) + len(name) + len(body)
    return b"".join((HEADER.pack(length, crc), head, name, body))


def decode_payload(payload: memoryview) -> Record:
    """The record in a payload whose CRC already checked out."""
    if len(payload) < PAYLOAD_HEAD.size:
        raise FrameError(f"payload of {len(payload)} bytes is shorter than its header")
    version, flags, name_len, now_ms = PAYLOAD_HEAD.unpack_from(payload)
    if version != VERSION:
        raise FrameError(f"unknown record version {version}")
    start = PAYLOAD_HEAD.size
    if start + name_len > len(payload):
        raise FrameError(f"cluster name of {name_len} bytes runs past the payload")
    cluster = (
        bytes(payload[start : start + name_len]).decode("utf-8", "surrogateescape")
        if flags & FLAG_CLUSTER
        else None
    )
    return Record(cluster, now_ms, bytes(payload[start + name_len :]))
