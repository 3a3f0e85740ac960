"""WAL writer: fsync policies, group commit, rotation, and deleting old segments."""

import asyncio

import pytest

from storage.errors import StorageUnavailable
from storage.options import FsyncPolicy, StorageOptions
from storage.wal.reader import list_segments, read_segment, segment_path
from storage.wal.writer import WALWriter


async def open_writer(tmp_path, **kw):
    fsyncs = []
    opts = StorageOptions(on_wal_fsync=fsyncs.append, **kw)
    writer = WALWriter(tmp_path, opts, first_segment=0)
    await writer.start()
    return writer, fsyncs


def all_bodies(directory):
    out = []
    for n in list_segments(directory):
        records, end = read_segment(segment_path(directory, n))
        assert end.problem is None
        out += [r.body for _, r in records]
    return out


async def test_batch_policy_group_commits_concurrent_records(tmp_path):
    writer, fsyncs = await open_writer(tmp_path, wal_fsync=FsyncPolicy.BATCH)
    seqs = [writer.log("c", f"body{i}".encode(), 0, i) for i in range(50)]
    await asyncio.gather(*(writer.wait(s) for s in seqs))
    assert len(fsyncs) == 1  # all fifty queued before the flusher ran: one fsync
    assert all_bodies(tmp_path) == [f"body{i}".encode() for i in range(50)]
    seq = writer.log("c", b"later", 0, 0)
    await writer.wait(seq)
    assert len(fsyncs) == 2
    await writer.close()


async def test_always_policy_fsyncs_every_record(tmp_path):
    writer, fsyncs = await open_writer(tmp_path, wal_fsync=FsyncPolicy.ALWAYS)
    seqs = [writer.log(None, b"x", 0, 0) for _ in range(5)]
    await writer.wait(seqs[-1])
    assert len(fsyncs) == 5
    await writer.close()


async def test_never_policy_fsyncs_only_at_close(tmp_path):
    writer, fsyncs = await open_writer(tmp_path, wal_fsync=FsyncPolicy.NEVER)
    await writer.wait(writer.log(None, b"x", 0, 0))
    assert fsyncs == []
    assert all_bodies(tmp_path) == [b"x"]  # written (to the OS) before the ack
    await writer.close()
    assert len(fsyncs) == 1


async def test_interval_policy_fsyncs_on_a_timer(tmp_path):
    writer, fsyncs = await open_writer(
        tmp_path, wal_fsync=FsyncPolicy.INTERVAL, wal_fsync_interval_ms=20
    )
    await writer.wait(writer.log(None, b"x", 0, 0))
    assert all_bodies(tmp_path) == [b"x"]
    for _ in range(200):
        if fsyncs:
            break
        await asyncio.sleep(0.01)
    assert fsyncs
    await writer.close()


async def test_rotation_and_retention_of_segments(tmp_path):
    writer, _ = await open_writer(tmp_path, wal_segment_bytes=100)
    for i in range(6):
        await writer.wait(writer.log("c", b"y" * 80, 0, 1000 * i))
    segments = list_segments(tmp_path)
    assert len(segments) >= 3
    assert all_bodies(tmp_path) == [b"y" * 80] * 6
    # Segments whose newest sample is before 2500 can go; the current one stays.
    removed = await writer.remove_segments_before(2500)
    assert removed
    left = list_segments(tmp_path)
    assert writer.current_segment in left
    kept_max = writer.segment_max_ts()
    assert all(kept_max[n] >= 2500 or n == writer.current_segment for n in left)
    assert len(all_bodies(tmp_path)) == 6 - len(removed)
    await writer.close()


async def test_log_after_close_is_refused(tmp_path):
    writer, _ = await open_writer(tmp_path)
    await writer.close()
    with pytest.raises(StorageUnavailable, match="closed"):
        writer.log(None, b"x", 0, 0)


async def test_write_failure_is_reported_to_waiters(tmp_path, monkeypatch):
    writer, _ = await open_writer(tmp_path)

    def fail(data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "_write_all", fail)
    seq = writer.log(None, b"x", 0, 0)
    with pytest.raises(StorageUnavailable, match="No space left"):
        await writer.wait(seq)
    # Asking again later gets the same answer.
    with pytest.raises(StorageUnavailable):
        await writer.wait(seq)
    monkeypatch.undo()
    await writer.wait(writer.log(None, b"ok", 0, 0))
    assert all_bodies(tmp_path) == [b"ok"]
    await writer.close()
