"""The agent's config file, and the host's `edge:` section."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.config import parse_config
from aggregator.edge.config import load_agent_config
from aggregator.errors import ConfigError

AGENT = """
global: {scrape_interval: 30s, evaluation_interval: 20s}
scrape_configs:
  - job_name: node
    static_configs: [{targets: ["127.0.0.1:9100"], labels: {team: infra}}]
  - job_name: pods
    scrape_interval: 10s
    kubernetes_sd_configs: [{role: pod, namespaces: {names: [shop]}}]
edge: {window: 5m, queue_dir: q, queue_max_bytes: 1MiB, flush_interval: 5s}
"""


def test_agent_config_with_defaults_from_global(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(AGENT)
    c = load_agent_config(tmp_path / "a.yml")
    node, pods = c.scrape_configs
    assert (node.interval_ms, node.timeout_ms, node.metrics_path) == (30_000, 10_000, "/metrics")
    assert node.static[0].labels == (("team", "infra"),)
    assert pods.interval_ms == 10_000
    assert pods.kubernetes[0].namespaces == ("shop",)
    assert c.evaluation_interval_ms == 20_000
    assert c.edge.window_ms == 300_000
    assert c.edge.queue_dir == tmp_path / "q"
    assert c.edge.queue_max_bytes == 1 << 20


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        (
            ("role: pod", "role: node"),
            "scrape_configs[1].kubernetes_sd_configs[0].role",
            "only role: pod",
        ),
        (("window: 5m", "window: soon"), "edge.window", ""),
        (
            ("queue_max_bytes: 1MiB", "queue_max_bytes: 1KiB"),
            "edge.queue_max_bytes",
            "at least 64KiB",
        ),
        (("job_name: pods", "job_name: node"), "scrape_configs[1].job_name", "repeated"),
        (
            ("scrape_interval: 10s", "scrape_interval: 10s\n    scrape_timeout: 20s"),
            "scrape_configs[1].scrape_timeout",
            "not be longer",
        ),
        (("edge:", "rule_files: [x]\nedge:"), "rule_files", "unsupported key"),
    ],
)
def test_agent_config_errors_name_the_key(
    tmp_path: Path, change: tuple[str, str], key: str, reason: str
) -> None:
    (tmp_path / "a.yml").write_text(AGENT.replace(*change))
    with pytest.raises(ConfigError) as err:
        load_agent_config(tmp_path / "a.yml")
    assert err.value.key == key
    assert reason in str(err.value)


def test_host_edge_section(tmp_path: Path) -> None:
    c = parse_config(
        {"edge": {"rule_files": ["edge/*.yml"], "tunnel_timeout": "10s"}},
        file="h.yml",
        base_dir=tmp_path,
    )
    assert c.edge.rule_files == ("edge/*.yml",)
    assert c.edge.base_dir == tmp_path
    assert c.edge.tunnel_timeout_ms == 10_000
    with pytest.raises(ConfigError, match=r"edge\.rule_files"):
        parse_config({"edge": {"rule_files": 3}}, file="h.yml", base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"edge\.bogus"):
        parse_config({"edge": {"bogus": 1}}, file="h.yml", base_dir=tmp_path)
