"""Small modules with one job: in `storage/` and `remote_write/`, a module past
500 lines says why in its docstring (a paragraph starting "Over 500 lines:")."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 500


def test_long_modules_in_storage_and_remote_write_say_why() -> None:
    unexplained = []
    for package in ("storage", "remote_write"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "prompb" in path.parts:  # generated protobuf code
                continue
            text = path.read_text()
            lines = text.count("\n")
            doc = ast.get_docstring(ast.parse(text)) or ""
            if lines > LIMIT and "Over 500 lines:" not in doc:
                unexplained.append(f"{path.relative_to(ROOT)} ({lines} lines)")
    assert not unexplained, (
        f"split by job, or give the reason in the docstring ('Over 500 lines: ...'): "
        f"{', '.join(unexplained)}"
    )
