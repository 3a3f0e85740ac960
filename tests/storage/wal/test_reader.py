"""WAL framing: round trips, CRC checks, and telling a torn tail from corruption."""

import struct

import pytest

from storage.wal.frame import HEADER, encode_frame
from storage.wal.reader import ScanEnd, iter_frames, list_segments, read_segment


def frames(*bodies, cluster="eu"):
    return b"".join(encode_frame(cluster, 1000 + i, b) for i, b in enumerate(bodies))


def scan(data):
    items = list(iter_frames(data))
    end = items[-1]
    assert isinstance(end, ScanEnd)
    return [rec for _, rec in items[:-1]], end


def test_round_trip_keeps_cluster_clock_and_body():
    data = frames(b"one", b"two") + encode_frame(None, 7, b"three")
    records, end = scan(data)
    assert [(r.cluster, r.now_ms, r.body) for r in records] == [
        ("eu", 1000, b"one"),
        ("eu", 1001, b"two"),
        (None, 7, b"three"),
    ]
    assert end.problem is None
    assert end.offset == len(data)


def test_empty_cluster_name_differs_from_none():
    (rec,), _ = scan(encode_frame("", 1, b"x"))
    assert rec.cluster == ""


@pytest.mark.parametrize("cut", [1, 5, HEADER.size + 3])
def test_frame_cut_short_is_a_torn_tail(cut):
    good = frames(b"a" * 50)
    data = good + frames(b"b" * 50)[:cut]
    records, end = scan(data)
    assert len(records) == 1
    assert end.torn
    assert end.offset == len(good)


def test_zero_filled_tail_is_torn():
    good = frames(b"a" * 50)
    records, end = scan(good + bytes(4096))
    assert len(records) == 1
    assert end.torn
    assert end.offset == len(good)


def test_garbled_last_frame_is_torn():
    good = frames(b"a" * 50)
    last = bytearray(frames(b"b" * 50))
    last[-10:] = b"\xff" * 10
    records, end = scan(good + bytes(last))
    assert len(records) == 1
    assert end.torn
    assert "checksum" in end.problem


def test_bad_checksum_with_frames_after_is_corruption():
    first = bytearray(frames(b"a" * 50))
    first[HEADER.size + 20] ^= 0x01
    records, end = scan(bytes(first) + frames(b"b" * 50))
    assert records == []
    assert not end.torn
    assert end.offset == 0
    assert "checksum mismatch" in end.problem


def test_implausible_length_with_data_after_is_corruption():
    good = frames(b"a" * 10)
    bad = struct.pack("<II", 3, 0) + b"junkjunkjunk"
    _, end = scan(good + bad + frames(b"c"))
    assert not end.torn
    assert end.offset == len(good)


def test_segments_listed_in_order_ignoring_other_files(tmp_path):
    for name in ("00000010", "00000002", "notes.txt", "00000003.tmp"):
        (tmp_path / name).write_bytes(frames(b"x"))
    assert list_segments(tmp_path) == [2, 10]
    records, end = read_segment(tmp_path / "00000002")
    assert len(records) == 1
    assert end.problem is None


def test_skipped_series_round_trip():
    (rec,), end = scan(encode_frame("eu", 5, b"body", skip=[3, 70000]))
    assert rec.skip == (3, 70000)
    assert rec.body == b"body"
    assert end.problem is None
