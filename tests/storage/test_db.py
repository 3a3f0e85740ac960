"""Storage: the write path through the WAL, replay on open, and the status methods."""

import asyncio
import logging
import time

import pytest

from remote_write.batch import SeriesMetadata, WriteBatch
from remote_write.codec import decode_write_request, encode_write_request
from storage.db import Storage
from storage.errors import StorageError, StorageUnavailable, WALCorrupted
from storage.labels import Matcher, MatchType
from storage.options import StorageOptions, TieringOptions
from storage.wal.frame import HEADER, encode_frame
from storage.wal.reader import list_segments, segment_path

NOW = int(time.time() * 1000)


def batch(n_series=3, ts=NOW, value=1.0, job="x", keyed=True, metadata=()):
    b = WriteBatch.from_series(
        [
            ((("__name__", "up"), ("job", job), ("i", str(i))), [ts], [value + i])
            for i in range(n_series)
        ],
        metadata,
    )
    return decode_write_request(encode_write_request(b)).batch if keyed else b


async def dump(storage, start=0, end=NOW + 3_600_000):
    async with storage.querier(start, end) as q:
        ss = await q.select([Matcher(MatchType.RE, "__name__", ".+")], start, end)
    return {
        str(s.labels): list(zip(s.timestamps.tolist(), s.values.tolist(), strict=True))
        for s in ss.series
    }


async def test_replay_restores_what_was_committed(tmp_path):
    s = await Storage.open(tmp_path, StorageOptions())
    assert s.ready
    app = s.appender(cluster="eu")
    app.append(batch(ts=NOW - 2000))
    app.append(batch(ts=NOW - 1000, keyed=False))
    await app.commit()
    other = s.appender()
    res = other.append(batch(ts=NOW - 1000, job="y"))
    assert res.accepted == 3
    await other.commit()
    before = await dump(s)
    assert len(before) == 6
    await s.close()
    assert not s.ready

    s2 = await Storage.open(tmp_path, StorageOptions())
    assert await dump(s2) == before
    assert s2.active_series_by_cluster() == {"eu": 3, "": 3}
    assert s2.start_time_ms() == NOW - 2000
    # Replayed series are known by key again: a retry is a no-op, not a new series.
    res = s2.appender(cluster="eu").append(batch(ts=NOW - 1000))
    assert res.accepted == 3
    assert res.rejected == []
    await s2.close()


async def test_replay_judges_the_future_by_the_append_time(tmp_path):
    wal = tmp_path / "wal"
    wal.mkdir()
    day = 24 * 3_600_000
    body = encode_write_request(batch(n_series=1, ts=NOW - day + 5000, keyed=False))
    late = encode_write_request(batch(n_series=1, ts=NOW, job="late", keyed=False))
    # Logged a day ago: the first body was fine then, the second too far ahead.
    segment_path(wal, 0).write_bytes(
        encode_frame(None, NOW - day, body) + encode_frame(None, NOW - day, late)
    )
    s = await Storage.open(tmp_path, StorageOptions(max_future_ms=60_000))
    assert list(await dump(s, start=0, end=NOW + day)) == ['up{i="0", job="x"}']
    assert s.replay_result.records == 2
    await s.close()


async def test_batches_with_nothing_accepted_are_not_logged(tmp_path):
    s = await Storage.open(tmp_path, StorageOptions())
    app = s.appender()
    app.append(batch())
    await app.commit()
    size = segment_path(tmp_path / "wal", list_segments(tmp_path / "wal")[-1]).stat().st_size
    res = app.append(batch(ts=NOW - 10 * 3_600_000 * 24 * 7, value=5.0, job="old"))
    assert res.accepted == 0
    await app.commit()
    assert segment_path(tmp_path / "wal", list_segments(tmp_path / "wal")[-1]).stat().st_size == (
        size
    )
    await s.close()


