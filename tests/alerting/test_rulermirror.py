"""Ruler namespaces between the data directory and the object store."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.rulermirror import PREFIX, RulerMirror
from alerting.rulerstore import RulerStore
from storage.objstore.memory import MemoryStore

GROUPS = b"groups:\n- name: g\n  rules:\n  - record: r\n    expr: vector(1)\n"


async def test_a_new_node_downloads_what_only_the_store_has(tmp_path: Path) -> None:
    store = MemoryStore()
    await store.put(PREFIX + "team%2Fa.yaml", GROUPS)
    local = RulerStore(tmp_path / "rules")
    assert await RulerMirror(local, store).reconcile() == 1
    assert local.read_file("team%2Fa.yaml") == GROUPS
    assert list(local.namespaces()) == ["team/a"]


async def test_local_edits_the_store_missed_are_uploaded(tmp_path: Path) -> None:
    store = MemoryStore()
    await store.put(PREFIX + "a.yaml", b"groups: []\n")
    local = RulerStore(tmp_path / "rules")
    local.write_file("a.yaml", GROUPS)  # edited here while the store was down
    local.write_file("b.yaml", GROUPS)  # created here while the store was down
    assert await RulerMirror(local, store).reconcile() == 0
    assert await store.get(PREFIX + "a.yaml") == GROUPS
    assert await store.get(PREFIX + "b.yaml") == GROUPS


async def test_push_mirrors_writes_and_deletes(tmp_path: Path) -> None:
    store = MemoryStore()
    local = RulerStore(tmp_path / "rules")
    mirror = RulerMirror(local, store)
    local.write_file(local.file_name("x/y"), GROUPS)
    await mirror.push("x/y")
    assert [k async for k in store.list(PREFIX)] == [PREFIX + "x%2Fy.yaml"]
    local.delete_namespace("x/y")
    await mirror.push("x/y")
    assert [k async for k in store.list(PREFIX)] == []


@pytest.mark.parametrize("name", ["../escape.yaml", "a/b.yaml", "plain.txt"])
def test_a_name_that_is_not_a_namespace_file_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not a namespace file name"):
        RulerStore(tmp_path / "rules").write_file(name, GROUPS)
