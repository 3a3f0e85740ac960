"""The bulk histogram decoder against a naive reference (protobuf's own parser,
one message at a time), on random Histogram messages in any wire layout: fields
in any order, repeated fields packed, split or unpacked, fields missing in some
messages and not others, wide varints, negative numbers, NaNs."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remote_write.errors import DecodeError
from remote_write.histdecode import decode_histogram_messages
from remote_write.prompb import types_pb2
from tests.support.protowire import field, tag, varint, zigzag


def _double(number: int, v: float) -> bytes:
    return tag(number, 1) + struct.pack("<d", v)


def _span(offset: int, length: int) -> bytes:
    out = b""
    if offset:
        out += tag(1, 0) + varint(zigzag(offset) & 0xFFFFFFFF)
    if length:
        out += tag(2, 0) + varint(length)
    return out


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
anyfloat = st.floats(width=64)
int64s = st.integers(-(2**63), 2**63 - 1)


@st.composite
def histogram_fields(draw) -> list[bytes]:
    """One Histogram as a list of encoded field chunks, in the order they are sent."""
    floats = draw(st.booleans())
    schema = draw(st.sampled_from([-53, -4, -1, 0, 3, 8]))
    chunks: list[list[bytes]] = []  # groups whose inner order is kept; groups are shuffled

    def maybe(chunk: bytes) -> None:
        if draw(st.booleans()) or draw(st.booleans()):
            chunks.append([chunk])

    if floats:
        maybe(_double(2, draw(anyfloat)))
        maybe(_double(7, draw(finite)))
    else:
        maybe(tag(1, 0) + varint(draw(st.integers(0, 2**64 - 1))))
        maybe(tag(6, 0) + varint(draw(st.integers(0, 2**64 - 1))))
    maybe(_double(3, draw(anyfloat)))
    maybe(tag(4, 0) + varint(zigzag(schema)))
    maybe(_double(5, draw(finite)))
    maybe(tag(14, 0) + varint(draw(st.integers(0, 3))))
    maybe(tag(15, 0) + varint(draw(int64s)))
    for spans_no, deltas_no, counts_no in ((11, 12, 13), (8, 9, 10)):
        spans = draw(st.lists(st.tuples(st.integers(-500, 500), st.integers(0, 6)), max_size=4))
        n = sum(length for _, length in spans)
        if spans:
            chunks.append([field(spans_no, _span(o, ln)) for o, ln in spans])
        if floats:
            values = draw(st.lists(finite, min_size=n, max_size=n))
            enc = [struct.pack("<d", v) for v in values]
            chunks.append(_repeated(draw, counts_no, 1, enc))
        else:
            values = draw(st.lists(int64s, min_size=n, max_size=n))
            enc = [varint(zigzag(v)) for v in values]
            chunks.append(_repeated(draw, deltas_no, 0, enc))
    if schema == -53:
        bounds = draw(st.lists(finite, max_size=5))
        chunks.append(_repeated(draw, 16, 1, [struct.pack("<d", v) for v in bounds]))
    if draw(st.booleans()):  # an unknown field: skipped
        chunks.append([field(99, b"x" * draw(st.integers(0, 3)))])
    order = draw(st.permutations(range(len(chunks))))
    return [c for k in order for c in chunks[k]]


def _repeated(draw, number: int, wire: int, enc: list[bytes]) -> list[bytes]:
    """Repeated scalars as one packed field, several, or one field per element."""
    if not enc:
        return [field(number, b"")] if draw(st.booleans()) else []
    how = draw(st.sampled_from(["packed", "split", "unpacked"]))
    if how == "packed":
        return [field(number, b"".join(enc))]
    if how == "unpacked":
        return [tag(number, wire) + e for e in enc]
    cut = draw(st.integers(0, len(enc)))
    return [field(number, b"".join(enc[:cut])), field(number, b"".join(enc[cut:]))]


def _bits(v: float) -> int:
    return struct.unpack("<q", struct.pack("<d", v))[0]


def reference_row(raw: bytes) -> dict:
    """What one message decodes to, by protobuf's parser and the plain rules."""
    m = types_pb2.Histogram.FromString(raw)
    is_float = m.WhichOneof("count") == "count_float" or bool(
        len(m.positive_counts) or len(m.negative_counts)
    )
    row = {
        "count": m.count_float if m.WhichOneof("count") == "count_float" else float(m.count_int),
        "zero_count": m.zero_count_float
        if m.WhichOneof("zero_count") == "zero_count_float"
        else float(m.zero_count_int),
        "sum": m.sum,
        "zero_threshold": m.zero_threshold,
        "schema": m.schema,
        "timestamps": m.timestamp,
        "reset_hint": m.reset_hint,
        "float_counts": is_float,
        "custom_values": list(m.custom_values),
    }
    for side, spans, deltas, counts in (
        ("pos", m.positive_spans, m.positive_deltas, m.positive_counts),
        ("neg", m.negative_spans, m.negative_deltas, m.negative_counts),
    ):
        index, values, idx, acc, k = [], [], 0, 0, 0
        for j, s in enumerate(spans):
            idx = s.offset if j == 0 else idx + s.offset
            for _ in range(s.length):
                if len(counts):
                    values.append(counts[k])
                else:
                    acc = (acc + deltas[k] + 2**63) % 2**64 - 2**63  # int64 arithmetic
                    values.append(float(acc))
                index.append(idx)
                idx += 1
                k += 1
        row[f"{side}_index"], row[f"{side}_counts"] = index, values
    return row