async def test_metadata_is_served_and_replayed(tmp_path):
    s = await Storage.open(tmp_path, StorageOptions())
    app = s.appender()
    app.append(
        batch(
            metadata=[
                SeriesMetadata("up", "gauge", "1 if the target is up", ""),
                SeriesMetadata("http_requests_total", "counter", "requests", ""),
            ]
        )
    )
    await app.commit()
    assert s.metadata() == {
        "http_requests_total": [{"type": "counter", "help": "requests", "unit": ""}],
        "up": [{"type": "gauge", "help": "1 if the target is up", "unit": ""}],
    }
    assert list(s.metadata(limit=1)) == ["http_requests_total"]
    assert s.metadata("up")["up"][0]["type"] == "gauge"
    assert s.metadata("nope") == {}
    await s.close()
    s2 = await Storage.open(tmp_path, StorageOptions())
    assert s2.metadata("up") == {
        "up": [{"type": "gauge", "help": "1 if the target is up", "unit": ""}]
    }
    await s2.close()


async def test_torn_tail_is_truncated_with_a_warning(tmp_path, caplog):
    s = await Storage.open(tmp_path, StorageOptions())
    app = s.appender()
    app.append(batch(ts=NOW - 1000))
    await app.commit()
    before = await dump(s)
    app.append(batch(ts=NOW, job="second"))
    await app.commit()
    await s.close()
    wal = tmp_path / "wal"
    last = segment_path(wal, list_segments(wal)[-1])
    data = last.read_bytes()
    last.write_bytes(data[:-7])  # the second record cut short
    with caplog.at_level(logging.WARNING):
        s2 = await Storage.open(tmp_path, StorageOptions())
    assert "wal torn tail truncated" in caplog.text
    assert await dump(s2) == before
    assert s2.replay_result.truncated
    await s2.close()
    # The truncation is permanent: the next start is clean.
    caplog.clear()
    s3 = await Storage.open(tmp_path, StorageOptions())
    assert "torn" not in caplog.text
    assert await dump(s3) == before
    await s3.close()


async def test_corruption_inside_the_wal_refuses_to_start(tmp_path):
    s = await Storage.open(tmp_path, StorageOptions())
    app = s.appender()
    for k in range(3):
        app.append(batch(ts=NOW - 3000 + k))
        await app.commit()
    await s.close()
    wal = tmp_path / "wal"
    seg = segment_path(wal, list_segments(wal)[-1])
    data = bytearray(seg.read_bytes())
    data[HEADER.size + 30] ^= 0xFF  # inside the first record
    seg.write_bytes(bytes(data))
    with pytest.raises(WALCorrupted) as err:
        await Storage.open(tmp_path, StorageOptions())
    assert str(seg) in str(err.value)
    assert "offset 0" in str(err.value)


async def test_torn_frame_in_an_older_segment_is_corruption(tmp_path):
    s = await Storage.open(tmp_path, StorageOptions())
    app = s.appender()
    app.append(batch())
    await app.commit()
    await s.close()
    s = await Storage.open(tmp_path, StorageOptions())  # starts segment 1
    app = s.appender()
    app.append(batch(ts=NOW + 1))
    await app.commit()
    await s.close()
    first = segment_path(tmp_path / "wal", 0)
    first.write_bytes(first.read_bytes()[:-3])
    with pytest.raises(WALCorrupted, match="00000000"):
        await Storage.open(tmp_path, StorageOptions())


async def test_appending_after_close_is_refused(tmp_path):
    s = await Storage.open(tmp_path, StorageOptions())
    await s.close()
    with pytest.raises(StorageUnavailable):
        s.appender().append(batch())


