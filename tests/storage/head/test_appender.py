"""Ingest checks of the head: what is stored, what is rejected, and what the sender is told."""

import math
import struct

import numpy as np
import pytest

from remote_write.batch import STALE_NAN, STALE_NAN_BITS, SeriesMetadata, WriteBatch
from remote_write.codec import decode_write_request, encode_write_request
from remote_write.labelkeys import label_key
from remote_write.validate import SeriesLimits
from storage.head.appender import apply_batch
from storage.head.head import Head
from storage.head.querier import select
from storage.labels import Labels, Matcher, MatchType
from storage.options import StorageOptions

NOW = 1_700_000_000_000
MIN = 60_000
UP = (("__name__", "up"), ("job", "x"))


def batch(*series, keyed=False, metadata=()):
    """series: (label pairs, [(ts, value), ...]) ..."""
    b = WriteBatch.from_series(
        [(pairs, [t for t, _ in s], [v for _, v in s]) for pairs, s in series], metadata
    )
    if keyed:
        b = decode_write_request(encode_write_request(b)).batch
    return b


def make_head(**kw):
    return Head(StorageOptions(**kw))


def apply(head, b, cluster=None, now=NOW, limits=True):
    return apply_batch(head, b, cluster, now_ms=now, enforce_limits=limits).result


def samples(head, *matchers, start=0, end=NOW + 3_600_000):
    ms = [Matcher(MatchType.EQ, n, v) for n, v in matchers] or [
        Matcher(MatchType.RE, "__name__", ".+")
    ]
    ss = select(head, ms, start, end)
    return {
        str(s.labels): list(zip(s.timestamps.tolist(), s.values.tolist(), strict=True))
        for s in ss.series
    }


def by_reason(result):
    return {r.reason: r for r in result.rejected}


@pytest.mark.parametrize("keyed", [False, True])
def test_accepts_and_serves_samples(keyed):
    head = make_head()
    res = apply(head, batch((UP, [(NOW - 2000, 1.0), (NOW - 1000, 2.0)]), keyed=keyed))
    assert res.accepted == 2
    assert res.rejected == []
    assert samples(head) == {'up{job="x"}': [(NOW - 2000, 1.0), (NOW - 1000, 2.0)]}


def test_out_of_order_inside_window_is_stored_in_order():
    head = make_head(out_of_order_window_ms=10 * MIN)
    apply(head, batch((UP, [(NOW, 3.0)])))
    res = apply(head, batch((UP, [(NOW - 5 * MIN, 1.0), (NOW - 2 * MIN, 2.0)])))
    assert res.accepted == 2
    assert samples(head)['up{job="x"}'] == [(NOW - 5 * MIN, 1.0), (NOW - 2 * MIN, 2.0), (NOW, 3.0)]


def test_out_of_order_past_window_is_rejected_with_a_useful_message():
    head = make_head(out_of_order_window_ms=10 * MIN)
    apply(head, batch((UP, [(NOW, 3.0)])))
    res = apply(
        head,
        batch((UP, [(NOW - 15 * MIN, 1.0), (NOW - 20 * MIN, 1.0), (NOW + 1000, 4.0)])),
    )
    assert res.accepted == 1
    (rej,) = res.rejected
    assert rej.reason == "out_of_order_sample"
    assert rej.samples == 2
    assert rej.series == 'up{job="x"}'
    assert not rej.retryable
    assert "out of order sample" in rej.message
    assert f"({NOW - 15 * MIN})" in rej.message  # the first offending timestamp
    assert "2023-11-14T21:58:20Z" in rej.message
    assert "15m0s older" in rej.message
    assert 'up{job="x"}' in rej.message
    assert samples(head)['up{job="x"}'] == [(NOW, 3.0), (NOW + 1000, 4.0)]


def test_zero_window_rejects_any_older_sample():
    head = make_head(out_of_order_window_ms=0)
    apply(head, batch((UP, [(NOW, 3.0)])))
    res = apply(head, batch((UP, [(NOW - 1, 1.0)])))
    assert by_reason(res)["out_of_order_sample"].samples == 1


@pytest.mark.parametrize("keyed", [False, True])
def test_identical_retry_is_a_no_op(keyed):
    head = make_head()
    b = batch((UP, [(NOW - 3000, 1.0), (NOW - 2000, 2.0), (NOW - 1000, 3.0)]), keyed=keyed)
    apply(head, b)
    res = apply(head, b)
    assert res.accepted == 3
    assert res.rejected == []
    assert samples(head)['up{job="x"}'] == [(NOW - 3000, 1.0), (NOW - 2000, 2.0), (NOW - 1000, 3.0)]
    assert head.stats().samples == 3


