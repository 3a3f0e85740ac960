"""Native histograms in the head: stored columnar, read back exactly, durable across restart."""

import time

import numpy as np

from remote_write.codec import decode_write_request
from storage.db import Storage
from storage.labels import Matcher, MatchType
from storage.options import StorageOptions
from tests.support.nhist import H, request

NOW = int(time.time() * 1000)
ALL = [Matcher(MatchType.RE, "__name__", ".+")]


def sample_histograms():
    return [
        H(NOW - 2000, count=6, sum=7.5, schema=1, zero_threshold=0.001, zero_count=1,
          positive={-1: 1, 0: 2, 4: 1}, negative={2: 1}),
        H(NOW - 1000, count=5.5, sum=3.0, schema=-53, positive={0: 1.5, 1: 2, 2: 2},
          custom_values=[0.5, 1.0], float_counts=True),
    ]  # fmt: skip


async def read(storage, start=0, end=NOW + 60_000):
    async with storage.querier(start, end) as q:
        return await q.select(ALL, start, end)


def rows(hs):
    s = hs.samples
    out = []
    for i in range(len(s)):
        p = slice(int(s.pos_offsets[i]), int(s.pos_offsets[i + 1]))
        n = slice(int(s.neg_offsets[i]), int(s.neg_offsets[i + 1]))
        c = slice(int(s.cv_offsets[i]), int(s.cv_offsets[i + 1]))
        out.append((
            str(hs.labels[int(s.series_idx[i])]), int(s.timestamps[i]), int(s.schema[i]),
            float(s.count[i]), float(s.sum[i]), float(s.zero_count[i]),
            dict(zip(s.pos_index[p].tolist(), s.pos_counts[p].tolist(), strict=True)),
            dict(zip(s.neg_index[n].tolist(), s.neg_counts[n].tolist(), strict=True)),
            s.custom_values[c].tolist(), bool(s.float_counts[i]),
        ))  # fmt: skip
    return out


async def test_histograms_are_stored_and_survive_restart(tmp_path):
    s = await Storage.open(tmp_path, StorageOptions())
    app = s.appender()
    body = request(
        [({"__name__": "h", "job": "a"}, sample_histograms())],
        floats=[({"__name__": "f"}, [(NOW - 1000, 1.0)])],
    )
    res = app.append(decode_write_request(body).batch)
    await app.commit()
    assert res.accepted == 3
    assert res.histograms_accepted == 2
    assert res.rejected == []
    ss = await read(s)
    assert [str(lbl) for lbl in ss.labels] == ["f"]
    before = rows(ss.histograms)
    assert before == [
        ('h{job="a"}', NOW - 2000, 1, 6.0, 7.5, 1.0, {-1: 1.0, 0: 2.0, 4: 1.0},
         {2: 1.0}, [], False),
        ('h{job="a"}', NOW - 1000, -53, 5.5, 3.0, 0.0, {0: 1.5, 1: 2.0, 2: 2.0},
         {}, [0.5, 1.0], True),
    ]  # fmt: skip
    await s.close()
    s2 = await Storage.open(tmp_path, StorageOptions())
    try:
        assert rows((await read(s2)).histograms) == before
        # Only the time range asked for.
        part = await read(s2, NOW - 1500, NOW)
        assert [r[1] for r in rows(part.histograms)] == [NOW - 1000]
    finally:
        await s2.close()


async def test_invalid_histograms_are_rejected_with_reasons(tmp_path):
    s = await Storage.open(tmp_path, StorageOptions())
    try:
        app = s.appender()
        bad = [
            H(NOW - 3000, count=5, positive={0: 2}),  # count != buckets
            H(NOW - 2000, count=1, schema=9, positive={0: 1}),  # schema
            H(NOW + 3_600_000, count=1, positive={0: 1}),  # future
            H(NOW - 1000, count=2, positive={0: 2}),  # fine
        ]
        res = app.append(decode_write_request(request([({"__name__": "h"}, bad)])).batch)
        await app.commit()
        assert res.accepted == 1
        by_reason = {r.reason: r.message for r in res.rejected}
        assert set(by_reason) == {"invalid_native_histogram", "sample_too_far_in_future"}
        msg = by_reason["invalid_native_histogram"]
        assert "for series h at" in msg, msg
        assert "does not equal the number of observations" in msg
        assert any("schema must be between -4 and 8" in r.message for r in res.rejected)
        assert [r[1] for r in rows((await read(s)).histograms)] == [NOW - 1000]
    finally:
        await s.close()


async def test_many_appends_fold_and_keep_first_of_a_timestamp(tmp_path):
    s = await Storage.open(tmp_path, StorageOptions())
    try:
        app = s.appender()
        for k in range(30):
            hs = [H(NOW - 100_000 + 1000 * k + j, count=k, positive={0: k}) for j in range(200)]
            app.append(decode_write_request(request([({"__name__": "h"}, hs)])).batch)
        # A different value at an existing timestamp: the first one stays.
        app.append(decode_write_request(request([({"__name__": "h"}, [
            H(NOW - 100_000, count=99, positive={0: 99})])])).batch)  # fmt: skip
        await app.commit()
        hs = (await read(s)).histograms
        ts = hs.samples.timestamps
        assert (np.diff(ts) > 0).all()
        assert hs.samples.count[0] == 0
    finally:
        await s.close()
