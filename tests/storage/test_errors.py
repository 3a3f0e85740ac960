"""The storage error tree is the one source of the reasons a write is refused."""

from __future__ import annotations

from remote_write.batch import WriteBatch
from storage import errors
from storage.head.appender import REASONS, apply_batch
from storage.head.head import Head
from storage.options import StorageOptions

NOW = 1_700_000_000_000


def _refusals() -> list[type[errors.SampleRejected]]:
    return list(errors.SampleRejected.__subclasses__())


def test_every_refusal_has_its_own_reason_code() -> None:
    reasons = [cls.reason for cls in _refusals()]
    assert len(reasons) == len(set(reasons)) == 5
    assert all(r and r == r.lower() and " " not in r for r in reasons)
    assert [cls for cls in _refusals() if cls.retryable] == [errors.SeriesLimitExceeded]


def test_rejection_records_carry_the_class_reason_and_retryability() -> None:
    rec = errors.SeriesLimitExceeded.rejection('{__name__="up"}', "series limit reached", 3)
    assert (rec.reason, rec.retryable, rec.samples) == ("series_limit", True, 3)
    rec = errors.OutOfOrderSample.rejection('{__name__="up"}', "out of order", 1)
    assert (rec.reason, rec.retryable) == ("out_of_order_sample", False)


def test_head_refusals_come_from_the_tree() -> None:
    """Every sample check of the head answers with a reason of a SampleRejected class."""
    options = StorageOptions(max_series_per_cluster=1)
    head = Head(options)
    series = [(("__name__", "up"), ("cluster", "a")), (("__name__", "down"), ("cluster", "a"))]
    first = WriteBatch.from_series([(series[0], [NOW - 1000], [1.0])])
    assert not apply_batch(head, first, None, now_ms=NOW).result.rejected
    far_future = NOW + 24 * 3600_000
    too_old = NOW - 30 * 24 * 3600_000
    later = WriteBatch.from_series(
        [
            (series[0], [NOW - 1000, far_future, too_old], [2.0, 1.0, 1.0]),
            (series[1], [NOW], [1.0]),
        ]
    )
    result = apply_batch(head, later, None, now_ms=NOW).result
    assert {r.reason for r in result.rejected} == {
        errors.DuplicateSample.reason,
        errors.SampleTooFarInFuture.reason,
        errors.TooOldSample.reason,
        errors.SeriesLimitExceeded.reason,
    }
    assert set(REASONS.values()) | {errors.SeriesLimitExceeded} == set(_refusals())
    assert all(r.message for r in result.rejected)