def test_same_timestamp_other_value_is_a_duplicate_and_first_wins():
    head = make_head()
    apply(head, batch((UP, [(NOW - 2000, 1.0), (NOW - 1000, 2.0)])))
    res = apply(head, batch((UP, [(NOW - 2000, 9.0), (NOW - 1000, 8.0)])))
    rej = by_reason(res)["duplicate_sample_for_timestamp"]
    assert rej.samples == 2
    assert f"({NOW - 2000})" in rej.message
    assert "9.0" in rej.message
    assert "1.0" in rej.message
    assert samples(head)['up{job="x"}'] == [(NOW - 2000, 1.0), (NOW - 1000, 2.0)]


def test_duplicates_inside_one_batch_first_wins():
    head = make_head()
    res = apply(head, batch((UP, [(NOW, 1.0), (NOW, 2.0), (NOW, 1.0), (NOW - 5, 7.0)])))
    assert res.accepted == 3  # the second 1.0 is a retry of the first
    assert by_reason(res)["duplicate_sample_for_timestamp"].samples == 1
    assert samples(head)['up{job="x"}'] == [(NOW - 5, 7.0), (NOW, 1.0)]


def test_same_series_twice_in_a_batch():
    head = make_head()
    res = apply(head, batch((UP, [(NOW, 1.0)]), (tuple(reversed(UP)), [(NOW + 1, 2.0)])))
    assert res.accepted == 2
    assert samples(head)['up{job="x"}'] == [(NOW, 1.0), (NOW + 1, 2.0)]


def test_stale_markers_are_stored_bit_exact():
    head = make_head()
    apply(head, batch((UP, [(NOW, 1.0), (NOW + 1000, STALE_NAN)])))
    ss = select(head, [Matcher(MatchType.EQ, "job", "x")], 0, NOW + 5000)
    assert ss.values.view(np.uint64)[1] == STALE_NAN_BITS
    # The marker again: a retry. Another NaN at that timestamp: a different value.
    assert apply(head, batch((UP, [(NOW + 1000, STALE_NAN)]))).rejected == []
    other_nan = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000001))[0]
    res = apply(head, batch((UP, [(NOW + 1000, other_nan)])))
    assert "stale marker" in by_reason(res)["duplicate_sample_for_timestamp"].message
    assert math.isnan(samples(head)['up{job="x"}'][1][1])


def test_too_far_in_future():
    head = make_head(max_future_ms=10 * MIN)
    res = apply(head, batch((UP, [(NOW + 11 * MIN, 1.0), (NOW + 9 * MIN, 2.0)])))
    rej = by_reason(res)["sample_too_far_in_future"]
    assert rej.samples == 1
    assert "11m0s ahead" in rej.message
    assert str(NOW + 11 * MIN) in rej.message
    assert samples(head)['up{job="x"}'] == [(NOW + 9 * MIN, 2.0)]


def test_too_old_behind_retention():
    head = make_head(retention_ms=3_600_000)
    apply(head, batch((UP, [(NOW, 1.0)])))
    other = (("__name__", "up"), ("job", "y"))
    res = apply(head, batch((other, [(NOW - 2 * 3_600_000, 1.0), (NOW - 1000, 2.0)])))
    rej = by_reason(res)["sample_too_old"]
    assert rej.samples == 1
    assert rej.series == 'up{job="y"}'
    assert "retention boundary" in rej.message
    assert samples(head, ("job", "y")) == {'up{job="y"}': [(NOW - 1000, 2.0)]}


def test_invalid_series_rejected_others_written():
    head = make_head(series_limits=SeriesLimits(max_label_value_length=5))
    res = apply(
        head,
        batch(
            ((("__name__", "up"), ("job", "toolongvalue")), [(NOW, 1.0), (NOW + 1, 1.0)]),
            ((("job", "nom"),), [(NOW, 1.0)]),
            (UP, [(NOW, 1.0)]),
        ),
    )
    reasons = by_reason(res)
    assert reasons["label_value_too_long"].samples == 2
    assert "toolongvalue" in reasons["label_value_too_long"].series
    assert reasons["missing_metric_name"].samples == 1
    assert res.accepted == 1
    assert list(samples(head)) == ['up{job="x"}']


@pytest.mark.parametrize("keyed", [False, True])
def test_first_request_of_only_unusable_labels_is_rejected_not_crashed(keyed):
    """No label of the request was ever valid, so none is registered (found by
    tests/storage/head/test_resolve_property.py: it raised IndexError)."""
    head = make_head()
    res = apply(head, batch(((("zone", ""),), [(NOW, 1.0)]), keyed=keyed))
    assert [r.reason for r in res.rejected] == ["missing_metric_name"]
    assert res.accepted == 0
    assert len(head.index) == 0


