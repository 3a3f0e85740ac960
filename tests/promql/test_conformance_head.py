"""The PromQL test scripts a second time, through the real head.

`test_conformance.py` runs them over `storage.memory.MemoryStorage`, a store
that is obviously right; this runs the same scripts over a `storage.db.Storage`
on a temporary directory, each `load` written through the appender and the
WAL (`tests.promql.headstore`), so the head's select (index matchers, label
order, parts, the active buffer, out-of-order merges, stale markers) is held
to the same answers. Case ids are `head-<file>:<line>`; the known failures,
their strict xfails and the pass-count floor are the memory run's, so both runs
must pass exactly the same evals.

Each script runs once per session against one storage (reopened at `clear`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from promql.engine import Engine
from tests.promql.headstore import HeadStore
from tests.promql.promqltest import CaseResult, Runner, load_file
from tests.promql.test_conformance import (
    FLOOR_FILE,
    _cases,
    _require_testdata,
    _test_files,
    _testdata_dir,
)


class _HeadResults:
    """Outcome of every eval over the head, one whole script at a time, on demand."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._by_file: dict[str, dict[str, CaseResult]] = {}

    def for_file(self, name: str) -> dict[str, CaseResult]:
        if name not in self._by_file:
            results = asyncio.run(self._run(name))
            self._by_file[name] = {r.case_id: r for r in results}
        return self._by_file[name]

    async def _run(self, name: str) -> list[CaseResult]:
        store = HeadStore(self._root / name)
        await store.open()
        try:
            return list(await Runner(Engine(), store).run(load_file(_testdata_dir() / name)))
        finally:
            await store.close()


@pytest.fixture(scope="session")
def conformance_head(tmp_path_factory: pytest.TempPathFactory) -> _HeadResults:
    return _HeadResults(tmp_path_factory.mktemp("conformance-head"))


def _head_cases() -> list[object]:
    return [
        pytest.param(*case.values, id=f"head-{case.id}", marks=case.marks)
        for case in _cases()
        if isinstance(case, type(pytest.param()))
    ]


@pytest.mark.parametrize(("file", "case_id"), _head_cases())
def test_eval_through_the_head(conformance_head: _HeadResults, file: str, case_id: str) -> None:
    result = conformance_head.for_file(file)[case_id]
    if result.outcome == "skipped":
        pytest.skip(result.reason)
    assert result.outcome == "passed", f"{case_id} {result.expr}: {result.reason}"


def test_pass_count_through_the_head(conformance_head: _HeadResults) -> None:
    _require_testdata()
    files = _test_files()
    total: Counter[str] = Counter()
    for path in files:
        total.update(r.outcome for r in conformance_head.for_file(path.name).values())
    print(
        f"\nPromQL conformance through the head: {total['passed']} passed, "
        f"{total['failed']} failed, {total['skipped']} skipped"
    )
    floor = int(FLOOR_FILE.read_text().split()[0])
    assert total["passed"] >= floor, f"{total['passed']} evals pass, the floor is {floor}"
