"""The on-disk WAL contract: checked-in segments of every format version still replay.

`data/v1/00000000` and `data/v2/00000000` were written once by
`data/make_segment.py` (see there); version 2 adds a remote-write 2.0 record.
Replaying it must give exactly the series and samples below, whatever the
code of the day: a change that breaks this is a format change, and needs a
new `storage.wal.frame.VERSION` with replay still reading version 1.
"""

from __future__ import annotations

import math
import shutil
import struct
from pathlib import Path

import pytest

from remote_write.batch import STALE_NAN_BITS
from remote_write.codec import decode_write_request
from remote_write.codec_v2 import decode_write_request_v2
from remote_write.symbols import SymbolIds
from storage.head.head import Head
from storage.head.querier import select
from storage.labels import Matcher, MatchType
from storage.options import StorageOptions
from storage.wal.frame import HEADER, PAYLOAD_HEAD, VERSION, encode_frame
from storage.wal.reader import read_segment
from storage.wal.replay import replay

DATA = Path(__file__).resolve().parent / "data"
V1 = DATA / "v1" / "00000000"
V2 = DATA / "v2" / "00000000"
NOW = 1_700_000_000_000

EXPECTED = {
    'http_requests_total{cluster="eu", code="200"}': [(NOW - 15_000, 1027.5)],
    'jobs_queued{queue="mail"}': [(NOW - 1_000, 3.0)],
    'temp_c{cluster="edge-1", room="a"}': [(NOW, 21.5)],
    'temp_c{cluster="edge-1", room="b"}': [(NOW, 19.0)],
    'temp_c{cluster="edge-1", room="c"}': [(NOW, 18.25)],
    'up{instance="a:9100", job="node"}': [(NOW - 30_000, 1.0), (NOW - 15_000, 1.0)],
    'up{instance="b:9100", job="node"}': [(NOW - 30_000, 1.0), (NOW - 15_000, math.nan)],
}
"""Every series and sample of the segment, as a query sees them after replay."""


def head_contents(head: Head) -> dict[str, list[tuple[int, float]]]:
    ss = select(head, [Matcher(MatchType.RE, "__name__", ".+")], 0, NOW + 10 * 3_600_000)
    return {
        str(s.labels): list(zip(s.timestamps.tolist(), s.values.tolist(), strict=True))
        for s in ss.series
    }


async def test_version_1_segment_replays_to_exactly_its_series(tmp_path):
    wal = tmp_path / "wal"
    wal.mkdir()
    shutil.copy(V1, wal / V1.name)
    head = Head(StorageOptions(max_series_per_cluster=3))
    result = await replay(wal, head)

    assert (result.records, result.samples, result.truncated) == (3, 9, None)
    assert result.next_segment == 1
    got = head_contents(head)
    assert got.keys() == EXPECTED.keys()
    for series, samples in EXPECTED.items():  # NaN != NaN: compare the stale marker by bits
        assert [t for t, _ in got[series]] == [t for t, _ in samples], series
        for (_, value), (_, want) in zip(got[series], samples, strict=True):
            assert value == want or (math.isnan(value) and math.isnan(want)), series
    (stale,) = [v for _, v in got['up{instance="b:9100", job="node"}'][1:]]
    assert struct.unpack("<Q", struct.pack("<d", stale))[0] == STALE_NAN_BITS
    assert head.metadata["up"].help == "whether the target is up"
    assert head.active_series_by_cluster() == {"": 3, "eu": 1, "edge-1": 3}


async def test_version_2_segment_replays_the_2_0_record_with_its_exemplar(tmp_path):
    wal = tmp_path / "wal"
    wal.mkdir()
    shutil.copy(V2, wal / V2.name)
    head = Head(StorageOptions(max_series_per_cluster=3))
    result = await replay(wal, head)

    assert (result.records, result.samples, result.truncated) == (4, 11, None)
    got = head_contents(head)
    assert got['orders_total{cluster="eu", shop="north"}'] == [(NOW - 15_000, 7.0), (NOW, 9.0)]
    assert got.keys() - EXPECTED.keys() == {'orders_total{cluster="eu", shop="north"}'}
    assert head.metadata["orders_total"].type == "counter"
    assert head.metadata["orders_total"].help == "orders taken"
    (found,) = head.exemplars.select(head.index.select([]), 0, NOW)
    assert found.labels == [(("trace_id", "4bf92f3577b34da6"),)]
    assert (found.timestamps.tolist(), found.values.tolist()) == ([NOW - 1_000], [2.0])


def test_the_writer_writes_the_pinned_frames_of_its_version():
    """Frame by frame, the segment pinned for the current version is what the
    writer encodes today: same header, record head and layout. (A new version
    comes with its own pinned segment, and version 1's stays.)"""
    current = DATA / f"v{VERSION}" / "00000000"
    if not current.exists():
        pytest.fail(
            f"WAL frame version {VERSION} has no pinned segment: run "
            "tests/storage/wal/data/make_segment.py and keep the older versions' files"
        )
    data = current.read_bytes()
    records, end = read_segment(current)
    assert end.problem is None
    assert end.offset == len(data)
    assert [(r.cluster, r.now_ms, r.skip, r.body_format) for _, r in records] == [
        (None, NOW, (), 1),
        ("edge-1", NOW, (3,), 1),
        ("", NOW, (), 1),
        (None, NOW, (), 2),
    ]
    for i, (offset, record) in enumerate(records):
        end_at = records[i + 1][0] if i + 1 < len(records) else len(data)
        frame = encode_frame(
            record.cluster, record.now_ms, record.body, record.skip, record.body_format
        )
        assert frame == data[offset:end_at]
        version, *_ = PAYLOAD_HEAD.unpack_from(data, offset + HEADER.size)
        # 1.0 bodies keep frame version 1, byte for byte; 2.0 bodies need version 2.
        assert version == (VERSION if record.body_format == 2 else 1)
        if record.body_format == 2:
            assert decode_write_request_v2(record.body, symbol_ids=SymbolIds()).batch.series
        else:
            assert decode_write_request(record.body).batch.series
