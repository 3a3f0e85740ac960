"""Run the chart tools (helm-python-sdk, kubernetes-validate) from their own venv.

They need Python 3.12 (REAL-PARTS.md), the project runs on 3.11, so they live in
`.venv-helm` (made by `scripts/setup-helm`, which `scripts/test` runs) and are
driven through `render_chart.py` in a subprocess. Missing tools are a loud skip
with the reason; under CI=true, a failure (as the PromQL conformance suite does).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "aggregator"
FULL_EXAMPLE = CHART / "examples" / "full.yaml"
KUBE_VERSION = "1.30.0"


def helm_venv() -> Path:
    return Path(os.environ.get("HELM_VENV", ROOT / ".venv-helm"))


def require_tools() -> Path:
    """The helm venv's python, or skip (fail under CI=true) saying what is missing."""
    python = helm_venv() / "bin" / "python"
    problem = None
    if not python.exists():
        problem = f"no {python} (run scripts/setup-helm; it needs Python 3.12)"
    elif not (helm_venv() / "bin" / "kubernetes-validate").exists():
        problem = f"kubernetes-validate is not installed in {helm_venv()} (run scripts/setup-helm)"
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{problem}; CI must check the Helm chart")
        pytest.skip(f"HELM CHART NOT CHECKED: {problem}")
    return python


class HelmFailed(Exception):
    """helm refused the values or a template failed; the message is helm's."""


def _run(request: dict[str, Any]) -> Any:
    python = require_tools()
    proc = subprocess.run(
        [str(python), str(Path(__file__).with_name("render_chart.py"))],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode == 3:
        raise HelmFailed(proc.stdout.strip())
    if proc.returncode != 0:
        raise AssertionError(f"render_chart.py exited {proc.returncode}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def render(
    values: dict[str, Any] | None = None, *, namespace: str = "monitoring"
) -> dict[str, str]:
    """Template path -> rendered text, rendered offline as `helm install fleet`."""
    return _run({"op": "render", "chart": str(CHART), "values": values or {}, "ns": namespace})


def lint(values: dict[str, Any] | None = None) -> dict[str, Any]:
    return _run({"op": "lint", "chart": str(CHART), "values": values or {}})


def validate_schema(values: dict[str, Any]) -> None:
    _run({"op": "schema", "chart": str(CHART), "values": values})


def objects(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object of a render (NOTES.txt left out)."""
    out = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        out += [doc for doc in yaml.safe_load_all(text) if doc]
    return out


def kubernetes_validate(files: list[Path]) -> subprocess.CompletedProcess[str]:
    binary = helm_venv() / "bin" / "kubernetes-validate"
    return subprocess.run(
        [str(binary), "-k", KUBE_VERSION, "--strict", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def full_example(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(FULL_EXAMPLE.read_text())
    values.update(overrides)
    return values