def test_invalid_series_in_keyed_batch():
    head = make_head()
    res = apply(
        head,
        batch(
            ((("__name__", "up"), ("bad-name", "v")), [(NOW, 1.0)]), (UP, [(NOW, 1)]), keyed=True
        ),
    )
    assert by_reason(res)["invalid_label_name"].samples == 1
    assert res.accepted == 1


def test_cluster_override_replaces_the_sent_label():
    head = make_head()
    sent = (("__name__", "up"), ("cluster", "evil"), ("job", "x"))
    apply(head, batch((sent, [(NOW, 1.0)])), cluster="eu-1")
    apply(head, batch((sent, [(NOW, 2.0)]), keyed=True), cluster="us-2")
    apply(head, batch((sent, [(NOW, 3.0)])))
    assert samples(head) == {
        'up{cluster="eu-1", job="x"}': [(NOW, 1.0)],
        'up{cluster="evil", job="x"}': [(NOW, 3.0)],
        'up{cluster="us-2", job="x"}': [(NOW, 2.0)],
    }
    assert head.active_series_by_cluster() == {"eu-1": 1, "us-2": 1, "evil": 1}


def test_same_key_under_two_identities_are_two_series():
    head = make_head()
    b = batch((UP, [(NOW, 1.0)]), keyed=True)
    apply(head, b, cluster="a")
    apply(head, b, cluster="b")
    assert sorted(samples(head)) == ['up{cluster="a", job="x"}', 'up{cluster="b", job="x"}']


def test_series_limit_per_cluster():
    head = make_head(max_series_per_cluster=2)
    known = [((("__name__", "m"), ("i", str(i))), [(NOW, 1.0)]) for i in range(2)]
    apply(head, batch(*known), cluster="eu")
    new = [((("__name__", "m"), ("i", str(i))), [(NOW + 1, 2.0)]) for i in range(2, 5)]
    res = apply(head, batch(*known[:1], *new, keyed=True), cluster="eu")
    limited = [r for r in res.rejected if r.reason == "series_limit"]
    assert len(limited) == 3
    assert all(r.retryable for r in limited)
    assert "'eu'" in limited[0].message
    assert "maximum of 2" in limited[0].message
    assert "3 new series" in limited[0].message
    assert res.accepted == 1  # the known series still got its sample
    # Another cluster has its own budget.
    assert apply(head, batch(*new[:2]), cluster="us").rejected == []
    assert head.active_series_by_cluster() == {"eu": 2, "us": 2}


def test_series_limit_not_enforced_on_replay():
    head = make_head(max_series_per_cluster=1)
    b = batch(*[((("__name__", "m"), ("i", str(i))), [(NOW, 1.0)]) for i in range(3)])
    assert apply(head, b, cluster="eu", limits=False).rejected == []
    assert head.active_series_by_cluster() == {"eu": 3}


def test_metadata_latest_wins():
    head = make_head()
    apply(head, batch(metadata=[SeriesMetadata("up", "gauge", "old help")]))
    apply(head, batch(metadata=[SeriesMetadata("up", "gauge", "new help")]))
    assert head.metadata["up"].help == "new help"


def test_unsorted_batch_from_code():
    head = make_head()
    b = WriteBatch(
        series=[UP, (("__name__", "up"), ("job", "z"))],
        series_idx=np.array([1, 0, 1, 0], dtype=np.int32),
        timestamps=np.array([NOW + 2, NOW + 3, NOW + 1, NOW + 1], dtype=np.int64),
        values=np.array([2.0, 3.0, 1.0, 1.0]),
    )
    assert apply(head, b).accepted == 4
    assert samples(head) == {
        'up{job="x"}': [(NOW + 1, 1.0), (NOW + 3, 3.0)],
        'up{job="z"}': [(NOW + 1, 1.0), (NOW + 2, 2.0)],
    }


def test_empty_labels_values_are_dropped_from_series_identity():
    head = make_head()
    apply(head, batch(((("__name__", "up"), ("job", "x"), ("zone", "")), [(NOW, 1.0)])))
    apply(head, batch((UP, [(NOW + 1, 2.0)])))
    assert samples(head) == {'up{job="x"}': [(NOW, 1.0), (NOW + 1, 2.0)]}
    assert head.index.get(Labels.from_pairs(UP)) is not None


def test_bulk_creation_with_override_mixes_sent_and_missing_cluster_labels():
    head = make_head()
    sent = [
        ((("__name__", "m"), ("cluster", "evil"), ("i", str(i))), [(NOW, 1.0)]) for i in range(3)
    ] + [((("__name__", "m"), ("i", str(i))), [(NOW, 2.0)]) for i in range(3, 6)]
    res = apply(head, batch(*sent, keyed=True), cluster="eu")
    assert res.rejected == []
    assert res.accepted == 6
    assert sorted(samples(head)) == [f'm{{cluster="eu", i="{i}"}}' for i in range(6)]
    assert head.active_series_by_cluster() == {"eu": 6}


