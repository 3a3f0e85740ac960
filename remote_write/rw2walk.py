"""The usual remote write 2.0 series layout, walked with a few numpy steps.

Prometheus (and any encoder writing fields in number order) lays out a
TimeSeries as: `labels_refs` (one packed field), its Sample fields, the
Metadata message, and the created timestamp when set. `walk_usual` finds
those fields for all series at once with one cheap step per field position
(a tag byte compare and a one- or two-byte length each), instead of the
general field scan (`pbscan.scan_fields`), whose steps must handle any field
number and wire type. Anything else (histograms, exemplars, unknown fields,
long fields, samples of several sizes in a series of more than MAX_SAMPLES)
returns None and the
caller takes the general scan, which is exact for every layout.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from remote_write.errors import DecodeError
from remote_write.pbscan import WIRE_LEN, WIRE_VARINT, Fields
from remote_write.pbwalk import ragged_index, read_varints, words_of

MAX_SAMPLES = 16
"""Sample fields per series this walk follows; more take the general scan."""

_REFS, _SAMPLE, _METADATA, _CREATED = 0x0A, 0x12, 0x2A, 0x30


def walk_usual(
    buf: NDArray[np.uint8], starts: NDArray[np.int64], ends: NDArray[np.int64]
) -> Fields | None:
    """The fields of every series (as `scan_fields` gives them, grouped by field
    number), when all series have the usual layout; else None."""
    n = len(starts)
    if not n or not (buf[starts] == _REFS).all():
        return None
    refs_start, refs_end = _length_delimited(buf, starts)
    if refs_start is None or refs_end is None:
        return None
    pos = refs_end
    steps: list[tuple[NDArray[np.bool_], NDArray[np.int64]]] = []
    long = None
    while True:
        on = buf.take(pos, mode="clip") == _SAMPLE
        if not on.any():
            break
        if len(steps) == MAX_SAMPLES:
            long = _long_runs(buf, pos, ends, on)
            if long is None:
                return None
            pos = long[2]
            break
        size = buf.take(pos + 1, mode="clip").astype(np.int64)
        if (size[on] >= 0x80).any():
            return None
        steps.append((on, pos + 2))
        pos = np.where(on, pos + 2 + size, pos)
    meta_on = buf.take(pos, mode="clip") == _METADATA
    meta_size = buf.take(pos + 1, mode="clip").astype(np.int64)
    if (meta_size[meta_on] >= 0x80).any():
        return None
    meta_rows = np.flatnonzero(meta_on)
    meta_start = pos[meta_rows] + 2
    meta_end = meta_start + meta_size[meta_rows]
    pos = np.where(meta_on, pos + 2 + meta_size, pos)
    ct_on = buf.take(pos, mode="clip") == _CREATED
    ct_rows = np.flatnonzero(ct_on)
    ct_value = np.zeros(len(ct_rows), dtype=np.uint64)
    ct_start = pos[ct_rows] + 1
    ct_end = ct_start
    if len(ct_rows):
        try:
            ct_value, width = read_varints(buf, words_of(buf), ct_start)
        except DecodeError:  # over 10 bytes: the general scan names it
            return None
        ct_end = ct_start + width
        pos = pos.copy()
        pos[ct_rows] = ct_end
    if not (pos == ends).all():
        return None
    s_msg, s_start = _samples_in_series_order(steps, n)
    if long is not None:  # the rest of the long series' samples, then series order again
        s_msg = np.concatenate([s_msg, long[0]])
        s_start = np.concatenate([s_start, long[1]])
        order = np.lexsort((s_start, s_msg))
        s_msg, s_start = s_msg[order], s_start[order]
    s_end = s_start + buf[s_start - 1].astype(np.int64)
    parts = [
        (np.arange(n, dtype=np.int64), 1, WIRE_LEN, refs_start, refs_end, None),
        (s_msg, 2, WIRE_LEN, s_start, s_end, None),
        (meta_rows, 5, WIRE_LEN, meta_start, meta_end, None),
        (ct_rows, 6, WIRE_VARINT, ct_start, ct_end, ct_value),
    ]
    return Fields(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([np.full(len(p[0]), p[1], dtype=np.int64) for p in parts]),
        np.concatenate([np.full(len(p[0]), p[2], dtype=np.int64) for p in parts]),
        np.concatenate([p[3] for p in parts]),
        np.concatenate([p[4] for p in parts]),
        np.concatenate(
            [np.zeros(len(p[0]), dtype=np.uint64) if p[5] is None else p[5] for p in parts]
        ),
    )


def _long_runs(
    buf: NDArray[np.uint8],
    pos: NDArray[np.int64],
    ends: NDArray[np.int64],
    on: NDArray[np.bool_],
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]] | None:
    """The remaining Sample fields of series with more than MAX_SAMPLES (a sender
    catching up): (series, payload start) of each, and every series' position after
    its samples. Each such series is checked in one step: its remaining samples
    must all have the size of the next one (timestamps of one era do), else None.
    """
    pos = pos.copy()
    msgs, starts = [], []
    for i in np.flatnonzero(on).tolist():
        at = int(pos[i])
        size = int(buf[at + 1])
        if size >= 0x80:
            return None
        field = size + 2
        cand = at + np.arange((int(ends[i]) - at) // field, dtype=np.int64) * field
        good = (buf[cand] == _SAMPLE) & (buf[cand + 1] == size)
        count = len(cand) if good.all() else int(np.argmin(good))
        if buf[at + count * field] == _SAMPLE:
            return None  # samples of another size follow: the general scan
        msgs.append(np.full(count, i, dtype=np.int64))
        starts.append(cand[:count] + 2)
        pos[i] = at + count * field
    return np.concatenate(msgs), np.concatenate(starts), pos


def _length_delimited(
    buf: NDArray[np.uint8], pos: NDArray[np.int64]
) -> tuple[NDArray[np.int64] | None, NDArray[np.int64] | None]:
    """Payload start and end of the field whose tag is at `pos` (lengths under 16 KiB)."""
    first = buf[pos + 1].astype(np.int64)
    start = pos + 2
    length = first
    two = first >= 0x80
    if two.any():
        second = buf[pos + 2].astype(np.int64)
        if (second[two] >= 0x80).any():
            return None, None
        length = np.where(two, (first & 0x7F) | (second << 7), first)
        start = start + two
    return start, start + length


def _samples_in_series_order(
    steps: list[tuple[NDArray[np.bool_], NDArray[np.int64]]], n: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(series, payload start) of every Sample field, series after series."""
    if not steps:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if all(on.all() for on, _ in steps):  # k samples in every series (the usual)
        starts = np.stack([at for _, at in steps], axis=1).ravel()
        return np.repeat(np.arange(n, dtype=np.int64), len(steps)), starts
    counts = np.zeros(n, dtype=np.int64)
    for on, _ in steps:
        counts += on
    offsets = np.zeros(n, dtype=np.int64)
    np.cumsum(counts[:-1], out=offsets[1:])
    starts = np.empty(int(counts.sum()), dtype=np.int64)
    for k, (on, at) in enumerate(steps):
        active = np.flatnonzero(on)
        starts[offsets[active] + k] = at[active]
    return np.repeat(np.arange(n, dtype=np.int64), counts), starts


def signature_usual(buf: NDArray[np.uint8], f: Fields, starts: NDArray[np.int64]) -> bytes:
    """The bytes of every series' `labels_refs` field and Metadata field (tags and
    lengths included), series after series, of a request in the usual layout (its
    fields as `walk_usual` found them): equal for two requests exactly when their
    series have the same references and metadata in the same order (each series
    starts with its one `labels_refs` field)."""
    refs = f.pick(1, WIRE_LEN)
    meta = f.pick(5, WIRE_LEN)
    # The usual layout: labels_refs is the series' first field, a Metadata field's
    # tag and one-byte length are the two bytes before its payload.
    if len(meta) == len(refs):  # metadata with every series (the usual): interleave
        first = np.empty(2 * len(refs), dtype=np.int64)
        last = np.empty_like(first)
        first[0::2], first[1::2] = starts[f.msg[refs]], f.start[meta] - 2
        last[0::2], last[1::2] = f.end[refs], f.end[meta]
    else:
        first = np.concatenate([starts[f.msg[refs]], f.start[meta] - 2])
        last = np.concatenate([f.end[refs], f.end[meta]])
        order = np.argsort(first, kind="stable")
        first, last = first[order], last[order]
    return buf[ragged_index(first, last - first)].tobytes()
