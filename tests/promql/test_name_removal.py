"""`__name__` removal with Prometheus 3's `promql-delayed-name-removal` off and on.

The shared test data (`name_label_dropping.test`, run by the conformance suite)
expects the feature on: names are only marked, so `label_replace` and
`by (__name__)` still see them, and dropped when evaluation ends. Prometheus 3
has it off by default: every operation that drops the name drops it at once.
`name_removal_off.test` holds that file's cases with the answers Prometheus
gives with the flag off; `differs` marks where they differ from the file's.
Prometheus 2.42 drops names at once too: `tests/integration/
test_name_removal_vs_prometheus.py` compares the service with it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from promql.engine import Engine
from promql.errors import ExecutionError
from promql.value import Vector
from storage.labels import Labels
from storage.memory import MemoryStorage
from tests.promql.promqltest import Runner, load_file

OFF_SCRIPT = Path(__file__).with_name("name_removal_off.test")


async def test_prometheus_3_semantics_with_delayed_name_removal_off() -> None:
    runner = Runner(Engine(delayed_name_removal=False))
    results = list(await runner.run(load_file(OFF_SCRIPT)))
    assert len(results) == 32
    failed = [f"{r.case_id} {r.expr}: {r.reason}" for r in results if r.outcome != "passed"]
    assert not failed, "\n".join(failed)


@pytest.fixture
def two_metrics() -> MemoryStorage:
    st = MemoryStorage()
    for name, value in (("metric_total", 120.0), ("another_metric_total", 180.0)):
        st.add(Labels.from_dict({"__name__": name, "env": "1"}), [0, 300_000], [0.0, value])
    st.add(Labels.from_dict({"__name__": "c", "env": "1"}), [0, 300_000], [1.0, 1.0])
    return st


async def test_label_replace_reads_the_name_only_with_delayed_removal(
    two_metrics: MemoryStorage,
) -> None:
    query = 'label_replace(rate({__name__=~".+_total"}[10m]), "src", "$1", "__name__", "(.+)")'
    res = await Engine(delayed_name_removal=True).instant_query(two_metrics, query, 300_000)
    assert isinstance(res.value, Vector)
    assert sorted(map(str, res.value.labels)) == [
        '{env="1", src="another_metric_total"}',
        '{env="1", src="metric_total"}',
    ]
    with pytest.raises(ExecutionError, match=r"^vector cannot contain metrics with the same"):
        await Engine(delayed_name_removal=False).instant_query(two_metrics, query, 300_000)


@pytest.mark.parametrize(
    ("delayed", "message"),
    [
        # the names survive the multiplication, so the two results only collide at the end
        (True, "vector cannot contain metrics with the same labelset"),
        # Prometheus 2.42 (names dropped at once) answers this too
        (False, "multiple matches for labels: grouping labels must ensure unique matches"),
    ],
)
async def test_group_left_uniqueness_is_checked_on_the_labels_left(
    two_metrics: MemoryStorage, delayed: bool, message: str
) -> None:
    engine = Engine(delayed_name_removal=delayed)
    with pytest.raises(ExecutionError) as info:
        await engine.instant_query(two_metrics, '{__name__=~".+_total"} * on() group_left c', 0)
    assert str(info.value) == message
