"""The agent's rule sync against the real host app: load, apply, report back.

To get a rule the host serves but the agent cannot load, the test adds one to
what the host serves (a rule kind from a newer host) instead of a file: the
host checks files with the same code the agent runs, so no file can do it.
"""

from __future__ import annotations

from pathlib import Path

from aggregator.api.edge import EDGE
from aggregator.config import Config, EdgeConfig
from aggregator.edge.evaluator import EdgeRules
from aggregator.edge.http import Client
from aggregator.edge.uplink import RuleSync
from aggregator.edge.window import Window
from tests.aggregator.conftest import MakeService, clusters

RULES = """
groups:
  - name: node
    cluster: edge-1
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
"""


class Discard:
    def samples(self, *args: object) -> None: ...

    def alerts(self, *args: object) -> None: ...


async def test_rules_load_and_a_rule_the_agent_cannot_load_is_reported(
    make_service: MakeService, tmp_path: Path
) -> None:
    (tmp_path / "edge.yml").write_text(RULES)
    host = await make_service(
        Config(
            clusters=clusters("edge-1"),
            edge=EdgeConfig(rule_files=("edge.yml",), base_dir=tmp_path),
        )
    )
    base = str(host.client.make_url("")).rstrip("/")
    rules = EdgeRules(Window(60_000), Discard())
    async with Client() as session:
        sync = RuleSync(rules, session, base, "token-edge-1")
        try:
            assert await sync.poll_once(wait_s=0.1) is True
            assert list(rules.groups) == ["node"]
            running = rules.groups["node"]
            # Nothing changed: the long poll ends with a 304.
            assert await sync.poll_once(wait_s=0.2) is False

            hub = host.app[EDGE]
            newer = {"name": "node", "rules": [{"record": "x", "expr": "up", "sample_rate": 2}]}
            hub._install({"edge-1": [newer]}, hub._mtimes)
            assert await sync.poll_once(wait_s=0.1) is True
            assert rules.groups["node"] is running  # the old version keeps running
        finally:
            await rules.stop()
    _, body = await host.get_json("/api/v1/clusters")
    edge = {c["name"]: c for c in body["data"]}["edge-1"]["edge"]
    assert edge["agent_rules_version"] == edge["rules_version"]
    assert any("sample_rate" in e for e in edge["rule_load_errors"]), edge
