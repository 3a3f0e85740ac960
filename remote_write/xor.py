"""Prometheus XOR (Gorilla) chunks, encoded for all series at once with numpy.

A chunk holds up to `SAMPLES_PER_CHUNK` samples of one series: a big-endian
uint16 sample count, then a bit stream. Sample 0 writes its timestamp as a
signed varint and its value as 64 raw bits; sample 1 the timestamp delta as
an unsigned varint; later samples the delta of deltas in one of five buckets
(`0`, `10`+14 bits, `110`+17, `1110`+20, `1111`+64). From sample 1 on the
value is XORed with the previous one: `0` when equal, else `1` and either
`0` + the meaningful bits inside the window last announced, or `1` + a new
window (5 bits of leading zeros, at most 31; 6 bits of length, 64 as 0) +
its bits.

Which samples announce a new window is the encoder's choice; decoders follow
whatever the stream says. Prometheus keeps the announced window while each
XOR fits inside it, which makes the choice depend on every earlier sample.
Here a sample announces a window unless its XOR fits inside the previous
non-zero XOR's own window. Then it also fits inside the announced one (which
contains that previous window, by induction), so reuse is always valid, and
each choice depends only on two neighbours: every decision, field and bit
position is one numpy operation over all samples of all chunks. The cost is
a few bits per sample where Prometheus would have kept a wider window.

The bit stream is assembled from (value, width) fields: a cumulative sum of
widths gives every field's bit position, and each field is ORed into the
one or two 64-bit words it touches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

SAMPLES_PER_CHUNK = 120
"""Prometheus cuts head chunks at 120 samples; readers expect chunks of about that size."""

_U64 = np.uint64
_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)

# Field columns of the (samples x fields) table, in stream order. Adjacent
# short fields are merged into one (e.g. a bucket code and its delta of
# deltas), so a usual sample has two or three fields.
_HEADER = 0  # uint16 sample count (sample 0 only)
_VARINT, _VARINT_REST = 1, 2  # varint bytes 0-7, and 8-9
_DOD, _DOD_WIDE = 3, 4  # bucket code + delta of deltas; the 64-bit bucket's value
_V_HEAD, _V_BITS = 5, 6  # value control (+ window), then its meaningful bits
_FIELDS = 7


@dataclass(frozen=True, slots=True)
class XorChunks:
    """Chunks of many series: chunk `k` belongs to series `series[k]`, covers
    `[min_t[k], max_t[k]]` and its bytes are `data[k]`; chunks are in series
    order, then time order."""

    series: NDArray[np.int64]
    min_t: NDArray[np.int64]
    max_t: NDArray[np.int64]
    data: list[bytes]


def encode_xor_chunks(
    offsets: NDArray[np.int64],
    timestamps: NDArray[np.int64],
    values: NDArray[np.float64],
    *,
    samples_per_chunk: int = SAMPLES_PER_CHUNK,
) -> XorChunks:
    """XOR chunks for CSR series (series `i` owns `[offsets[i], offsets[i+1])`, sorted by time)."""
    n = len(timestamps)
    counts = np.diff(offsets)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return XorChunks(empty, empty, empty, [])
    series_of = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    pos_in_series = np.arange(n, dtype=np.int64) - np.repeat(offsets[:-1], counts)
    chunk_in_series = pos_in_series // samples_per_chunk
    p = pos_in_series - chunk_in_series * samples_per_chunk  # position in its chunk
    starts = np.flatnonzero(p == 0)
    chunk_of = np.cumsum(p == 0) - 1
    chunk_sizes = np.diff(np.append(starts, n))

    ts = timestamps.astype(np.int64, copy=False)
    bits = values.astype(np.float64, copy=False).view(np.uint64)
    vals = np.zeros((n, _FIELDS), dtype=np.uint64)
    width = np.zeros((n, _FIELDS), dtype=np.int64)

    first = p == 0
    second = p == 1
    later = p >= 2

    # Header: the chunk's sample count.
    vals[first, _HEADER] = chunk_sizes.astype(np.uint64)
    width[first, _HEADER] = 16

    # Timestamps: varint of t (zigzag) for sample 0, uvarint of the delta for sample 1.
    prev_ts = np.empty_like(ts)
    prev_ts[0] = ts[0]
    prev_ts[1:] = ts[:-1]
    delta = ts - prev_ts
    varint_of = np.zeros(n, dtype=np.uint64)
    t0 = ts[first]
    varint_of[first] = (t0.astype(np.uint64) << _U64(1)) ^ (t0 >> 63).astype(np.uint64)
    varint_of[second] = delta[second].astype(np.uint64)
    has_varint = first | second
    _varint_fields(varint_of, has_varint, vals, width)

    # Later samples: delta of deltas in buckets.
    prev_delta = np.zeros_like(delta)
    prev_delta[1:] = delta[:-1]
    dod = delta - prev_delta
    _dod_fields(dod, later, vals, width)

    # Values: raw for sample 0, XOR with the previous one after.
    vals[first, _V_HEAD] = bits[first]
    width[first, _V_HEAD] = 64
    prev_bits = np.empty_like(bits)
    prev_bits[0] = bits[0]
    prev_bits[1:] = bits[:-1]
    xor = bits ^ prev_bits
    _xor_fields(xor, ~first, chunk_of, vals, width)

    # Bit positions: each chunk starts on a 64-bit word boundary.
    sample_bits = width.sum(axis=1)
    chunk_bits = np.add.reduceat(sample_bits, starts)
    aligned = np.zeros(len(starts), dtype=np.int64)
    np.cumsum((chunk_bits[:-1] + 63) // 64 * 64, out=aligned[1:])
    sample_end = np.cumsum(sample_bits)
    chunk_first_bit = sample_end[starts] - sample_bits[starts]
    field_pos = np.cumsum(width, axis=1) - width
    field_pos += (sample_end - sample_bits + (aligned - chunk_first_bit)[chunk_of])[:, None]
    total_words = int(aligned[-1] + chunk_bits[-1] + 63) // 64 + 1
    stream = _pack(vals.reshape(-1), width.reshape(-1), field_pos.reshape(-1), total_words)

    byte_start = (aligned // 8).tolist()
    byte_len = ((chunk_bits + 7) // 8).tolist()
    data = [stream[a : a + b] for a, b in zip(byte_start, byte_len, strict=True)]
    last = np.append(starts[1:], n) - 1
    return XorChunks(series_of[starts], ts[starts], ts[last], data)


def _varint_fields(
    u: NDArray[np.uint64], rows: NDArray[np.bool_], vals: NDArray, width: NDArray
) -> None:
    """Unsigned varint bytes of `u`: bytes 0-7 as one field, bytes 8-9 as another."""
    idx = np.flatnonzero(rows)
    x = u[idx]
    size = np.ones(len(x), dtype=np.int64)
    for k in range(1, 10):
        size += x >= (_U64(1) << _U64(7 * k))
    head = np.zeros(len(x), dtype=np.uint64)
    rest = np.zeros(len(x), dtype=np.uint64)
    for k in range(10):
        active = size > k
        byte = ((x >> _U64(7 * k)) & _U64(0x7F)) | ((size > k + 1).astype(np.uint64) << _U64(7))
        byte = np.where(active, byte, _U64(0))
        if k < 8:
            head = np.where(active, (head << _U64(8)) | byte, head)
        else:
            rest = np.where(active, (rest << _U64(8)) | byte, rest)
    vals[idx, _VARINT] = head
    width[idx, _VARINT] = 8 * np.minimum(size, 8)
    vals[idx, _VARINT_REST] = rest
    width[idx, _VARINT_REST] = 8 * np.maximum(size - 8, 0)


def _dod_fields(
    dod: NDArray[np.int64], rows: NDArray[np.bool_], vals: NDArray, width: NDArray
) -> None:
    idx = np.flatnonzero(rows)
    d = dod[idx]
    ctrl = np.full(len(d), 0b1111, dtype=np.uint64)
    ctrl_w = np.full(len(d), 4, dtype=np.int64)
    val_w = np.full(len(d), 64, dtype=np.int64)
    for code, code_w, nbits in ((0b1110, 4, 20), (0b110, 3, 17), (0b10, 2, 14)):
        fits = (d >= -((1 << (nbits - 1)) - 1)) & (d <= 1 << (nbits - 1))
        ctrl[fits] = code
        ctrl_w[fits] = code_w
        val_w[fits] = nbits
    zero = d == 0
    ctrl[zero] = 0
    ctrl_w[zero] = 1
    val_w[zero] = 0
    wide = val_w == 64
    short_w = np.where(wide, 0, val_w)
    bucket = d.astype(np.uint64) & _mask(short_w)
    vals[idx, _DOD] = (ctrl << short_w.astype(np.uint64)) | bucket
    width[idx, _DOD] = ctrl_w + short_w
    vals[idx[wide], _DOD_WIDE] = d[wide].astype(np.uint64)
    width[idx[wide], _DOD_WIDE] = 64


def _xor_fields(
    xor: NDArray[np.uint64],
    rows: NDArray[np.bool_],
    chunk_of: NDArray[np.int64],
    vals: NDArray,
    width: NDArray,
) -> None:
    """Value fields of samples 1.. of each chunk (see the module docstring for the choice)."""
    idx = np.flatnonzero(rows)
    x = xor[idx]
    zero = x == 0
    vals[idx[zero], _V_HEAD] = 0
    width[idx[zero], _V_HEAD] = 1
    nz = idx[~zero]
    if not len(nz):
        return
    d = xor[nz]
    lead = np.minimum(_clz(d), 31)
    trail = _ctz(d)
    chunk = chunk_of[nz]
    # The previous non-zero XOR of the same chunk, if any.
    same_chunk_prev = np.zeros(len(nz), dtype=bool)
    same_chunk_prev[1:] = chunk[1:] == chunk[:-1]
    prev_lead = np.roll(lead, 1)
    prev_trail = np.roll(trail, 1)
    fits = same_chunk_prev & (lead >= prev_lead) & (trail >= prev_trail)
    new = ~fits
    # The window in force: the one announced by the last `new` sample (same chunk by construction).
    last_new = np.maximum.accumulate(np.where(new, np.arange(len(nz)), 0))
    win_lead = np.where(new, lead, lead[last_new])
    win_trail = np.where(new, trail, trail[last_new])
    sig = 64 - win_lead - win_trail
    head = np.where(
        new,
        (_U64(0b11) << _U64(11))
        | (lead.astype(np.uint64) << _U64(6))
        | (sig & 63).astype(np.uint64),
        _U64(0b10),
    )
    vals[nz, _V_HEAD] = head
    width[nz, _V_HEAD] = np.where(new, 13, 2)
    vals[nz, _V_BITS] = d >> win_trail.astype(np.uint64)
    width[nz, _V_BITS] = sig


def _mask(w: NDArray[np.int64]) -> NDArray[np.uint64]:
    """All-ones masks `w` bits wide (0..64)."""
    wu = w.astype(np.uint64)
    safe = np.minimum(wu, _U64(63))
    m = (_U64(1) << safe) - _U64(1)
    return np.where(w >= 64, _ONES, m)


def _clz(x: NDArray[np.uint64]) -> NDArray[np.int64]:
    """Leading zero bits of non-zero uint64 values."""
    y = x.copy()
    for s in (1, 2, 4, 8, 16, 32):
        y |= y >> _U64(s)
    return 64 - np.bitwise_count(y).astype(np.int64)


def _ctz(x: NDArray[np.uint64]) -> NDArray[np.int64]:
    """Trailing zero bits of non-zero uint64 values."""
    low = x & (~x + _U64(1))
    return np.bitwise_count(low - _U64(1)).astype(np.int64)


def _pack(
    vals: NDArray[np.uint64], width: NDArray[np.int64], pos: NDArray[np.int64], words: int
) -> bytes:
    """A big-endian bit stream with field k (`vals[k]`, `width[k]` bits) at bit `pos[k]`.

    Every value must fit its width (the producers above make sure); fields
    with no bits set are skipped, since they add nothing to the stream.
    """
    used = vals != 0
    v = vals[used]
    w = width[used]
    p = pos[used]
    word = p >> 6
    off = p & 63
    end = off + w
    out = np.zeros(words, dtype=np.uint64)
    inside = end <= 64
    # The part of each field in its first word (all of it when it fits).
    first_part = np.where(
        inside,
        v << (64 - np.minimum(end, 64)).astype(np.uint64),
        v >> (np.maximum(end, 64) - 64).astype(np.uint64),
    )
    _or_into(out, word, first_part)
    cross = ~inside
    if cross.any():
        _or_into(out, word[cross] + 1, v[cross] << (128 - end[cross]).astype(np.uint64))
    return out.byteswap().tobytes()


def _or_into(out: NDArray[np.uint64], at: NDArray[np.int64], parts: NDArray[np.uint64]) -> None:
    """`out[at[k]] |= parts[k]` for all k; `at` is non-decreasing (fields come in stream order)."""
    if not len(at):
        return
    starts = np.flatnonzero(np.concatenate(([True], at[1:] != at[:-1])))
    out[at[starts]] |= np.bitwise_or.reduceat(parts, starts)
