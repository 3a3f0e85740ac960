"""The bulk decoders agree with the exact per-item ones on every layout.

Label keys cut from the wire in bulk must be `label_key` of what `decode_label`
gives for each message, and decode back to it; `decode_write_request` must give
the same columns whether a request takes the bulk path (labels first, then
samples) or the per-series views (anything else).
"""

import random
import struct

import numpy as np
import pytest
import snappy
from hypothesis import given, settings
from hypothesis import strategies as st

from remote_write.batch import label_columns
from remote_write.codec import decode_write_request
from remote_write.errors import DecodeError
from remote_write.labelkeys import decode_label_key, decode_label_keys, label_key
from remote_write.wirelabels import decode_label


def varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def label(name: bytes, value: bytes) -> bytes:
    return field(1, name) + field(2, value)


def sample(ts: int, value: float) -> bytes:
    body = b""
    if value != 0:
        body += b"\x09" + struct.pack("<d", value)
    if ts != 0:
        body += b"\x10" + varint(ts)
    return body


MESSAGES = [
    label(b"job", b"api"),
    label(b"job", b"v" * 127),
    label(b"job", b"v" * 128),  # two-byte length
    label(b"n" * 127, b"x"),
    field(1, b"job"),  # empty value omitted
    field(2, b"api") + field(1, b"job"),  # reverse order
    label(b"job", b"a\xffb"),  # invalid UTF-8
    label("zöne".encode(), "日本".encode()),
    label(b"job", b"api") + field(3, b"unknown"),
    label(b"", b"x"),
    label(b"a\x00b", b"x"),  # the bulk path's separator inside a name
    label(b"job", b"a\x00"),
    b"",
]


def test_label_keys_from_the_wire_agree_with_the_exact_decoder():
    rng = random.Random(7)
    for _ in range(300):
        series = [
            [rng.choice(MESSAGES) for _ in range(rng.randint(0, 6))]
            for _ in range(rng.randint(1, 5))
        ]
        body = request(
            *(b"".join(field(1, m) for m in msgs) + field(2, sample(T, 1.0)) for msgs in series)
        )
        batch = decode_write_request(body).batch
        pick = sorted(rng.sample(range(len(series)), rng.randint(1, len(series))))
        cols = label_columns(batch.series, pick)
        expect = [[decode_label(m) for m in series[i]] for i in pick]
        flat = [pair for pairs in expect for pair in pairs]
        assert cols.keys == [label_key(*pair) for pair in flat]
        assert np.diff(cols.offsets).tolist() == [len(pairs) for pairs in expect]
        names, values = cols.decode(cols.keys)
        assert list(zip(names, values, strict=True)) == flat


def test_decode_label_keys_agrees_with_one_by_one():
    rng = random.Random(8)
    keys = [label_key(*decode_label(m)) for m in MESSAGES]
    for _ in range(500):
        chosen = [rng.choice(keys) for _ in range(rng.randint(0, 12))]
        names, values = decode_label_keys(chosen)
        assert list(zip(names, values, strict=True)) == [decode_label_key(k) for k in chosen]


def test_decode_label_keys_all_short():
    keys = [label_key(f"n{i}", f"value-{i}") for i in range(50)]
    names, values = decode_label_keys(keys)
    assert names == [f"n{i}" for i in range(50)]
    assert values == [f"value-{i}" for i in range(50)]


def test_label_keys_name_labels_exactly():
    pairs = [("a", "b=c"), ("a=b", "c"), ("job", ""), ("job", "a\udcffb"), ("é", "日本")]
    keys = [label_key(n, v) for n, v in pairs]
    assert len(set(keys)) == len(keys)
    assert [decode_label_key(k) for k in keys] == pairs


def request(*series: bytes, metadata: bytes = b"") -> bytes:
    return snappy.compress(b"".join(field(1, s) for s in series) + metadata)


def columns(body: bytes):
    b = decode_write_request(body).batch
    return (
        [tuple(b.series[i]) for i in range(len(b.series))],
        b.series_idx.tolist(),
        b.timestamps.tolist(),
        b.values.tolist(),
    )


LABELS_A = field(1, label(b"__name__", b"up")) + field(1, label(b"job", b"a"))
LABELS_B = field(1, label(b"__name__", b"up")) + field(1, label(b"job", b"b"))
UP_A = (("__name__", "up"), ("job", "a"))
UP_B = (("__name__", "up"), ("job", "b"))
T = 1_700_000_000_000


def test_standard_layout():
    body = request(
        LABELS_A + field(2, sample(T, 1.5)) + field(2, sample(T + 1, 2.5)),
        LABELS_B + field(2, sample(T, 3.5)),
    )
    assert columns(body) == ([UP_A, UP_B], [0, 0, 1], [T, T + 1, T], [1.5, 2.5, 3.5])


