"""Walking a request's serialized series with numpy, all series at once.

upb parses a WriteRequest into one bytes object per TimeSeries; these are
laid end to end (`join_series`) and walked one step per field position for
all series together: where each series' Label fields end (those bytes are its
series key) and where each Label field starts (`walk_labels`), then where
every Sample field is (`walk_samples`), with per-series Python work limited
to cutting out the key. Layouts these walks do not cover return None, and the
codec takes upb's exact but slower views instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from remote_write.samples import PAD


@dataclass(frozen=True, slots=True)
class JoinedSeries:
    """A request's serialized TimeSeries laid end to end, each followed by a zero
    byte, `PAD` zero bytes after the last: series i is `data[starts[i]:ends[i]]`,
    and `buf` views `data`."""

    data: bytes
    buf: NDArray[np.uint8]
    starts: NDArray[np.int64]
    ends: NDArray[np.int64]


def join_series(series: Sequence[bytes]) -> JoinedSeries:
    """The serialized series of a request, joined for walking (see `JoinedSeries`)."""
    chunks = list(series)
    lengths = np.fromiter(map(len, chunks), dtype=np.int64, count=len(chunks))
    chunks.append(bytes(PAD))  # reads a few bytes past a series' end stay inside
    # A zero byte after each series: no field tag, so a walk stops at a series' end.
    data = b"\x00".join(chunks)
    ends = np.cumsum(lengths + 1) - 1
    return JoinedSeries(data, np.frombuffer(data, dtype=np.uint8), ends - lengths, ends)


def series_keys(joined: JoinedSeries, label_ends: NDArray[np.int64]) -> list[bytes]:
    """Each series' Label fields, as one bytes object: its series key."""
    data = joined.data
    return [data[a:b] for a, b in zip(joined.starts.tolist(), label_ends.tolist(), strict=True)]


@dataclass(frozen=True, slots=True)
class LabelFields:
    """Where the Label fields of a request's series start, as `walk_labels` found
    them: at step k, series i has a k-th label where `on[i]`, starting at `at[i]`
    in the joined series; series i begins at `starts[i]`."""

    steps: list[tuple[NDArray[np.bool_], NDArray[np.int64]]]
    starts: NDArray[np.int64]


def walk_labels(
    joined: JoinedSeries,
) -> tuple[NDArray[np.int64], list[tuple[NDArray[np.bool_], NDArray[np.int64]]]] | None:
    """Where each series' leading Label fields end, and where each of them starts
    (see `LabelFields`); None for labels of 16 KiB or more, or a field that runs
    past its series' end.

    One numpy step per label position, for all series at once.
    """
    buf, ends = joined.buf, joined.ends
    after = buf[1:]  # after.take(p) is the byte after p
    pos = joined.starts
    steps = []
    while True:
        # Clipped reads: a field running past its series' end (checked below) can
        # send a position anywhere, even past the buffer.
        on = buf.take(pos, mode="clip") == 0x0A  # the zero byte after a series stops it
        if not on.any():
            break
        size = after.take(pos, mode="clip")
        stop = pos + size
        stop += 2
        if size.max() >= 0x80:  # two-byte lengths (or a byte past a walk's end)
            long = np.flatnonzero(on & (size >= 0x80))
            b2 = buf.take(pos[long] + 2, mode="clip").astype(np.int64)
            if (b2 >= 0x80).any():
                return None  # a label of 16 KiB or more
            stop[long] = pos[long] + 3 + ((size[long] & 0x7F) | (b2 << 7))
        steps.append((on, pos))
        pos = np.where(on, stop, pos)
    if (pos > ends).any():
        return None  # a field running past its series' end
    return pos, steps


MAX_SAMPLE_STEPS = 16
"""Series with more samples than this in one request take the general path."""


def walk_samples(
    joined: JoinedSeries, label_ends: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]] | None:
    """Per series its sample count, and the start and length of every Sample
    message (series by series, in order), when the rest of each series after
    its labels is nothing but Sample fields with one-byte lengths and at most
    MAX_SAMPLE_STEPS of them; else None.

    One numpy step per sample position, for all series at once.
    """
    buf, ends = joined.buf, joined.ends
    uniform = _uniform_samples(joined, label_ends)
    if uniform is not None:
        return uniform
    pos = label_ends
    steps: list[tuple[NDArray[np.bool_], NDArray[np.int64]]] = []
    while True:
        on = pos < ends
        if not on.any():
            break
        if len(steps) == MAX_SAMPLE_STEPS:
            return None
        size = buf[pos + 1].astype(np.int64)
        if not ((buf[pos] == 0x12) | ~on).all() or not ((size < 0x80) | ~on).all():
            return None
        steps.append((on, pos))
        pos = np.where(on, pos + 2 + size, pos)
        if (pos > ends).any():
            return None
    if len(steps) == 1:  # one sample per series, in every series
        on, at = steps[0]
        if on.all():
            starts = at + 2
            return on.astype(np.int64), starts, buf[starts - 1].astype(np.int64)
    counts = np.zeros(len(ends), dtype=np.int64)
    for on, _ in steps:
        counts += on
    if len(steps) > 1 and (counts == len(steps)).all():  # k samples in every series
        starts = np.stack([at for _, at in steps], axis=1).ravel() + 2
        return counts, starts, buf[starts - 1].astype(np.int64)
    offsets = np.zeros(len(ends), dtype=np.int64)
    np.cumsum(counts[:-1], out=offsets[1:])
    starts = np.empty(int(counts.sum()), dtype=np.int64)
    for k, (on, at) in enumerate(steps):
        active = np.flatnonzero(on)
        starts[offsets[active] + k] = at[active] + 2
    return counts, starts, buf[starts - 1].astype(np.int64)


