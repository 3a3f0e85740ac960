"""The agent's entry point loads only what the agent runs."""

from __future__ import annotations

import subprocess
import sys

from tests.support.realparts import REPO

FORBIDDEN = (
    "pyarrow",
    "pandas",
    "boto3",
    "botocore",
    "bcrypt",
    "aiohttp",
    "aiohttp.web",
    "aggregator.app",
    "aggregator.api",
    "aggregator.config",
    "aggregator.federation",
    "alerting.notify",
    "alerting.service",
    "alerting.manager",
    "storage.head",
    "storage.wal",
    "storage.blocks",
    "storage.objstore",
    "storage.tiering",
    "storage.db",
)

PROBE = """
import sys
from aggregator.entry import main  # the console script's module
import aggregator.edge.main, aggregator.edge.agent
loaded = sorted(m for m in sys.modules if m.startswith(%r))
print("\\n".join(loaded))
"""


def test_agent_imports_nothing_it_does_not_use() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE % (FORBIDDEN,)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert out.stdout.split() == []
    # ...while it does load the engine it evaluates rules with.
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, aggregator.edge.agent; print('promql.engine' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert check.stdout.strip() == "True"


def test_edge_help_through_the_console_entry() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "aggregator", "edge", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert "--token-file" in out.stdout
    assert "--cluster" in out.stdout


def test_a_bad_agent_config_exits_2_naming_the_key(tmp_path) -> None:
    (tmp_path / "agent.yml").write_text(
        "scrape_configs:\n  - job_name: a\n    relabel_configs: []\n"
    )
    (tmp_path / "token").write_text("t\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "aggregator",
            "edge",
            "--host",
            "http://127.0.0.1:1",
            "--cluster",
            "e",
            "--token-file",
            str(tmp_path / "token"),
            "--config",
            str(tmp_path / "agent.yml"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 2
    assert "scrape_configs[0].relabel_configs: unknown or unsupported key" in out.stderr