@pytest.mark.parametrize(
    "series",
    [
        # labels after samples
        [field(2, sample(T, 1.0)) + LABELS_A, LABELS_B + field(2, sample(T, 2.0))],
        # an exemplar (dropped, counted)
        [LABELS_A + field(2, sample(T, 1.0)) + field(3, b""), LABELS_B + field(2, sample(T, 2.0))],
        # a series without samples between two with samples
        [LABELS_A + field(2, sample(T, 1.0)), LABELS_B, LABELS_A + field(2, sample(T + 5, 2.0))],
        # zero values and zero timestamps (fields omitted), a 2-byte label length
        [
            LABELS_A + field(2, sample(T, 0.0)) + field(2, sample(0, 4.0)) + field(2, b""),
            field(1, label(b"__name__", b"x" * 200)) + field(2, sample(-5, -1.0)),
        ],
        # a non-minimal length varint in a sample field
        [LABELS_A + b"\x12\x90\x00" + sample(T, 7.0), LABELS_B + field(2, sample(T, 1.0))],
    ],
)
def test_unusual_layouts_decode_exactly(series):
    expect_labels, expect_idx, expect_ts, expect_vals = [], [], [], []
    for i, s in enumerate(series):
        # The reference: walk each series' fields one by one.
        labels, pos = [], 0
        while pos < len(s):
            tag = s[pos]
            pos += 1
            length, shift = 0, 0
            while True:
                byte = s[pos]
                pos += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    break
            payload = s[pos : pos + length]
            pos += length
            if tag >> 3 == 1:
                labels.append(decode_label(payload))
            elif tag >> 3 == 2:
                ts = value = 0
                j = 0
                while j < len(payload):
                    if payload[j] == 0x09:
                        value = struct.unpack("<d", payload[j + 1 : j + 9])[0]
                        j += 9
                    else:
                        j += 1
                        ts, shift = 0, 0
                        while True:
                            byte = payload[j]
                            j += 1
                            ts |= (byte & 0x7F) << shift
                            shift += 7
                            if byte < 0x80:
                                break
                        ts -= (ts >> 63) << 64
                expect_idx.append(i)
                expect_ts.append(ts)
                expect_vals.append(float(value))
        expect_labels.append(tuple(labels))
    assert columns(request(*series)) == (expect_labels, expect_idx, expect_ts, expect_vals)


def test_keys_identify_label_sets_within_a_layout():
    one = decode_write_request(request(LABELS_A + field(2, sample(T, 1.0)))).batch
    two = decode_write_request(request(LABELS_B, LABELS_A + field(2, sample(T + 1, 2.0)))).batch
    assert one.series_keys[0] == two.series_keys[1] != two.series_keys[0]


def test_keys_of_the_two_paths_never_collide():
    # With an exemplar the request takes the per-series views; its keys live apart.
    fast = decode_write_request(request(LABELS_A + field(2, sample(T, 1.0)))).batch
    slow = decode_write_request(request(LABELS_A + field(2, sample(T, 1.0)) + field(3, b"")))
    assert slow.dropped == {}
    assert slow.batch.num_exemplars == 1
    assert fast.series_keys[0] != slow.batch.series_keys[0]
    assert list(fast.series) == list(slow.batch.series)


def test_uniform_samples_match_the_general_decoder():
    rng = np.random.default_rng(3)
    ts = (T + rng.integers(0, 10**6, 300)).tolist()
    vals = rng.normal(size=300).tolist()
    body = request(
        LABELS_A + b"".join(field(2, sample(t, v)) for t, v in zip(ts, vals, strict=True))
    )
    _, idx, got_ts, got_vals = columns(body)
    assert got_ts == ts
    assert got_vals == vals
    assert idx == [0] * 300


@pytest.mark.parametrize(
    "series",
    [
        b"\x0a\x7f" + b"x" * 10,  # a label running past the end
        b"\x0a\x7f\x7f",
        LABELS_A + b"\x12\x7f" + b"\x09" * 12,  # a sample running past the end
        LABELS_A + b"\x12\x13" + sample(T, 1.0)[:5],  # a truncated sample
    ],
)
@pytest.mark.parametrize("last", [False, True])
def test_fields_running_past_their_series_are_a_decode_error(series, last):
    other = LABELS_B + field(2, sample(T, 2.0))
    with pytest.raises(DecodeError, match=r"^protobuf: "):
        decode_write_request(request(other, series) if last else request(series, other))


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_damaged_requests_decode_or_fail_with_a_decode_error(data):
    """Any byte changed, dropped or added: a batch, or DecodeError; nothing else."""
    raw = bytearray(
        b"".join(
            field(1, LABELS_A + field(2, sample(T + i, 1.5)) + field(2, sample(T + 9, 0.0)))
            for i in range(3)
        )
    )
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["set", "drop", "add"]))
        if action == "set":
            raw[at] = data.draw(st.integers(0, 255))
        elif action == "drop":
            del raw[at]
        else:
            raw.insert(at, data.draw(st.integers(0, 255)))
    try:
        batch = decode_write_request(snappy.compress(bytes(raw))).batch
        for i in range(len(batch.series)):
            batch.series[i]  # labels are decoded on use: also a DecodeError at worst
        label_columns(batch.series, range(len(batch.series)))
    except DecodeError:
        return
    assert len(batch.series_idx) == len(batch.timestamps) == len(batch.values)
