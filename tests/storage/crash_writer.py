"""Child process of the crash test: writes through Storage forever, printing commits.

    python -m tests.storage.crash_writer DATA_DIR FSYNC_POLICY

Four concurrent writers (job="w0".."w3") each append one batch per round, 25
series at timestamp T0 + round * 1000 with value `round`, and print
"<writer> <round>" only after `commit()` returned. The parent kills this
process with SIGKILL at some moment and checks what survived.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from remote_write.batch import WriteBatch
from remote_write.codec import decode_write_request, encode_write_request
from storage.db import Storage
from storage.options import FsyncPolicy, StorageOptions

T0 = 1_700_000_000_000
SERIES = 25
WRITERS = 4


def round_body(writer: int, rnd: int) -> WriteBatch:
    b = WriteBatch.from_series(
        [
            (
                (("__name__", "crash"), ("job", f"w{writer}"), ("i", str(i))),
                [T0 + rnd * 1000],
                [rnd],
            )
            for i in range(SERIES)
        ]
    )
    return decode_write_request(encode_write_request(b)).batch


async def writer(storage: Storage, w: int, start: int) -> None:
    app = storage.appender(cluster="crash")
    rnd = start
    while True:
        app.append(round_body(w, rnd))
        await app.commit()
        sys.stdout.write(f"{w} {rnd}\n")
        sys.stdout.flush()
        rnd += 1


async def main() -> None:
    data_dir, policy = Path(sys.argv[1]), FsyncPolicy(sys.argv[2])
    start = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    storage = await Storage.open(
        data_dir,
        StorageOptions(wal_fsync=policy, wal_segment_bytes=64 * 1024, head_buffer_rows=512),
    )
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.gather(*(writer(storage, w, start) for w in range(WRITERS)))


if __name__ == "__main__":
    asyncio.run(main())
