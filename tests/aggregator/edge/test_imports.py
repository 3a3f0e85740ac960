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
    # prometheus-client's package and what its exposition module loads: the agent
    # takes only its parsers (aggregator.edge.promparse) and serves its own metrics
    "prometheus_client",
    "http.server",
    "http.client",
    "wsgiref",
    "urllib.request",
    "email",
    # loads OpenSSL's libcrypto even without TLS
    "hashlib",
    "_hashlib",
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


TLS_PROBE = """
import sys
from pathlib import Path
from aggregator.edge.config import load_agent_config
from aggregator.edge.main import leave_out_tls, needs_tls
config = load_agent_config(sys.argv[1])
if not needs_tls(config, sys.argv[2]):
    leave_out_tls()
import asyncio, aggregator.edge.agent
maps = Path("/proc/self/maps").read_text()
print("ssl" in sys.modules and sys.modules["ssl"] is not None, "libcrypto" in maps)
"""


def test_tls_is_loaded_only_when_a_url_is_https(tmp_path) -> None:
    """OpenSSL costs the agent 4-5 MB resident: an http-only agent does without it."""
    plain = tmp_path / "plain.yml"
    plain.write_text("scrape_configs:\n  - job_name: a\n    static_configs: [{targets: [x:1]}]\n")
    tls_job = tmp_path / "tls.yml"
    tls_job.write_text(
        "scrape_configs:\n  - job_name: a\n    scheme: https\n"
        "    static_configs: [{targets: [x:1]}]\n"
    )

    def probe(config: str, host: str) -> str:
        out = subprocess.run(
            [sys.executable, "-c", TLS_PROBE, config, host],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        return out.stdout.strip()

    assert probe(str(plain), "http://host:9095") == "False False"
    assert probe(str(plain), "https://host:9095") == "True True"
    assert probe(str(tls_job), "http://host:9095") == "True True"


def test_the_light_parser_load_leaves_the_real_client_importable() -> None:
    code = (
        "import aggregator.edge.scrape as s, sys;"
        "assert not any(m.startswith('prometheus_client') for m in sys.modules);"
        "import prometheus_client;"
        "from prometheus_client.parser import text_string_to_metric_families as t;"
        "print(prometheus_client.CollectorRegistry.__name__, len(list(t('a 1\\n'))),"
        " len(list(s.parse_exposition('a 1\\n', 'text/plain'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.split() == ["CollectorRegistry", "1", "1"]
