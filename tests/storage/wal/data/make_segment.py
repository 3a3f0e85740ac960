"""Write the pinned WAL segment of the current format version (run once per version).

    PYTHONPATH=. .venv/bin/python tests/storage/wal/data/make_segment.py

writes `tests/storage/wal/data/v<VERSION>/00000000`: a few remote-write
requests appended the way `StorageAppender.append` does (checked and applied
to a head, then logged with the writer identity, the wall clock and the series
refused for the limit), with a fixed clock so that the file is the same on
every run. `tests/storage/wal/test_pinned_segment.py` replays it and checks
exactly what it holds. A new frame version gets a new directory from this
script; the old ones stay, and replay must keep reading them.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from remote_write.batch import STALE_NAN, SeriesMetadata, WriteBatch
from remote_write.codec import encode_write_request
from remote_write.codec_v2 import decode_write_request_v2
from remote_write.symbols import SymbolIds
from storage.head.appender import apply_batch
from storage.head.head import Head
from storage.options import FsyncPolicy, StorageOptions
from storage.wal.frame import VERSION
from storage.wal.reader import segment_path
from storage.wal.writer import WALWriter
from tests.support.rw2 import SeriesV2, request_v2

NOW = 1_700_000_000_000
"""The wall clock of every append (2023-11-14T22:13:20Z)."""
OPTIONS = StorageOptions(max_series_per_cluster=3, wal_fsync=FsyncPolicy.ALWAYS)


def requests() -> list[tuple[str | None, WriteBatch]]:
    """(writer identity, request) in append order."""
    up = (("__name__", "up"), ("instance", "a:9100"), ("job", "node"))
    reqs = (("__name__", "http_requests_total"), ("cluster", "eu"), ("code", "200"))
    gone = (("__name__", "up"), ("instance", "b:9100"), ("job", "node"))
    return [
        (  # as sent: two samples, a series ended by a stale marker, metadata
            None,
            WriteBatch.from_series(
                [
                    (up, [NOW - 30_000, NOW - 15_000], [1.0, 1.0]),
                    (reqs, [NOW - 15_000], [1027.5]),
                    (gone, [NOW - 30_000, NOW - 15_000], [1.0, STALE_NAN]),
                ],
                [SeriesMetadata("up", "gauge", "whether the target is up", "")],
            ),
        ),
        (  # a pushing cluster: its name replaces the sent `cluster`; the fourth
            # new series is over its limit of three and is listed as skipped
            "edge-1",
            WriteBatch.from_series(
                [
                    ((("__name__", "temp_c"), ("cluster", "evil"), ("room", "a")), [NOW], [21.5]),
                    ((("__name__", "temp_c"), ("room", "b")), [NOW], [19.0]),
                    ((("__name__", "temp_c"), ("room", "c")), [NOW], [18.25]),
                    ((("__name__", "temp_c"), ("room", "d")), [NOW], [17.0]),
                ]
            ),
        ),
        (  # an empty identity: series are stored without `cluster`; one sample
            # too far in the future is refused, the other stored
            "",
            WriteBatch.from_series(
                [
                    (
                        (("__name__", "jobs_queued"), ("cluster", "x"), ("queue", "mail")),
                        [NOW - 1_000, NOW + 3_600_000],
                        [3.0, 4.0],
                    )
                ]
            ),
        ),
    ]


def request_2() -> bytes:
    """The remote-write 2.0 request logged after `requests()` (frame version 2 on):
    a counter with an exemplar, metadata and a created timestamp."""
    return request_v2(
        [
            SeriesV2(
                (("__name__", "orders_total"), ("cluster", "eu"), ("shop", "north")),
                [(NOW - 15_000, 7.0), (NOW, 9.0)],
                [((("trace_id", "4bf92f3577b34da6"),), 2.0, NOW - 1_000)],
                "counter",
                "orders taken",
                created_ms=NOW - 3_600_000,
            )
        ]
    )


async def write_segment(directory: Path) -> Path:
    """Append `requests()` into a new WAL in `directory`; returns the segment file."""
    head = Head(OPTIONS)
    wal = WALWriter(directory, OPTIONS, first_segment=0)
    await wal.start()
    seq = 0
    for identity, batch in requests():
        applied = apply_batch(head, batch, identity, now_ms=NOW)
        body = encode_write_request(batch)
        seq = wal.log(identity, body, NOW, applied.max_ts, applied.limited)
    if VERSION >= 2:
        body = request_2()
        batch = decode_write_request_v2(body, symbol_ids=SymbolIds()).batch
        applied = apply_batch(head, batch, None, now_ms=NOW)
        seq = wal.log(None, body, NOW, applied.max_ts, applied.limited, body_format=2)
    await wal.wait(seq)
    await wal.close()
    return segment_path(directory, 0)


def main() -> int:
    target = Path(__file__).resolve().parent / f"v{VERSION}" / "00000000"
    with tempfile.TemporaryDirectory() as tmp:
        written = asyncio.run(write_segment(Path(tmp)))
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(written.read_bytes())
    print(f"wrote {target} ({target.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
