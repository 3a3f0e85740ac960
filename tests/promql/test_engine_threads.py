"""Large evaluations run in worker threads, and never touch the head's index there.

The series index is event-loop only (its reads fold postings and re-rank; see
`storage.index`) and refuses other threads. So these queries over a real
`Storage`, big enough that the engine offloads their evaluation, would fail
if evaluation reached back into storage from the thread; their answers must
equal the same engine's over the in-memory reference store.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from promql import engine as engine_module
from promql.engine import Engine
from promql.value import Matrix
from remote_write.batch import WriteBatch
from storage.db import Storage
from storage.labels import Labels
from storage.memory import MemoryStorage
from storage.options import FsyncPolicy, StorageOptions

STEP = 15_000
SERIES = 1000
POINTS = 241  # 1h at 15s: 241k samples in all, enough to be evaluated off the loop
QUERIES = [  # each loads every series of `m`
    "sum by (job) (rate(m[5m]))",
    "topk(3, m)",
    'count_values("v", m > 100)',
    'label_replace(m, "x", "$1", "pod", "pod-(.*)")',
    "max_over_time(m[10m:1m])",
    "m / on(pod) group_left m",
    'm unless on(pod) m{job="db"}',
]


async def test_offloaded_evaluation_never_touches_the_index(tmp_path, monkeypatch):
    now = int(time.time() * 1000)
    start = now - now % STEP - (POINTS - 1) * STEP
    ts = start + STEP * np.arange(POINTS, dtype=np.int64)
    reference = MemoryStorage()
    series = []
    for i in range(SERIES):
        labels = Labels.from_dict({"__name__": "m", "job": ("api", "db")[i % 2], "pod": f"pod-{i}"})
        values = np.cumsum(np.full(POINTS, float(i % 7 + 1)))
        reference.add(labels, ts, values)
        series.append((tuple(labels), ts, values))
    options = StorageOptions(wal_fsync=FsyncPolicy.NEVER)
    storage = await Storage.open(tmp_path, options)
    try:
        appender = storage.appender()
        assert appender.append(WriteBatch.from_series(series)).rejected == []
        await appender.commit()

        offloaded: list[int] = []
        loop_thread = threading.get_ident()

        class Recording(engine_module.Evaluator):
            def eval(self, *args, **kwargs):
                if threading.get_ident() != loop_thread:
                    offloaded.append(threading.get_ident())
                return super().eval(*args, **kwargs)

        monkeypatch.setattr(engine_module, "Evaluator", Recording)
        engine = Engine()
        end = int(ts[-1])
        for query in QUERIES:
            offloaded.clear()
            got = await engine.range_query(storage, query, end - 3_600_000, end, 60_000)
            want = await engine.range_query(reference, query, end - 3_600_000, end, 60_000)
            assert offloaded, f"{query}: evaluated on the loop, not in a worker thread"
            assert isinstance(got.value, Matrix)
            assert isinstance(want.value, Matrix)
            assert got.value.labels == want.value.labels, query
            np.testing.assert_array_equal(got.value.timestamps, want.value.timestamps)
            np.testing.assert_allclose(got.value.values, want.value.values, err_msg=query)
    finally:
        await storage.close()
