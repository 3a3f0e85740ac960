"""A plain, sample-by-sample XOR chunk decoder: the reference the numpy encoder is checked
against (and that checks chunks real Prometheus sends). Slow on purpose: one Python step
per bit field, so that it is obviously the format and nothing else."""

from __future__ import annotations

import struct


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def read(self, n: int) -> int:
        out = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3]
            out = (out << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return out

    def uvarint(self) -> int:
        result = shift = 0
        while True:
            b = self.read(8)
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7


def decode_xor_chunk(data: bytes) -> list[tuple[int, float]]:
    """(timestamp, value) pairs of one Prometheus XOR chunk."""
    count = struct.unpack(">H", data[:2])[0]
    bits = _Bits(data[2:])
    out: list[tuple[int, float]] = []
    t = delta = 0
    v = 0
    leading = trailing = 0
    for i in range(count):
        if i == 0:
            z = bits.uvarint()
            t = (z >> 1) ^ -(z & 1)
            v = bits.read(64)
        else:
            if i == 1:
                delta = bits.uvarint()
            else:
                n = 0
                for _ in range(4):
                    if not bits.read(1):
                        break
                    n += 1
                size = {0: 0, 1: 14, 2: 17, 3: 20, 4: 64}[n]
                dod = bits.read(size) if size else 0
                if size == 64:
                    dod = dod - (1 << 64) if dod >= 1 << 63 else dod
                elif size and dod > (1 << (size - 1)):
                    dod -= 1 << size
                delta += dod
            t += delta
            if bits.read(1):
                if bits.read(1):
                    leading = bits.read(5)
                    sig = bits.read(6) or 64
                    trailing = 64 - leading - sig
                sig = 64 - leading - trailing
                v ^= bits.read(sig) << trailing
        out.append((t, struct.unpack(">d", v.to_bytes(8, "big"))[0]))
    return out