def _uniform_samples(
    joined: JoinedSeries, label_ends: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]] | None:
    """`walk_samples` when all Sample fields of the request have one size (the
    usual case): counts from the byte counts, every field's tag and length
    checked at once; None otherwise."""
    buf, ends = joined.buf, joined.ends
    rest = ends - label_ends
    some = np.flatnonzero(rest)
    if not len(some):
        return None
    size = int(buf[label_ends[some[0]] + 1])
    if size >= 0x80:
        return None
    field = size + 2
    counts = rest // field
    if not (counts * field == rest).all():
        return None
    total = int(counts.sum())
    ends_k = np.cumsum(counts)
    starts = (
        np.repeat(label_ends + 2 - (ends_k - counts) * field, counts)
        + np.arange(total, dtype=np.int64) * field
    )
    if not ((buf[starts - 2] == 0x12).all() and (buf[starts - 1] == size).all()):
        return None
    return counts, starts, np.full(total, size, dtype=np.int64)


def split_series(
    joined: JoinedSeries, label_ends: NDArray[np.int64], sample_len: NDArray[np.int64]
) -> NDArray[np.int64] | None:
    """Sample counts of the joined series whose Label fields end at `label_ends`
    and whose samples (all of them, in order) have the byte lengths `sample_len`;
    None if the rest of some series is not just its samples.

    If the byte counts of all rests and of all Sample fields agree, nothing else
    is there, and each series owns the run of samples that fills its rest.
    """
    if not len(label_ends):
        return np.zeros(0, dtype=np.int64)
    field_size = sample_len + 2 + (sample_len >= 0x80) + (sample_len >= 0x4000)
    rest = joined.ends - label_ends
    if int(rest.sum()) != int(field_size.sum()) or (sample_len >= 0x200000).any():
        return None
    upto = np.searchsorted(np.cumsum(field_size), np.cumsum(rest), side="right")
    counts = upto.copy()
    counts[1:] -= upto[:-1]
    return counts


def walk_histograms(
    joined: JoinedSeries, label_ends: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]] | None:
    """Per series its native histogram count, and the start and end of every
    Histogram message (series by series, in order), when the rest of each
    series after its labels is nothing but Histogram fields (tag 0x22, lengths
    under 16 KiB), at most MAX_SAMPLE_STEPS per series; else None.

    One numpy step per histogram position, for all series at once.
    """
    buf, ends = joined.buf, joined.ends
    pos = label_ends
    steps: list[tuple[NDArray[np.bool_], NDArray[np.int64], NDArray[np.int64]]] = []
    while True:
        on = pos < ends
        if not on.any():
            break
        if len(steps) == MAX_SAMPLE_STEPS:
            return None
        at = np.where(on, pos, 0)
        if not ((buf[at] == 0x22) | ~on).all():
            return None
        b1 = buf[at + 1].astype(np.int64)
        two = b1 >= 0x80
        b2 = buf[at + 2].astype(np.int64)
        if (two & (b2 >= 0x80) & on).any():
            return None
        size = np.where(two, (b1 & 0x7F) | (b2 << 7), b1)
        start = at + 2 + two
        steps.append((on, start, start + size))
        pos = np.where(on, start + size, pos)
        if (pos > ends).any():
            return None
    if not steps:
        return None
    counts = np.zeros(len(ends), dtype=np.int64)
    for on, _, _ in steps:
        counts += on
    offsets = np.zeros(len(ends), dtype=np.int64)
    np.cumsum(counts[:-1], out=offsets[1:])
    total = int(counts.sum())
    h_start = np.empty(total, dtype=np.int64)
    h_end = np.empty(total, dtype=np.int64)
    for k, (on, s, e) in enumerate(steps):
        active = np.flatnonzero(on)
        h_start[offsets[active] + k] = s[active]
        h_end[offsets[active] + k] = e[active]
    return counts, h_start, h_end
