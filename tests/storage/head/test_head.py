"""Head layout: sealing into parts, merges, out-of-order data across parts, retention."""

import numpy as np
import pytest

from remote_write.batch import WriteBatch
from remote_write.codec import decode_write_request, encode_write_request
from storage.errors import SampleLimitExceeded
from storage.head import querier
from storage.head.appender import apply_batch
from storage.head.head import Head
from storage.head.parts import merge_parts
from storage.head.querier import select
from storage.labels import Matcher, MatchType
from storage.options import StorageOptions

NOW = 1_700_000_000_000
HOUR = 3_600_000


def series(i):
    return (("__name__", "m"), ("i", str(i)))


def write(head, rows, keyed=False):
    """rows: list of (series number, ts, value)."""
    by = {}
    for i, t, v in rows:
        by.setdefault(i, []).append((t, v))
    b = WriteBatch.from_series(
        [(series(i), [t for t, _ in s], [v for _, v in s]) for i, s in sorted(by.items())]
    )
    if keyed:
        b = decode_write_request(encode_write_request(b)).batch
    return apply_batch(head, b, None, now_ms=NOW + 100 * HOUR).result


def dump(head, start=0, end=NOW + 100 * HOUR, matchers=None):
    ss = select(head, matchers or [Matcher(MatchType.EQ, "__name__", "m")], start, end)
    out = {}
    for s in ss.series:
        out[s.labels.get("i")] = list(zip(s.timestamps.tolist(), s.values.tolist(), strict=True))
    return out


def merge_all(head):
    while plans := head.merge_plans():
        key, run, ooo = plans[0]
        assert head.install_merge(key, run, merge_parts(run, ooo=ooo))


def test_samples_survive_sealing_and_merging():
    head = Head(StorageOptions(head_buffer_rows=8))
    expected = {}
    for step in range(40):
        rows = [(i, NOW + step * 15_000, float(step * 10 + i)) for i in range(5)]
        write(head, rows, keyed=True)
        for i, t, v in rows:
            expected.setdefault(str(i), []).append((t, v))
    assert head.partitions.num_parts > 4
    assert dump(head) == expected
    merge_all(head)
    assert head.partitions.num_parts < 8
    assert dump(head) == expected


def test_range_bounds_are_inclusive_and_empty_series_left_out():
    head = Head(StorageOptions(head_buffer_rows=4))
    write(head, [(0, NOW + k * 1000, float(k)) for k in range(10)])
    write(head, [(1, NOW + 50_000, 1.0)])
    got = dump(head, NOW + 2000, NOW + 5000)
    assert got == {"0": [(NOW + k * 1000, float(k)) for k in range(2, 6)]}
    ss = select(head, [Matcher(MatchType.EQ, "__name__", "m")], NOW + 2000, NOW + 5000)
    assert ss.offsets.tolist() == [0, 4]


def test_out_of_order_samples_across_parts_come_back_sorted():
    head = Head(StorageOptions(head_buffer_rows=4, out_of_order_window_ms=HOUR))
    for k in range(0, 20, 2):  # even seconds, sealed along the way
        write(head, [(0, NOW + k * 1000, float(k)), (1, NOW + k * 1000, float(k))])
    for k in range(1, 20, 4):  # odd seconds, late
        write(head, [(0, NOW + k * 1000, float(k))])
    got = dump(head)
    ts = [t for t, _ in got["0"]]
    assert ts == sorted(ts)
    assert len(ts) == len(set(ts)) == 15
    assert all(v == (t - NOW) / 1000 for t, v in got["0"])
    assert [t for t, _ in got["1"]] == [NOW + k * 1000 for k in range(0, 20, 2)]
    merge_all(head)
    assert dump(head) == got


def test_duplicates_are_found_in_sealed_parts_and_buffer():
    head = Head(StorageOptions(head_buffer_rows=4, out_of_order_window_ms=HOUR))
    write(head, [(0, NOW + k * 1000, float(k)) for k in range(6)])  # sealed
    write(head, [(0, NOW + 6000, 6.0)])  # buffered
    write(head, [(0, NOW + 7000, 7.0)])
    res = write(head, [(0, NOW + 1000, 1.0), (0, NOW + 2000, 5.0), (0, NOW + 6000, 6.5)])
    assert res.accepted == 1
    (dup,) = res.rejected
    assert dup.reason == "duplicate_sample_for_timestamp"
    assert dup.samples == 2
    assert len(dump(head)["0"]) == 8


def test_retention_drops_old_samples_and_series():
    head = Head(StorageOptions(retention_ms=2 * HOUR, head_buffer_rows=16))
    write(head, [(0, NOW, 1.0), (1, NOW, 1.0)], keyed=True)
    write(head, [(1, NOW + 3 * HOUR, 2.0)], keyed=True)
    assert len(head.index) == 2
    assert head.apply_retention() == 1  # series 0 has nothing left
    assert len(head.index) == 1
    assert head.active_series_by_cluster() == {"": 1}
    assert dump(head) == {"1": [(NOW + 3 * HOUR, 2.0)]}
    assert head.start_time() == NOW + 3 * HOUR
    # Series 0 may come back with fresh samples (its cached key is gone with it).
    res = write(head, [(0, NOW + 3 * HOUR, 5.0)], keyed=True)
    assert res.rejected == []
    assert dump(head)["0"] == [(NOW + 3 * HOUR, 5.0)]


def test_retention_bounds_memory_under_churn():
    head = Head(StorageOptions(retention_ms=HOUR, head_buffer_rows=64))
    for step in range(48):  # 12 h of 15-minute steps, new series each step
        t = NOW + step * 15 * 60_000
        write(head, [(step * 10 + i, t, 1.0) for i in range(10)], keyed=True)
        head.apply_retention()
    stats = head.stats()
    assert stats.series <= 10 * 7  # about retention + one partition of series
    assert stats.samples <= 10 * 7
    assert len(dump(head)) == stats.series


def test_find_reports_stored_bits():
    head = Head(StorageOptions(head_buffer_rows=4))
    write(head, [(0, NOW + k, float(k)) for k in range(6)])
    sid = head.index.select([Matcher(MatchType.EQ, "i", "0")])
    found, bits = head.find(np.repeat(sid, 3), np.array([NOW + 1, NOW + 5, NOW + 99]))
    assert found.tolist() == [True, True, False]
    assert bits[:2].view(np.float64).tolist() == [1.0, 5.0]


def test_sample_limit_refuses_before_any_sample_is_gathered(monkeypatch):
    head = Head(StorageOptions(head_buffer_rows=64))
    for step in range(30):  # sealed parts plus a partly filled buffer
        write(head, [(i, NOW + step * 15_000, float(i)) for i in range(10)])
    assert head.partitions.num_parts
    assert head.buffer.n
    m = [Matcher(MatchType.EQ, "__name__", "m")]
    assert select(head, m, NOW, NOW + HOUR, sample_limit=300).num_samples == 300

    def no_gather(*args, **kwargs):
        raise AssertionError("samples were gathered")

    monkeypatch.setattr(querier, "_assemble", no_gather)
    with pytest.raises(SampleLimitExceeded, match="300 samples, more than the limit of 299"):
        select(head, m, NOW, NOW + HOUR, sample_limit=299)
