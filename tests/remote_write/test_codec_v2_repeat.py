"""Remote write 2.0: a request repeating a kept table's references and metadata.

The decoder then reuses what the earlier request decoded to (keys, metadata);
these tests check that the result is exactly what a full decode gives, and
that anything differing (a series, a symbol, metadata, the table itself
dropped) is decoded anew.
"""

from __future__ import annotations

import time

import snappy

from remote_write.codec_v2 import BAD_SYMBOL_REFERENCE, decode_write_request_v2
from remote_write.prompb import write_v2_pb2
from remote_write.symbols import SymbolIds
from storage.db import Storage
from storage.labels import Matcher, MatchType
from storage.options import StorageOptions
from tests.support.rw2 import SeriesV2, build_v2

T = 1_700_000_000_000
NOW = int(time.time() * 1000)
N = 40  # 40 pods and instances: a table of over 64 symbols, so it is kept


def labels(i: int, pod: str = "pod") -> tuple[tuple[str, str], ...]:
    return (
        ("__name__", f"m_{i % 3}"),
        ("instance", f"10.0.0.{i}:9100"),
        ("job", "node"),
        ("pod", f"{pod}-{i}"),
    )


def request(t: int, pod: str = "pod", metric_type: str = "gauge") -> write_v2_pb2.Request:
    return build_v2(
        [
            SeriesV2(labels(i, pod), [(t, float(i))], metric_type=metric_type, help="h")
            for i in range(N)
        ]
    )


def body(req: write_v2_pb2.Request) -> bytes:
    return snappy.compress(req.SerializeToString())


def decode(req: write_v2_pb2.Request, ids: SymbolIds):
    return decode_write_request_v2(body(req), symbol_ids=ids)


def fresh_keys(req: write_v2_pb2.Request, ids: SymbolIds) -> list[bytes]:
    """The keys a full decode gives, with the same ids (a copy of `ids` that keeps
    no tables would number the strings alike, but tag its keys otherwise)."""
    saved = ids.table_bytes
    ids.table_bytes = 0
    try:
        keys = decode(req, ids).batch.series_keys
    finally:
        ids.table_bytes = saved
    assert keys is not None
    return keys


def test_a_repeated_request_gives_its_keys_labels_and_metadata_again() -> None:
    ids = SymbolIds()
    first = decode(request(T), ids).batch
    again = decode(request(T + 15_000), ids).batch
    assert first.series_keys is not None
    assert again.series_keys is not None
    # Reused, not rebuilt: the very key objects of the first request.
    assert all(a is b for a, b in zip(again.series_keys, first.series_keys, strict=True))
    assert again.series_keys == fresh_keys(request(T), ids)
    assert again.timestamps.tolist() == [T + 15_000] * N  # the samples are the new ones
    assert again.values.tolist() == [float(i) for i in range(N)]
    assert list(again.series) == [labels(i) for i in range(N)]  # decoded on demand
    assert [(m.metric_family_name, m.type, m.help) for m in again.metadata] == [
        (f"m_{k}", "gauge", "h") for k in range(3)
    ]


def test_a_repeated_table_with_a_changed_series_decodes_that_series() -> None:
    ids = SymbolIds()
    first = decode(request(T), ids).batch
    changed = request(T + 15_000)
    # Same table; series 0 now names pod-1 (a symbol of series 1): another series.
    refs = list(changed.timeseries[0].labels_refs)
    refs[7] = changed.timeseries[1].labels_refs[7]
    del changed.timeseries[0].labels_refs[:]
    changed.timeseries[0].labels_refs.extend(refs)
    batch = decode(changed, ids).batch
    assert batch.series_keys is not None
    assert first.series_keys is not None
    assert batch.series[0] == (*labels(0)[:3], ("pod", "pod-1"))
    assert batch.series_keys[0] not in first.series_keys
    assert batch.series_keys[1:] == first.series_keys[1:]
    assert batch.series_keys == fresh_keys(changed, ids)


def test_changed_metadata_under_a_repeated_table_is_read_again() -> None:
    ids = SymbolIds()
    decode(request(T), ids)
    batch = decode(request(T + 15_000, metric_type="counter"), ids).batch
    assert {m.type for m in batch.metadata} == {"counter"}


def test_the_same_references_under_tables_differing_in_one_symbol_are_other_series() -> None:
    ids = SymbolIds()
    one = request(T)
    two = request(T)
    # Identical references and metadata; the table differs in pod-5's symbol only.
    at = list(two.symbols).index("pod-5")
    two.symbols[at] = "other-5"
    a = decode(one, ids).batch
    b = decode(two, ids).batch
    assert a.series_keys is not None
    assert b.series_keys is not None
    assert [x == y for x, y in zip(a.series_keys, b.series_keys, strict=True)] == [
        i != 5 for i in range(N)
    ]
    assert b.series[5] == (*labels(5)[:3], ("pod", "other-5"))
    assert b.series_keys == fresh_keys(two, ids)
    # Each table's repeat still gives its own series.
    assert decode(one, ids).batch.series_keys == a.series_keys
    assert decode(two, ids).batch.series_keys == b.series_keys


def test_a_dropped_table_is_decoded_in_full_again() -> None:
    ids = SymbolIds(table_bytes=12_000)
    first = decode(request(T), ids).batch
    for k in range(20):  # other tables push the first one (and its requests) out
        decode(request(T, pod=f"p{k}"), ids)
    assert ids._tables_size <= 12_000
    again = decode(request(T + 15_000), ids).batch
    assert again.series_keys is not None
    assert first.series_keys is not None
    assert not any(a is b for a, b in zip(again.series_keys, first.series_keys, strict=True))
    assert again.series_keys == first.series_keys  # same ids: the strings are still known
    assert list(again.series) == [labels(i) for i in range(N)]


def test_a_refused_series_is_refused_again_when_repeated() -> None:
    ids = SymbolIds()
    bad = request(T)
    bad.timeseries[3].labels_refs[7] = len(bad.symbols) + 5
    for t in (T, T + 15_000):
        bad.timeseries[0].samples[0].timestamp = t
        decoded = decode(bad, ids)
        assert [r.reason for r in decoded.rejected] == [BAD_SYMBOL_REFERENCE]
        assert "series #3" in decoded.rejected[0].message
        assert len(decoded.batch.series) == N - 1


async def test_storage_stores_a_repeated_request_under_the_right_series(tmp_path) -> None:
    ids = SymbolIds()
    known = await Storage.open(tmp_path / "known", StorageOptions())
    fresh = await Storage.open(tmp_path / "fresh", StorageOptions())
    try:
        first = decode(request(NOW - 30_000), ids).batch
        again = decode(request(NOW - 15_000), ids).batch  # the repeat: keys reused
        app = known.appender()
        assert app.append(first).accepted == N
        assert app.append(again).accepted == N
        await app.commit()
        # A head that never saw these keys asks for the labels: decoded on demand.
        app = fresh.appender()
        assert app.append(decode(request(NOW), ids).batch).accepted == N
        await app.commit()
        for storage, samples in ((known, [NOW - 30_000, NOW - 15_000]), (fresh, [NOW])):
            async with storage.querier(NOW - 60_000, NOW + 1) as q:
                ss = await q.select([Matcher(MatchType.RE, "pod", ".+")], NOW - 60_000, NOW + 1)
            got = {dict(s.labels)["pod"]: s.timestamps.tolist() for s in ss.series}
            assert got == {f"pod-{i}": samples for i in range(N)}
    finally:
        await known.close()
        await fresh.close()