async def test_wal_segments_go_once_their_samples_are_in_uploaded_blocks(tmp_path):
    hour = 3_600_000
    opts = StorageOptions(
        wal_segment_bytes=1, retention_ms=24 * hour, tiering=TieringOptions(block_duration_ms=hour)
    )
    s = await Storage.open(tmp_path, opts)
    app = s.appender()
    for k in range(6):  # one record per segment, an hour apart
        app.append(batch(ts=NOW - (5 - k) * hour, job=f"j{k}"))
        await app.commit()
    wal = tmp_path / "wal"
    before = await dump(s)
    assert len(list_segments(wal)) >= 6
    await s.run_maintenance()  # cuts the closed hours into blocks
    await s.tiering.wait_uploaded()
    await s.run_maintenance()  # and trims the WAL behind them
    assert len(s.catalog) >= 4
    # Only the segments holding samples not yet in a block (the open hour) remain.
    assert len(list_segments(wal)) <= 3
    assert await dump(s) == before
    await s.close()
    s2 = await Storage.open(tmp_path, opts)
    await s2.tiering.wait_uploaded()
    assert await dump(s2) == before
    await s2.close()


async def test_label_queries_respect_the_querier_range(tmp_path):
    s = await Storage.open(tmp_path, StorageOptions())
    app = s.appender()
    app.append(batch(ts=NOW - 600_000, job="early"))
    app.append(batch(ts=NOW, job="late"))
    await app.commit()
    async with s.querier(NOW - 1000, NOW + 1000) as q:
        assert (await q.label_values("job")).values == ["late"]
    async with s.querier(0, NOW + 1000) as q:
        assert (await q.label_values("job")).values == ["early", "late"]
        assert (await q.label_values("job", limit=1)).values == ["early"]
        names = await q.label_names([Matcher(MatchType.EQ, "job", "late")])
        assert names.values == ["__name__", "i", "job"]
    await s.close()


async def test_series_refused_for_the_limit_stay_refused_after_replay(tmp_path):
    opts = StorageOptions(max_series_per_cluster=2)
    s = await Storage.open(tmp_path, opts)
    app = s.appender(cluster="eu")
    res = app.append(batch(n_series=3))
    assert [r.reason for r in res.rejected] == ["series_limit"]
    assert res.accepted == 2
    await app.commit()
    before = await dump(s)
    await s.close()
    s2 = await Storage.open(tmp_path, opts)
    assert await dump(s2) == before
    assert s2.active_series_by_cluster() == {"eu": 2}
    await s2.close()


async def test_replay_ignores_the_limit_for_series_it_accepted(tmp_path):
    s = await Storage.open(tmp_path, StorageOptions(max_series_per_cluster=10))
    app = s.appender(cluster="eu")
    app.append(batch(n_series=5))
    await app.commit()
    await s.close()
    # A lower limit later does not drop what was acknowledged before.
    s2 = await Storage.open(tmp_path, StorageOptions(max_series_per_cluster=2))
    assert s2.active_series_by_cluster() == {"eu": 5}
    res = s2.appender(cluster="eu").append(batch(n_series=1, job="new"))
    assert res.rejected[0].reason == "series_limit"
    await s2.close()


async def test_background_merges_keep_every_sample(tmp_path):
    s = await Storage.open(tmp_path, StorageOptions(head_buffer_rows=50))
    app = s.appender()
    for k in range(60):  # 600 samples: 12 sealed parts before any merge
        app.append(batch(n_series=10, ts=NOW - 100_000 + k * 1000, value=float(k)))
    await app.commit()
    for _ in range(500):  # merges run in worker threads; wait for them to settle
        if s.stats().parts <= 4:
            break
        await asyncio.sleep(0.01)
    assert s.stats().parts <= 4
    async with s.querier(0, NOW) as q:
        ss = await q.select([Matcher(MatchType.EQ, "__name__", "up")], 0, NOW)
    assert len(ss) == 10
    for series in ss.series:
        i = int(series.labels.get("i"))
        assert series.timestamps.tolist() == [NOW - 100_000 + k * 1000 for k in range(60)]
        assert series.values.tolist() == [float(k) + i for k in range(60)]
    await s.close()


async def test_a_data_directory_is_used_by_one_storage_at_a_time(tmp_path):
    s = await Storage.open(tmp_path, StorageOptions())
    with pytest.raises(StorageError, match="in use by another process"):
        await Storage.open(tmp_path, StorageOptions())
    await s.close()
    again = await Storage.open(tmp_path, StorageOptions())  # released on close
    await again.close()