def decoded_row(hb, i: int) -> dict:
    row = {
        name: getattr(hb, name)[i].item()
        for name in (
            "count",
            "zero_count",
            "sum",
            "zero_threshold",
            "schema",
            "timestamps",
            "reset_hint",
            "float_counts",
        )
    }
    cv = hb.cv_offsets
    row["custom_values"] = hb.custom_values[cv[i] : cv[i + 1]].tolist()
    for side in ("pos", "neg"):
        off = getattr(hb, f"{side}_offsets")
        row[f"{side}_index"] = getattr(hb, f"{side}_index")[off[i] : off[i + 1]].tolist()
        row[f"{side}_counts"] = getattr(hb, f"{side}_counts")[off[i] : off[i + 1]].tolist()
    return row


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return _bits(a) == _bits(b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@settings(max_examples=300, deadline=None)
@given(st.lists(histogram_fields(), min_size=1, max_size=12), st.data())
def test_bulk_decoder_equals_reference(messages: list[list[bytes]], data) -> None:
    raw = [b"".join(chunks) for chunks in messages]
    series = np.array(
        data.draw(st.lists(st.integers(0, 5), min_size=len(raw), max_size=len(raw))),
        dtype=np.int32,
    )
    expected = [reference_row(r) for r in raw]
    hb = decode_histogram_messages(raw, series)
    assert hb.series_idx.tolist() == series.tolist()
    for i, want in enumerate(expected):
        got = decoded_row(hb, i)
        for key, value in want.items():
            assert _same(got[key], value), (i, key, got[key], value)


@settings(max_examples=60, deadline=None)
@given(histogram_fields(), st.integers(1, 300))
def test_many_copies_of_one_layout_take_the_uniform_path(chunks: list[bytes], n: int) -> None:
    """What senders do: every message with the same fields in the same order."""
    raw = [b"".join(chunks)] * n
    hb = decode_histogram_messages(raw, np.zeros(n, dtype=np.int32))
    want = reference_row(raw[0])
    for i in (0, n // 2, n - 1):
        got = decoded_row(hb, i)
        assert all(_same(got[k], v) for k, v in want.items())


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (tag(15, 0) + b"\xff" * 11, r"malformed varint in Histogram #{k}"),
        (tag(3, 1) + b"\x00" * 3, r"Histogram #{k} is malformed at byte 0 \(field 3, wire type 1"),
        (tag(15, 3) + b"\x00", r"Histogram #{k} .*field 15, wire type 3.*not protobuf 3"),
        (b"\x00\x00", r"Histogram #{k} .*field 0"),
        (field(12, b"\x82"), "truncated packed varint"),
        (tag(11, 2) + varint(2**64 - 1) + b"\x00", r"Histogram #{k} .*field 11.*runs past"),
        (tag(11, 2) + varint(2**40), r"Histogram #{k} .*field 11.*runs past"),
        (field(11, _span(0, 2)) + field(12, b"\x02"), "spans need 2 buckets but 1 were sent"),
    ],
)
def test_malformed_messages_are_decode_errors_naming_the_message(raw: bytes, reason: str) -> None:
    good = (tag(15, 0) + varint(5)) * 3
    for batch, k in (([raw], 0), ([good, raw], 1), ([raw, good, good], 0)):
        with pytest.raises(DecodeError, match=reason.format(k=k)):
            decode_histogram_messages(batch, np.zeros(len(batch), dtype=np.int32))
