"""Real parts for the edge agent's tests and bench: node-exporter and the agent process."""

from __future__ import annotations

import os
import shutil
import sys
import urllib.request
from pathlib import Path

from tests.support.realparts import REPO, Process, free_port


def start_node_exporter(workdir: Path, *, port: int | None = None) -> tuple[Process, str]:
    """Debian's prometheus-node-exporter on loopback; returns it and its address HOST:PORT."""
    binary = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if binary is None:
        raise RuntimeError("node-exporter is not installed (scripts/system-deps installs it)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    proc = Process(
        "node-exporter",
        [binary, f"--web.listen-address=127.0.0.1:{port}"],
        workdir / "node-exporter.log",
    )
    proc.wait_ready(f"http://127.0.0.1:{port}/metrics")
    return proc, f"127.0.0.1:{port}"


def start_agent(
    workdir: Path,
    *,
    host: str,
    cluster: str,
    token: str,
    config: str,
    cpu: int | None = None,
) -> tuple[Process, str]:
    """`aggregator edge` as a child process; returns it and the URL of its /metrics."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (workdir / "token").write_text(token + "\n")
    text = config.replace("@LISTEN@", f"127.0.0.1:{port}").replace(
        "@QUEUE@", str(workdir / "queue")
    )
    (workdir / "agent.yml").write_text(text)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    argv = [
        sys.executable,
        "-m",
        "aggregator",
        "edge",
        "--host",
        host,
        "--cluster",
        cluster,
        "--token-file",
        str(workdir / "token"),
        "--config",
        str(workdir / "agent.yml"),
    ]
    proc = Process("edge-agent", argv, workdir / "agent.log", cpu=cpu, env=env)
    url = f"http://127.0.0.1:{port}/metrics"
    proc.wait_ready(url)
    return proc, url


def agent_metrics(url: str) -> dict[str, float]:
    """The agent's own metrics (unlabelled ones) by name."""
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("aggregator_edge_") and "{" not in line:
            name, value = line.split()
            out[name] = float(value)
    return out
