"""The two exception tables: query-API JSON errors and remote-write answers."""

from __future__ import annotations

import pytest

from aggregator.api.responses import (
    INTERNAL,
    WRITE_INTERNAL,
    classify,
    classify_write,
)
from aggregator.errors import BadData, NotReady, Unauthorized, UnsupportedMediaType
from promql import errors as qerr
from remote_write.errors import DecodeError, PayloadTooLarge
from storage.errors import StorageUnavailable


@pytest.mark.parametrize(
    ("exc", "status", "retry_after"),
    [
        (Unauthorized("x"), 401, None),
        (UnsupportedMediaType("x"), 415, None),
        (PayloadTooLarge("x"), 413, None),
        (DecodeError("x"), 400, None),
        (NotReady("x"), 503, 5),
        (StorageUnavailable("x"), 503, 10),
    ],
)
def test_write_table(exc: Exception, status: int, retry_after: int | None) -> None:
    refusal = classify_write(exc)
    assert (refusal.status, refusal.retry_after_s) == (status, retry_after)


def test_write_table_subclasses_and_unknown() -> None:
    class WALFull(StorageUnavailable):
        pass

    assert classify_write(WALFull("disk full")).status == 503
    assert classify_write(RuntimeError("bug")) is WRITE_INTERNAL
    assert WRITE_INTERNAL.status == 500


def test_query_table() -> None:
    assert classify(BadData("x")) == ("bad_data", 400)
    assert classify(qerr.QueryTimeout("x")) == ("timeout", 503)
    assert classify(StorageUnavailable("x")) == ("unavailable", 503)
    assert classify(KeyError("x")) == INTERNAL
