"""The on-disk queue: order, durability across restarts, the size bound."""

from __future__ import annotations

from pathlib import Path

from aggregator.edge.diskqueue import DiskQueue


def test_records_come_back_in_order_after_a_restart(tmp_path: Path) -> None:
    q = DiskQueue(tmp_path, 1 << 20)
    q.put("write", b"one")
    q.put("alerts", b"two")
    reopened = DiskQueue(tmp_path, 1 << 20)
    first = reopened.peek()
    assert first is not None
    assert (first.seq, first.kind, reopened.read(first)) == (1, "write", b"one")
    reopened.ack(first)
    second = reopened.peek()
    assert second is not None
    assert (second.seq, reopened.read(second)) == (2, b"two")


def test_sequence_numbers_never_repeat_after_the_queue_drained(tmp_path: Path) -> None:
    q = DiskQueue(tmp_path, 1 << 20)
    rec = q.put("write", b"x")
    q.ack(rec)
    assert len(q) == 0
    assert DiskQueue(tmp_path, 1 << 20).put("write", b"y").seq == rec.seq + 1


def test_past_the_bound_the_oldest_records_are_dropped_and_counted(tmp_path: Path) -> None:
    q = DiskQueue(tmp_path, 250)
    for i in range(5):
        q.put("write", bytes([i]) * 100)
    assert len(q) == 2
    assert q.bytes == 200
    assert q.dropped_records == 3
    assert q.dropped_bytes == 300
    head = q.peek()
    assert head is not None
    assert q.read(head) == bytes([3]) * 100
    assert sorted(p.name for p in tmp_path.glob("*.write")) == [
        "0000000000000004.write",
        "0000000000000005.write",
    ]


def test_a_half_written_record_is_discarded_at_start(tmp_path: Path) -> None:
    (tmp_path / "0000000000000001.write.tmp").write_bytes(b"partial")
    q = DiskQueue(tmp_path, 1 << 20)
    assert len(q) == 0
    assert not list(tmp_path.glob("*.tmp"))