def test_one_label_set_under_two_keys_in_one_batch_is_one_series():
    head = make_head()
    # Unsorted labels with an empty value: another key, the same series once canonical.
    b = batch(
        (UP, [(NOW, 1.0)]),
        ((("job", "x"), ("__name__", "up"), ("e", "")), [(NOW + 1, 2.0)]),
        keyed=True,
    )
    res = apply(head, b)
    assert res.rejected == []
    assert res.accepted == 2
    assert samples(head) == {'up{job="x"}': [(NOW, 1.0), (NOW + 1, 2.0)]}
    assert len(head.index) == 1


def test_series_limit_inside_one_bulk_creation_keeps_label_order():
    head = make_head(max_series_per_cluster=3)
    new = [((("__name__", "m"), ("i", str(i))), [(NOW, 1.0)]) for i in (5, 1, 4, 2, 3)]
    res = apply(head, batch(*new, keyed=True), cluster="eu")
    limited = sorted(r.series for r in res.rejected if r.reason == "series_limit")
    # The first three in label order are created; the others are refused.
    assert limited == ['m{cluster="eu", i="4"}', 'm{cluster="eu", i="5"}']
    assert sorted(samples(head)) == [f'm{{cluster="eu", i="{i}"}}' for i in (1, 2, 3)]


def test_index_forgets_labels_of_removed_series():
    head = make_head(retention_ms=3_600_000)
    apply(head, batch((UP, [(NOW - 7_200_000, 1.0)]), keyed=True), now=NOW - 7_200_000)
    apply(head, batch(((("__name__", "other"),), [(NOW, 1.0)]), keyed=True))
    assert head.apply_retention() == 1
    assert head.index.pairs.lookup([label_key("job", "x")]).tolist() == [-1]
    assert head.index.num_pairs == 1
    res = apply(head, batch((UP, [(NOW, 3.0)]), keyed=True))
    assert res.accepted == 1
    assert samples(head, ("__name__", "up")) == {'up{job="x"}': [(NOW, 3.0)]}


@pytest.mark.parametrize("keyed", [False, True])
def test_empty_identity_stores_series_without_cluster(keyed):
    head = make_head()
    sent = [
        ((("__name__", "up"), ("cluster", "evil"), ("job", "x")), [(NOW, 1.0)]),
        ((("__name__", "up"), ("job", "y")), [(NOW, 2.0)]),
    ]
    res = apply(head, batch(*sent, keyed=keyed), cluster="")
    assert res.rejected == []
    assert samples(head) == {'up{job="x"}': [(NOW, 1.0)], 'up{job="y"}': [(NOW, 2.0)]}
    assert head.active_series_by_cluster() == {"": 2}


def test_labels_of_a_rejected_series_serve_a_later_valid_one():
    head = make_head()
    bad = ((("__name__", "up"), ("pod", "p-1"), ("x-y", "1")), [(NOW, 1.0)])
    res = apply(head, batch(bad, keyed=True))
    assert by_reason(res)["invalid_label_name"].samples == 1
    good = ((("__name__", "up"), ("pod", "p-1")), [(NOW, 2.0)])
    res = apply(head, batch(good, keyed=True))
    assert res.rejected == []
    assert samples(head) == {'up{pod="p-1"}': [(NOW, 2.0)]}
    assert head.index.label_values("pod") == ["p-1"]


def test_refused_series_leave_no_label_values_behind():
    head = make_head(max_series_per_cluster=1)
    new = [((("__name__", "m"), ("i", str(i))), [(NOW, 1.0)]) for i in range(5)]
    res = apply(head, batch(*new, keyed=True), cluster="eu")
    assert sum(r.reason == "series_limit" for r in res.rejected) == 4
    assert head.index.label_values("i") == ["0"]
    assert head.index.num_pairs == 3  # __name__, cluster, i="0"


def test_cluster_of_each_series_as_sent_when_one_sends_it_twice():
    head = make_head()
    twice = ((("__name__", "m"), ("cluster", "a"), ("cluster", "a")), [(NOW, 1.0)])
    none = ((("__name__", "n"),), [(NOW, 2.0)])
    res = apply(head, batch(twice, none, keyed=True))
    assert by_reason(res)["duplicate_label_name"].samples == 1
    assert samples(head) == {"n": [(NOW, 2.0)]}
    assert head.active_series_by_cluster() == {"": 1}
